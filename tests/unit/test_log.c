/* test_log.c - what a log line may carry of bytes from the network. */
#include <criterion/criterion.h>
#include <string.h>

#include "common/log.h"

Test(log_escape, keeps_printable_ascii_and_escapes_the_rest)
{
    char out[64];
    static const char path[] = "/caf\xc3\xa9/\xff\\x?q=\x01\x7f\n~";
    size_t n = log_escape(out, sizeof(out), path, sizeof(path) - 1);
    cr_assert_str_eq(out, "/caf\\xc3\\xa9/\\xff\\\\x?q=\\x01\\x7f\\x0a~");
    cr_assert_eq(n, strlen(out));
}

Test(log_escape, cuts_what_does_not_fit)
{
    char out[12];
    log_escape(out, sizeof(out), "abcdefghijklmnop", 16);
    cr_assert_str_eq(out, "abcdefgh...");
    log_escape(out, sizeof(out), "abcd\xff\xff\xff", 7);
    cr_assert_str_eq(out, "abcd\\xff...");
    log_escape(out, sizeof(out), "", 0);
    cr_assert_str_eq(out, "");
}
