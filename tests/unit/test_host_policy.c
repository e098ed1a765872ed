/* test_host_policy.c - the names a state-changing request may give in Host and Origin. */
#include <criterion/criterion.h>
#include <string.h>

#include "http/host_policy.h"

static struct slice s(const char *text)
{
    return (struct slice){text, strlen(text)};
}

static struct host_policy policy_of(const char *listen, const char *allowed)
{
    struct host_policy policy;
    char err[128];
    cr_assert_eq(host_policy_init(&policy, listen, allowed, err, sizeof(err)), 0, "%s", err);
    return policy;
}

Test(host_policy, parses_names_ports_and_bracketed_ipv6)
{
    struct host_name name;
    cr_assert_eq(host_name_parse(s("Example.COM:8080"), &name), 0);
    cr_assert_str_eq(name.name, "example.com");
    cr_assert_eq(name.port, 8080);
    cr_assert_eq(host_name_parse(s("[::1]:80"), &name), 0);
    cr_assert_str_eq(name.name, "[::1]");
    cr_assert_eq(host_name_parse(s("[FD00::1]"), &name), 0);
    cr_assert_str_eq(name.name, "[fd00::1]");
    cr_assert_eq(name.port, 0);
    static const char *const bad[] = {"",    ":80",  "a:", "a:0",    "a:65536", "a:8x", "a b",
                                      "::1", "[::1", "[]", "[::1]x", "a/b",     "a@b",  "[g::1]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(host_name_parse(s(bad[i]), &name), -1, "accepted '%s'", bad[i]);
}

Test(host_policy, loopback_names_and_the_listen_address_with_its_port)
{
    struct host_policy p = policy_of("127.0.0.1:8000", NULL);
    static const char *const allowed[] = {"127.0.0.1:8000", "localhost:8000", "LOCALHOST:8000",
                                          "[::1]:8000"};
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
        cr_assert(host_policy_allows_host(&p, s(allowed[i])), "refused %s", allowed[i]);
    static const char *const refused[] = {"127.0.0.1:8001",
                                          "localhost",
                                          "attacker.example:8000",
                                          "localhost.attacker.example:8000",
                                          "127.0.0.1.nip.io:8000",
                                          "127.0.0.2:8000",
                                          "",
                                          "0.0.0.0:8000"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        cr_assert_not(host_policy_allows_host(&p, s(refused[i])), "allowed %s", refused[i]);
    host_policy_clear(&p);

    p = policy_of("catalog.internal:80", NULL);
    cr_assert(host_policy_allows_host(&p, s("catalog.internal")));
    cr_assert(host_policy_allows_host(&p, s("localhost")));
    cr_assert_not(host_policy_allows_host(&p, s("catalog.internal:8080")));
    host_policy_clear(&p);

    p = policy_of("0.0.0.0:9000", NULL); /* a wildcard is no name to give */
    cr_assert_not(host_policy_allows_host(&p, s("0.0.0.0:9000")));
    cr_assert(host_policy_allows_host(&p, s("localhost:9000")));
    host_policy_clear(&p);

    p = policy_of("::1:9000", NULL); /* split at the last colon, as the listener binds it */
    cr_assert(host_policy_allows_host(&p, s("[::1]:9000")));
    host_policy_clear(&p);
}

Test(host_policy, allowed_hosts_with_and_without_a_port)
{
    struct host_policy p = policy_of("127.0.0.1:8000", " shop.example ,api.example:9443,,");
    cr_assert_eq(p.allowed_count, 2);
    cr_assert(host_policy_allows_host(&p, s("shop.example")));
    cr_assert(host_policy_allows_host(&p, s("Shop.Example:8443")));
    cr_assert(host_policy_allows_host(&p, s("api.example:9443")));
    cr_assert_not(host_policy_allows_host(&p, s("api.example")));
    cr_assert_not(host_policy_allows_host(&p, s("api.example:9444")));
    cr_assert_not(host_policy_allows_host(&p, s("www.shop.example")));
    host_policy_clear(&p);

    struct host_policy bad;
    char err[128];
    cr_assert_eq(host_policy_init(&bad, "127.0.0.1:8000", "ok.example,no good", err, sizeof(err)),
                 HOST_POLICY_BAD_ALLOWED);
    cr_assert(strstr(err, "no good"), "%s", err);
    cr_assert_eq(host_policy_init(&bad, "nowhere", NULL, err, sizeof(err)), HOST_POLICY_BAD_LISTEN);
}

Test(host_policy, origins_name_this_server_by_the_same_rules)
{
    struct host_policy p = policy_of("127.0.0.1:8000", "shop.example");
    static const char *const allowed[] = {"http://127.0.0.1:8000", "http://localhost:8000",
                                          "HTTP://LocalHost:8000", "https://shop.example",
                                          "http://shop.example:8080"};
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
        cr_assert(host_policy_allows_origin(&p, s(allowed[i])), "refused %s", allowed[i]);
    static const char *const refused[] = {"null",
                                          "https://evil.example",
                                          "http://localhost",
                                          "https://localhost:8000x",
                                          "http://127.0.0.1:8000/path",
                                          "file://",
                                          "ftp://localhost:8000",
                                          "http://",
                                          ""};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        cr_assert_not(host_policy_allows_origin(&p, s(refused[i])), "allowed %s", refused[i]);
    host_policy_clear(&p);
}
