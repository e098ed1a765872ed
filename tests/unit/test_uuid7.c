/* test_uuid7.c - unit tests of uuid7.c: layout of the bits, canonical text, and strict order
 * within a millisecond, across counter overflow and when the clock goes back. */
#include <criterion/criterion.h>
#include <string.h>

#include "domain/uuid7.h"

static const uint8_t zeros[8] = {0};
static const uint8_t ones[8] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};

/* Makes one id and checks it is canonical text; returns its bytes in "bytes". */
static void next_id(struct uuid7_generator *gen, uint64_t now_ms, const uint8_t random[8],
                    char text[UUID_TEXT_LEN + 1], uint8_t bytes[16])
{
    memset(text, 'x', UUID_TEXT_LEN + 1);
    uuid7_next(gen, now_ms, random, text);
    cr_assert_eq(strlen(text), UUID_TEXT_LEN);
    cr_assert_eq(uuid_check_canonical(text, UUID_TEXT_LEN), 0, "not canonical: %s", text);
    cr_assert_eq(uuid_from_text(text, UUID_TEXT_LEN, bytes), 0);
}

Test(uuid7, layout)
{
    struct uuid7_generator gen = {0};
    const uint8_t random[8] = {0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0};
    char text[UUID_TEXT_LEN + 1];
    uint8_t bytes[16];

    next_id(&gen, 0x0190b8e27c1aull, random, text, bytes);
    /* 48-bit ms, version 7 with sequence 0, variant 10 over random[0] & 0x3f, then random. */
    cr_assert_str_eq(text, "0190b8e2-7c1a-7000-9234-56789abcdef0");
    cr_assert_eq(bytes[6] >> 4, 7, "version nibble");
    cr_assert_eq(bytes[8] >> 6, 2, "variant bits");
    cr_assert_eq(uuid7_timestamp_ms(bytes), 0x0190b8e27c1aull);

    next_id(&gen, 0x0190b8e27c1aull, ones, text, bytes);
    cr_assert_str_eq(text, "0190b8e2-7c1a-7001-bfff-ffffffffffff");
    next_id(&gen, 0x0190b8e27c1bull, zeros, text, bytes);
    cr_assert_str_eq(text, "0190b8e2-7c1b-7000-8000-000000000000");
}

Test(uuid7, version_and_variant_whatever_the_random)
{
    struct uuid7_generator gen = {0};
    char text[UUID_TEXT_LEN + 1];
    uint8_t bytes[16], random[8];

    for (int i = 0; i < 256; i++) {
        memset(random, i, sizeof random);
        next_id(&gen, 1700000000000ull + (uint64_t)i / 3, random, text, bytes);
        cr_assert_eq(text[14], '7', "%s", text);
        cr_assert(strchr("89ab", text[19]) != NULL, "%s", text);
        cr_assert_eq(text[8], '-');
        cr_assert_eq(text[13], '-');
        cr_assert_eq(text[18], '-');
        cr_assert_eq(text[23], '-');
    }
}

/* Makes "count" ids at the times "clock(i)" with hostile random bytes (descending) and checks
 * each is strictly greater than the one before, in text and in binary. Returns the last id's
 * timestamp. */
static uint64_t check_strictly_increasing(struct uuid7_generator *gen, int count,
                                          uint64_t (*clock)(int))
{
    char previous[UUID_TEXT_LEN + 1] = "", text[UUID_TEXT_LEN + 1];
    uint8_t previous_bytes[16] = {0}, bytes[16], random[8];

    for (int i = 0; i < count; i++) {
        memset(random, 0xFF - (i & 0xFF), sizeof random);
        next_id(gen, clock(i), random, text, bytes);
        if (i > 0) {
            cr_assert_gt(strcmp(text, previous), 0, "id %d: %s after %s", i, text, previous);
            cr_assert_gt(memcmp(bytes, previous_bytes, 16), 0, "id %d", i);
        }
        memcpy(previous, text, sizeof text);
        memcpy(previous_bytes, bytes, sizeof bytes);
    }
    return uuid7_timestamp_ms(previous_bytes);
}

static uint64_t frozen_clock(int i)
{
    (void)i;
    return 1700000000000ull;
}

static uint64_t backward_clock(int i)
{
    /* Forward for a while, then 10 s back, then forward again. */
    if (i < 100) return 1700000000000ull + (uint64_t)i;
    if (i < 5000) return 1699999990000ull + (uint64_t)i / 10;
    return 1700000000000ull + (uint64_t)i;
}

Test(uuid7, ordered_within_one_millisecond)
{
    struct uuid7_generator gen = {0};
    /* 10,000 ids in one ms: the 12-bit counter overflows twice and borrows two ms. */
    uint64_t last_ms = check_strictly_increasing(&gen, 10000, frozen_clock);
    cr_assert_eq(last_ms, 1700000000000ull + 10000 / 4096);
    cr_assert_eq(gen.last_ms, last_ms);
}

Test(uuid7, ordered_when_the_clock_goes_back)
{
    struct uuid7_generator gen = {0};
    check_strictly_increasing(&gen, 10000, backward_clock);
    /* Once the clock has passed the borrowed time, ids follow the clock again. */
    cr_assert_eq(gen.last_ms, backward_clock(9999));
    cr_assert_eq(gen.sequence, 0);
}

Test(uuid7, new_millisecond_resets_the_sequence)
{
    struct uuid7_generator gen = {0};
    char text[UUID_TEXT_LEN + 1];
    uint8_t bytes[16];

    next_id(&gen, 5000, zeros, text, bytes);
    next_id(&gen, 5000, zeros, text, bytes);
    next_id(&gen, 5000, zeros, text, bytes);
    cr_assert_eq(gen.sequence, 2);
    cr_assert_str_eq(text, "00000000-1388-7002-8000-000000000000");
    next_id(&gen, 5001, zeros, text, bytes);
    cr_assert_eq(gen.sequence, 0);
    cr_assert_str_eq(text, "00000000-1389-7000-8000-000000000000");
}

Test(uuid_text, canonical_check)
{
    static const char *const good[] = {
        "0190b8e2-7c1a-7d3e-9f00-1a2b3c4d5e6f", "00000000-0000-0000-0000-000000000000",
        "ffffffff-ffff-4fff-bfff-ffffffffffff", /* any version */
    };
    static const char *const bad[] = {
        "",
        "0190B8E2-7C1A-7D3E-9F00-1A2B3C4D5E6F",  /* uppercase */
        "0190b8e2-7c1a-7d3e-9f00-1a2b3c4d5e6",   /* 35 */
        "0190b8e2-7c1a-7d3e-9f00-1a2b3c4d5e6f0", /* 37 */
        "0190b8e27c1a7d3e9f001a2b3c4d5e6f",      /* no dashes */
        "0190b8e2-7c1a-7d3e-9f001-a2b3c4d5e6f",  /* dash misplaced */
        "0190b8e2_7c1a-7d3e-9f00-1a2b3c4d5e6f",
        "0190b8e2-7c1a-7d3e-9f00-1a2b3c4d5e6g",
        "{190b8e2-7c1a-7d3e-9f00-1a2b3c4d5e6f",
        "../../../../etc/passwd-xxxxxxxxxxxxx",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        cr_assert_eq(uuid_check_canonical(good[i], strlen(good[i])), 0, "%s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(uuid_check_canonical(bad[i], strlen(bad[i])), -1, "%s", bad[i]);
    /* Length-carried: the bytes past "len" do not count, a NUL inside does. */
    cr_assert_eq(uuid_check_canonical("0190b8e2-7c1a-7d3e-9f00-1a2b3c4d5e6fXYZ", 36), 0);
    cr_assert_eq(uuid_check_canonical("0190b8e2-7c1a-7d3e-9f00-1a2b3c4d5e6\0", 36), -1);
    cr_assert_eq(uuid_check_canonical(NULL, 0), -1);
}

Test(uuid_text, bytes_round_trip)
{
    const char *id = "0190b8e2-7c1a-7d3e-9f00-1a2b3c4d5e6f";
    const uint8_t expected[16] = {0x01, 0x90, 0xb8, 0xe2, 0x7c, 0x1a, 0x7d, 0x3e,
                                  0x9f, 0x00, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f};
    uint8_t bytes[16];
    char text[UUID_TEXT_LEN + 1];

    cr_assert_eq(uuid_from_text(id, strlen(id), bytes), 0);
    cr_assert_arr_eq(bytes, expected, 16);
    uuid_to_text(bytes, text);
    cr_assert_str_eq(text, id);
    cr_assert_eq(uuid7_timestamp_ms(bytes), 0x0190b8e27c1aull);
    cr_assert_eq(uuid_from_text("0190B8E2-7c1a-7d3e-9f00-1a2b3c4d5e6f", 36, bytes), -1);
}
