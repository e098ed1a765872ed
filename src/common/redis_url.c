/* redis_url.c - parses the URL forms catalogd accepts for Redis. */
#include "common/redis_url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/digits.h"
#include "common/percent.h"

static int parse_number(const char *text, size_t len, int min, int max, int *out)
{
    int64_t value;
    if (digits_parse(text, len, min, max, &value) < 0) return -1;
    *out = (int)value;
    return 0;
}

/* "[user]:password@" or "user@" (its password from --redis-password-file) before the host:
 * the last '@' ends it (a password may hold one, though it should be written %40). */
static int parse_credentials(const char *userinfo, size_t len, struct redis_url *out, char *err,
                             size_t errlen)
{
    const char *colon = memchr(userinfo, ':', len);
    size_t user_len = colon ? (size_t)(colon - userinfo) : len;
    if (percent_decode(userinfo, user_len, out->user, sizeof(out->user)) < 0 ||
        (colon &&
         percent_decode(colon + 1, len - user_len - 1, out->password, sizeof(out->password)) < 0)) {
        snprintf(err, errlen, "bad user or password (percent-encoding, length)");
        return -1;
    }
    if (colon ? !out->password[0] : !out->user[0]) {
        snprintf(err, errlen, colon ? "empty password" : "empty user");
        return -1;
    }
    return 0;
}

static int parse_tcp(const char *rest, struct redis_url *out, char *err, size_t errlen)
{
    size_t authority_len = strcspn(rest, "/");
    const char *at = NULL;
    for (const char *c = rest; c < rest + authority_len; c++)
        if (*c == '@') at = c;
    if (at) {
        if (parse_credentials(rest, (size_t)(at - rest), out, err, errlen) < 0) return -1;
        rest = at + 1;
    }
    const char *slash = strchr(rest, '/');
    size_t hostport_len = slash ? (size_t)(slash - rest) : strlen(rest);
    const char *colon = memchr(rest, ':', hostport_len);
    size_t host_len = colon ? (size_t)(colon - rest) : hostport_len;
    if (host_len == 0 || host_len >= sizeof(out->host)) {
        snprintf(err, errlen, "missing or too long host");
        return -1;
    }
    memcpy(out->host, rest, host_len);
    out->host[host_len] = '\0';
    if (colon && parse_number(colon + 1, hostport_len - host_len - 1, 1, 65535, &out->port) < 0) {
        snprintf(err, errlen, "bad port");
        return -1;
    }
    if (slash && slash[1] != '\0' &&
        parse_number(slash + 1, strlen(slash + 1), 0, 9999, &out->db) < 0) {
        snprintf(err, errlen, "bad database number");
        return -1;
    }
    return 0;
}

static int parse_unix(const char *rest, struct redis_url *out, char *err, size_t errlen)
{
    const char *query = strchr(rest, '?');
    size_t path_len = query ? (size_t)(query - rest) : strlen(rest);
    if (path_len == 0 || rest[0] != '/' || path_len >= sizeof(out->path)) {
        snprintf(err, errlen, "unix socket path must be absolute and short");
        return -1;
    }
    memcpy(out->path, rest, path_len);
    out->path[path_len] = '\0';
    if (query) {
        if (strncmp(query, "?db=", 4) != 0 ||
            parse_number(query + 4, strlen(query + 4), 0, 9999, &out->db) < 0) {
            snprintf(err, errlen, "bad query (only ?db=N)");
            return -1;
        }
    }
    return 0;
}

int redis_url_parse(const char *text, struct redis_url *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    out->port = 6379;
    if (strncmp(text, "redis://", 8) == 0) return parse_tcp(text + 8, out, err, errlen);
    if (strncmp(text, "rediss://", 9) == 0) {
        out->tls = 1;
        return parse_tcp(text + 9, out, err, errlen);
    }
    if (strncmp(text, "unix://", 7) == 0) return parse_unix(text + 7, out, err, errlen);
    snprintf(err, errlen,
             "expected redis://host:port/db, rediss://host:port/db or unix:///path?db=N");
    return -1;
}

const char *redis_url_redact(const char *text, char *out, size_t cap)
{
    static const char mask[] = "***";
    const char *scheme_end = strstr(text, "://");
    const char *authority = scheme_end ? scheme_end + 3 : text;
    size_t authority_len = strcspn(authority, "/?#");
    const char *at = NULL;
    for (const char *c = authority; c < authority + authority_len; c++)
        if (*c == '@') at = c; /* the last one: a password may contain '@' */
    size_t n = 0;
    if (at) {
        const char *colon = memchr(authority, ':', (size_t)(at - authority));
        const char *keep_end = colon ? colon + 1 : authority; /* "user:" or nothing */
        n = (size_t)snprintf(out, cap, "%.*s%s%s", (int)(keep_end - text), text, mask, at);
    } else {
        n = (size_t)snprintf(out, cap, "%s", text);
    }
    if (n >= cap) return out;
    char *password = strstr(out, "password=");
    if (password && (password[-1] == '?' || password[-1] == '&')) {
        char *value = password + strlen("password="), *end = value + strcspn(value, "&#");
        memmove(value + sizeof(mask) - 1, end, strlen(end) + 1);
        memcpy(value, mask, sizeof(mask) - 1);
    }
    return out;
}

const char *redis_auth_refusal(const char *error)
{
    return strstr(error, "WRONGPASS") || strstr(error, "password") ? "Redis refused the credentials"
                                                                   : "Redis refused the session";
}
