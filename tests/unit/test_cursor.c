/* test_cursor.c - unit tests of cursor.c: base64url round trip and refusal of everything
 * cursor_encode cannot have produced. */
#include <criterion/criterion.h>
#include <string.h>

#include "domain/cursor.h"

static const char *const sample_id = "0190b8e2-7c1a-7d3e-9f00-1a2b3c4d5e6f";

Test(cursor, known_encoding)
{
    char out[CURSOR_LEN + 1];

    cr_assert_eq(cursor_encode("00000000-0000-0000-0000-000000000000", out), 0);
    cr_assert_str_eq(out, "AAAAAAAAAAAAAAAAAAAAAA");
    cr_assert_eq(cursor_encode("ffffffff-ffff-ffff-ffff-ffffffffffff", out), 0);
    cr_assert_str_eq(out, "_____________________w");
    /* base64url of the bytes 01 90 b8 e2 7c 1a 7d 3e 9f 00 1a 2b 3c 4d 5e 6f. */
    cr_assert_eq(cursor_encode(sample_id, out), 0);
    cr_assert_str_eq(out, "AZC44nwafT6fABorPE1ebw");
}

Test(cursor, round_trip)
{
    char out[CURSOR_LEN + 1], id[UUID_TEXT_LEN + 1];
    char text[UUID_TEXT_LEN + 1];
    uint8_t bytes[16];

    for (int i = 0; i < 2000; i++) {
        for (int b = 0; b < 16; b++)
            bytes[b] = (uint8_t)(i * 31 + b * 17 + (i >> 3) * b);
        uuid_to_text(bytes, text);
        cr_assert_eq(cursor_encode(text, out), 0);
        cr_assert_eq(strlen(out), CURSOR_LEN);
        cr_assert_eq(
            strspn(out, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
            CURSOR_LEN, "%s", out);
        memset(id, 'x', sizeof id);
        cr_assert_eq(cursor_decode(out, CURSOR_LEN, id), 0, "%s", out);
        cr_assert_str_eq(id, text);
    }
}

Test(cursor, encode_refuses_non_canonical_ids)
{
    char out[CURSOR_LEN + 1];

    cr_assert_eq(cursor_encode("0190B8E2-7C1A-7D3E-9F00-1A2B3C4D5E6F", out), -1);
    cr_assert_eq(cursor_encode("not-an-id-at-all-but-36-characters!!", out), -1);
    cr_assert_eq(cursor_encode(NULL, out), -1);
}

Test(cursor, decode_refuses_garbage)
{
    static const struct {
        const char *text;
        size_t len;
    } bad[] = {
        {"", 0},
        {"AZC44nwafT6fABorPE1eb", 21},
        {"AZC44nwafT6fABorPE1ebwA", 23},
        {"AZC44nwafT6fABorPE1ebw==", 24},
        {"AZC44nwafT6fABorPE1e+w", 22},
        {"AZC44nwafT6fABorPE1e/w", 22},
        {"AZC44nwafT6fABorPE1eb=", 22},
        {"AZC44nwafT6fABorPE1eb.", 22},
        {"AZC44nwafT6fABorPE1 bw", 22},
        {"AZC44nwafT6fABorPE1ebx", 22}, /* x = 0b110001: padding bits set */
        {"AZC44nwafT6fABorPE1ebB", 22}, /* B = 0b000001 */
        {"_____________________x", 22},
        {"AZC44nwafT6fABorPE1e\0w", 22}, /* a NUL inside */
        {"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 22},
        {"AZC44nwafT6fABorPE1eb\xc3", 22},
    };
    char id[UUID_TEXT_LEN + 1];

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(cursor_decode(bad[i].text, bad[i].len, id), -1, "case %zu", i);
    cr_assert_eq(cursor_decode(NULL, 22, id), -1);
    /* The good one, to show the cases above fail for their flaw only. */
    cr_assert_eq(cursor_decode("AZC44nwafT6fABorPE1ebw", 22, id), 0);
    cr_assert_str_eq(id, sample_id);
    /* Length-carried: trailing bytes outside "len" are not read. */
    cr_assert_eq(cursor_decode("AZC44nwafT6fABorPE1ebw!!!", 22, id), 0);
}

Test(cursor, every_one_character_change_is_refused_or_another_id)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char text[CURSOR_LEN + 1], id[UUID_TEXT_LEN + 1];

    for (int pos = 0; pos < CURSOR_LEN; pos++) {
        for (int c = 0; c < 64; c++) {
            memcpy(text, "AZC44nwafT6fABorPE1ebw", sizeof text);
            if (text[pos] == alphabet[c]) continue;
            text[pos] = alphabet[c];
            int rc = cursor_decode(text, CURSOR_LEN, id);
            if (pos == CURSOR_LEN - 1 && (c & 0x0F) != 0) {
                cr_assert_eq(rc, -1, "%s", text);
            } else {
                cr_assert_eq(rc, 0, "%s", text);
                cr_assert_str_neq(id, sample_id);
            }
        }
    }
}
