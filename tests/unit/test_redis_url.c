/* test_redis_url.c - the Redis URL forms and their errors. */
#include <criterion/criterion.h>

#include "common/redis_url.h"

Test(redis_url, tcp_with_and_without_port_and_db)
{
    struct redis_url url;
    char err[128];
    cr_assert_eq(redis_url_parse("redis://127.0.0.1:6380/2", &url, err, sizeof(err)), 0);
    cr_assert_str_eq(url.host, "127.0.0.1");
    cr_assert_eq(url.port, 6380);
    cr_assert_eq(url.db, 2);
    cr_assert_eq(redis_url_parse("redis://localhost", &url, err, sizeof(err)), 0);
    cr_assert_eq(url.port, 6379);
    cr_assert_eq(url.db, 0);
}

Test(redis_url, rediss_is_tcp_with_tls)
{
    struct redis_url url;
    char err[128];
    cr_assert_eq(redis_url_parse("rediss://u:p%40w@redis.internal:6380/1", &url, err, sizeof(err)),
                 0);
    cr_assert_eq(url.tls, 1);
    cr_assert_str_eq(url.host, "redis.internal");
    cr_assert_eq(url.port, 6380);
    cr_assert_eq(url.db, 1);
    cr_assert_str_eq(url.user, "u");
    cr_assert_str_eq(url.password, "p@w");
    cr_assert_null(url.ca_file);
    cr_assert_eq(redis_url_parse("redis://h", &url, err, sizeof(err)), 0);
    cr_assert_eq(url.tls, 0);
    cr_assert_neq(redis_url_parse("rediss://", &url, err, sizeof(err)), 0);
}

Test(redis_url, unix_socket_with_db)
{
    struct redis_url url;
    char err[128];
    cr_assert_eq(redis_url_parse("unix:///run/redis.sock?db=3", &url, err, sizeof(err)), 0);
    cr_assert_str_eq(url.path, "/run/redis.sock");
    cr_assert_eq(url.db, 3);
}

Test(redis_url, rejects_what_it_cannot_use)
{
    struct redis_url url;
    char err[128];
    const char *bad[] = {"",
                         "http://x",
                         "redis://",
                         "redis://:6379",
                         "redis://h:0",
                         "redis://h:70000",
                         "redis://h:12x",
                         "redis://h/abc",
                         "redis://@h:6379",
                         "redis://user:@h",
                         "redis://:%zz@h",
                         "redis://:pw%0@h",
                         "redis://:a%00b@h",
                         "unix://relative.sock",
                         "unix:///s?database=1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        cr_assert_eq(redis_url_parse(bad[i], &url, err, sizeof(err)), -1, "accepted '%s'", bad[i]);
        cr_assert_neq(err[0], '\0', "no reason for '%s'", bad[i]);
    }
}

Test(redis_url, credentials_percent_decoded)
{
    struct redis_url url;
    char err[128];
    cr_assert_eq(redis_url_parse("redis://:s3cret@h:6380/1", &url, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(url.user, "");
    cr_assert_str_eq(url.password, "s3cret");
    cr_assert_str_eq(url.host, "h");
    cr_assert_eq(url.port, 6380);
    cr_assert_eq(redis_url_parse("redis://cat%40logd:p%3Aw%2Fx@h/2", &url, err, sizeof(err)), 0,
                 "%s", err);
    cr_assert_str_eq(url.user, "cat@logd");
    cr_assert_str_eq(url.password, "p:w/x");
    cr_assert_eq(url.db, 2);
    cr_assert_eq(redis_url_parse("redis://u:p@ss@h", &url, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(url.password, "p@ss");
    cr_assert_str_eq(url.host, "h");
    cr_assert_eq(redis_url_parse("redis://h", &url, err, sizeof(err)), 0);
    cr_assert_str_eq(url.password, "");
    cr_assert_eq(redis_url_parse("redis://catalogd@h", &url, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(url.user, "catalogd");
    cr_assert_str_eq(url.password, "");
}

Test(redis_url, redacts_passwords_for_logs)
{
    static const struct {
        const char *url, *shown;
    } cases[] = {
        {"redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"},
        {"redis://user:s3cret@host:6379/0", "redis://user:***@host:6379/0"},
        {"redis://:s3cret@host", "redis://:***@host"},
        {"rediss://s3cret@host/2", "rediss://***@host/2"},
        {"redis://user:p@ss:w@rd@host:1/0", "redis://user:***@host:1/0"},
        {"redis://host/0?password=s3cret&db=1", "redis://host/0?password=***&db=1"},
        {"unix:///run/redis.sock?db=3", "unix:///run/redis.sock?db=3"},
        {"redis://host/0?x=1#user:pw@frag", "redis://host/0?x=1#user:pw@frag"},
    };
    char out[128];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        cr_assert_str_eq(redis_url_redact(cases[i].url, out, sizeof(out)), cases[i].shown, "%s",
                         cases[i].url);
}

Test(redis_url, an_auth_refusal_blames_the_credentials_only_when_redis_does)
{
    static const struct {
        const char *error, *refused;
    } cases[] = {
        {"WRONGPASS invalid username-password pair or user is disabled.",
         "Redis refused the credentials"},
        {"ERR invalid password", "Redis refused the credentials"},
        {"ERR AUTH <password> called without any password configured for the default user. Are "
         "you sure your configuration is correct?",
         "Redis refused the credentials"},
        {"ERR max number of clients reached", "Redis refused the session"},
        {"DENIED Redis is running in protected mode", "Redis refused the session"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        cr_assert_str_eq(redis_auth_refusal(cases[i].error), cases[i].refused, "%s",
                         cases[i].error);
}
