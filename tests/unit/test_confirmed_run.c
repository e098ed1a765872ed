/* test_confirmed_run.c - reading a Redis' run id out of INFO, and the confirmed-run key. */
#include <criterion/criterion.h>
#include <hiredis.h>
#include <string.h>

#include "readmodel/confirmed_run.h"

#define RUN "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"

Test(confirmed_run, reads_the_run_id_line_of_info_server)
{
    const char *info = "# Server\r\nredis_version:7.0.15\r\nrun_id:" RUN "\r\ntcp_port:6379\r\n";
    char out[RUN_ID_LEN + 1];
    cr_assert_eq(confirmed_run_parse(info, strlen(info), out), 0);
    cr_assert_str_eq(out, RUN);
    const char *last = "run_id:" RUN; /* at the very start and the very end */
    cr_assert_eq(confirmed_run_parse(last, strlen(last), out), 0);
    cr_assert_str_eq(out, RUN);
}

Test(confirmed_run, refuses_what_is_not_a_run_id)
{
    const char *bad[] = {
        "",
        "# Server\r\nredis_version:7.0.15\r\n",
        "xrun_id:" RUN "\r\n",                                  /* not at a line's start */
        "master_run_id:" RUN "\r\n",                            /* another field */
        "run_id:0a1b2c3d4e5f60718293a4b5c6d7e8f90123456\r\n",   /* 39 digits */
        "run_id:0a1b2c3d4e5f60718293a4b5c6d7e8f9012345678\r\n", /* 41 */
        "run_id:0A1B2C3D4E5F60718293A4B5C6D7E8F901234567\r\n",  /* as Redis never writes it */
        "run_id:0a1b2c3d4e5f60718293a4b5c6d7e8f90123456z\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char out[RUN_ID_LEN + 1];
        cr_expect_eq(confirmed_run_parse(bad[i], strlen(bad[i]), out), -1, "case %zu", i);
    }
    /* A NUL inside the digits ends them, whatever the length says. */
    char with_nul[] = "run_id:" RUN;
    with_nul[20] = '\0';
    char out[RUN_ID_LEN + 1];
    cr_expect_eq(confirmed_run_parse(with_nul, sizeof(with_nul) - 1, out), -1);
}

Test(confirmed_run, the_key_names_the_run_or_not)
{
    redisReply same = {.type = REDIS_REPLY_STRING, .str = RUN, .len = RUN_ID_LEN};
    redisReply nil = {.type = REDIS_REPLY_NIL};
    redisReply number = {.type = REDIS_REPLY_INTEGER, .integer = 1};
    cr_expect(confirmed_run_is(&same, RUN));
    cr_expect(!confirmed_run_is(&same, "")); /* not known yet */
    cr_expect(!confirmed_run_is(&same, "1111111111222222222233333333334444444444"));
    cr_expect(!confirmed_run_is(&nil, RUN));
    cr_expect(!confirmed_run_is(&number, RUN));
}

Test(confirmed_run, a_refused_info_names_the_permission_only_when_it_is_missing)
{
    cr_expect_str_eq(run_id_refusal("NOPERM this user has no permissions to run the 'info' "
                                    "command"),
                     RUN_ID_REFUSED);
    cr_expect_str_eq(run_id_refusal("Redis INFO: NOPERM this user has no permissions"),
                     RUN_ID_REFUSED);
    cr_expect_str_eq(run_id_refusal("NOAUTH Authentication required."),
                     "Redis refused the session");
    cr_expect_str_eq(run_id_refusal("ERR max number of clients reached"),
                     "Redis refused the session");
}
