/* test_listen_address.c - the --listen address is judged by what it resolves to. */
#include <criterion/criterion.h>
#include <string.h>

#include "http/listen_address.h"

static int loopback(const char *listen)
{
    struct listen_address address;
    char err[128];
    cr_assert_eq(listen_address_resolve(listen, &address, err, sizeof(err)), 0, "%s", err);
    return listen_address_is_loopback(&address);
}

Test(listen_address, loopback_addresses_and_names)
{
    cr_assert(loopback("127.0.0.1:8000"));
    cr_assert(loopback("127.9.8.7:8000"));
    cr_assert(loopback("[::1]:8000"));
    cr_assert(loopback("[::ffff:127.0.0.1]:8000"));
    cr_assert(loopback("localhost:8000"));
}

Test(listen_address, every_interface_and_other_addresses_are_not)
{
    cr_assert_not(loopback("0.0.0.0:8000"));
    cr_assert_not(loopback("[::]:8000"));
    cr_assert_not(loopback("10.1.2.3:8000"));
    cr_assert_not(loopback("[::ffff:10.0.0.1]:8000"));
    cr_assert_not(loopback("128.0.0.1:8000"));
}

Test(listen_address, formats_what_it_binds)
{
    struct listen_address address;
    char err[128], text[96];
    cr_assert_eq(listen_address_resolve("[::1]:9000", &address, err, sizeof(err)), 0);
    listen_address_format(&address, text, sizeof(text));
    cr_assert_str_eq(text, "[::1]:9000");
    cr_assert_eq(listen_address_resolve("0.0.0.0:80", &address, err, sizeof(err)), 0);
    listen_address_format(&address, text, sizeof(text));
    cr_assert_str_eq(text, "0.0.0.0:80");
    cr_assert_eq(listen_address_resolve("nocolon", &address, err, sizeof(err)), -1);
}
