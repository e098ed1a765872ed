/* test_bus.c - the news messages the projecting instance sends the others. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "projection/bus.h"

Test(bus, news_round_trip)
{
    int64_t parked[] = {7, 9, 12};
    struct projection_news sent = {.epoch = 4,
                                   .number = 8,
                                   .generation = 2,
                                   .checkpoint = 12,
                                   .checkpoint_event = "01938a2e-7c4f-7d2a-9b1e-3f5a6c7d8e9f 3 "
                                                       "2026-12-05T16:25:03.123Z",
                                   .state = "catching_up",
                                   .parked_total = 5,
                                   .parked = parked,
                                   .parked_count = 3,
                                   .instance_id = "host-1:42 (blue)"};
    size_t len;
    char *text = bus_format_news(&sent, &len);
    struct projection_news got;
    cr_assert_eq(bus_parse_news(text, len, &got), 0);
    cr_assert_eq(got.epoch, 4);
    cr_assert_eq(got.number, 8);
    cr_assert_eq(got.generation, 2);
    cr_assert_eq(got.checkpoint, 12);
    cr_assert_str_eq(got.checkpoint_event,
                     "01938a2e-7c4f-7d2a-9b1e-3f5a6c7d8e9f 3 2026-12-05T16:25:03.123Z");
    cr_assert_str_eq(got.state, "catching_up");
    cr_assert_eq(got.parked_total, 5);
    cr_assert_eq(got.parked_count, 3);
    cr_assert(got.parked[0] == 7 && got.parked[1] == 9 && got.parked[2] == 12);
    cr_assert_str_eq(got.instance_id, "host-1:42 (blue)");
    free(got.parked);
    free(text);
}

Test(bus, news_without_parked_events)
{
    struct projection_news sent = {
        .epoch = 1, .checkpoint = 3, .state = "live", .instance_id = "a"};
    size_t len;
    char *text = bus_format_news(&sent, &len);
    struct projection_news got;
    cr_assert_eq(bus_parse_news(text, len, &got), 0);
    cr_assert_eq(got.parked_count, 0);
    cr_assert_null(got.parked);
    cr_assert_str_eq(got.checkpoint_event, "");
    cr_assert_str_eq(got.state, "live");
    cr_assert_str_eq(got.instance_id, "a");
    free(text);
}

Test(bus, anything_else_is_refused)
{
    static const char *const BAD[] = {
        "",
        "n",
        "c 12",
        "n 1 1 2 3 - live 0 0",                      /* no instance */
        "n 1 1 2 3 - live 0 0 ",                     /* an empty one */
        "n 1 1 2 x - live 0 0 a",                    /* not a number */
        "n 1 1 2 3 - live 0 2 5 a",                  /* fewer seqs than said */
        "n 1 1 2 3 - live 0 99999999999999 a",       /* a count beyond the text */
        "n 99999999999999999999 1 2 3 - live 0 0 a", /* overflow */
        "n 1 1 2 3 - a-state-name-far-too-long 0 0 a",
        "n 1 1 2 3 live 0 0 a",  /* no event */
        "n 1 1 2 3  live 0 0 a", /* an empty one */
        "n 1 1 2 3 "
        "an-event-far-too-long-an-event-far-too-long-an-event-far-too-long-an-event-far-too-long-"
        "an-event-far-too-long-an-event-far-too-long-an-event-far-too-long live 0 0 a",
    };
    for (size_t i = 0; i < sizeof(BAD) / sizeof(BAD[0]); i++) {
        struct projection_news got;
        cr_assert_eq(bus_parse_news(BAD[i], strlen(BAD[i]), &got), -1, "accepted \"%s\"", BAD[i]);
    }
}
