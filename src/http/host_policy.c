/* host_policy.c - matches Host and Origin against the names of this server.
 * Invariant: a name is compared whole (lowercase, brackets kept for IPv6) and with its port,
 * so "localhost.attacker.example" or "127.0.0.1.nip.io" never pass for a loopback name. */
#include "http/host_policy.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/xmalloc.h"

#define HTTP_PORT  80
#define HTTPS_PORT 443

/* Loopback names a local client may use, with the listening port. */
static const char *const LOOPBACK_NAMES[] = {"localhost", "127.0.0.1", "[::1]"};

/* Wildcard listen addresses: they are not names a client can be told to use. */
static const char *const WILDCARD_NAMES[] = {"0.0.0.0", "[::]", "::", "*"};

static const struct {
    const char *prefix;
    int default_port;
} ORIGIN_SCHEMES[] = {
    {"http://", HTTP_PORT},
    {"https://", HTTPS_PORT},
};

static int is_name_char(unsigned char c)
{
    return isalnum(c) || c == '.' || c == '-' || c == '_';
}

static int is_ipv6_char(unsigned char c)
{
    return isxdigit(c) || c == ':' || c == '.';
}

static int parse_port(const char *p, size_t len, int *port)
{
    if (len == 0 || len > 5) return -1;
    int value = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        value = value * 10 + (p[i] - '0');
    }
    if (value < 1 || value > 65535) return -1;
    *port = value;
    return 0;
}

int host_name_parse(struct slice text, struct host_name *out)
{
    size_t name_len;
    int (*valid_char)(unsigned char) = is_name_char;
    memset(out, 0, sizeof(*out));
    if (text.len == 0) return -1;
    if (text.p[0] == '[') {
        const char *close = memchr(text.p, ']', text.len);
        if (!close || close == text.p + 1) return -1;
        name_len = (size_t)(close - text.p) + 1;
        valid_char = is_ipv6_char;
    } else {
        const char *colon = memchr(text.p, ':', text.len);
        name_len = colon ? (size_t)(colon - text.p) : text.len;
    }
    if (name_len == 0 || name_len > HOST_POLICY_NAME_MAX) return -1;
    size_t inner_start = text.p[0] == '[' ? 1 : 0, inner_end = name_len - inner_start;
    for (size_t i = inner_start; i < inner_end; i++)
        if (!valid_char((unsigned char)text.p[i])) return -1;
    for (size_t i = 0; i < name_len; i++)
        out->name[i] = (char)tolower((unsigned char)text.p[i]);
    out->name[name_len] = '\0';
    if (name_len == text.len) return 0;
    if (text.p[name_len] != ':') return -1;
    return parse_port(text.p + name_len + 1, text.len - name_len - 1, &out->port);
}

static int listed(const char *name, const char *const *names, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp(name, names[i]) == 0) return 1;
    return 0;
}

#define LISTED(name, table) listed(name, table, sizeof(table) / sizeof(table[0]))

/* 1 when "name" at "port" is one of this server's names. */
static int names_this_server(const struct host_policy *policy, const char *name, int port)
{
    if (port == policy->listen.port &&
        (LISTED(name, LOOPBACK_NAMES) ||
         (policy->listen.name[0] && strcmp(name, policy->listen.name) == 0)))
        return 1;
    for (size_t i = 0; i < policy->allowed_count; i++)
        if (strcmp(name, policy->allowed[i].name) == 0 &&
            (policy->allowed[i].port == 0 || policy->allowed[i].port == port))
            return 1;
    return 0;
}

int host_policy_allows_host(const struct host_policy *policy, struct slice host)
{
    struct host_name given;
    if (host_name_parse(host, &given) < 0) return 0;
    return names_this_server(policy, given.name, given.port ? given.port : HTTP_PORT);
}

int host_policy_allows_origin(const struct host_policy *policy, struct slice origin)
{
    for (size_t i = 0; i < sizeof(ORIGIN_SCHEMES) / sizeof(ORIGIN_SCHEMES[0]); i++) {
        size_t n = strlen(ORIGIN_SCHEMES[i].prefix);
        if (origin.len <= n || strncasecmp(origin.p, ORIGIN_SCHEMES[i].prefix, n) != 0) continue;
        struct host_name given;
        if (host_name_parse((struct slice){origin.p + n, origin.len - n}, &given) < 0) return 0;
        return names_this_server(policy, given.name,
                                 given.port ? given.port : ORIGIN_SCHEMES[i].default_port);
    }
    return 0;
}

int host_policy_init(struct host_policy *policy, const char *listen, const char *allowed, char *err,
                     size_t errlen)
{
    memset(policy, 0, sizeof(*policy));
    /* --listen splits at its last colon (as the listener binds it), so a bare IPv6 address
     * ("::1:8000") is bracketed here to read as the Host a client would send. */
    char bracketed[HOST_POLICY_NAME_MAX + 8];
    const char *colon = strrchr(listen, ':');
    size_t host_len = colon ? (size_t)(colon - listen) : 0;
    int bare_ipv6 = memchr(listen, ':', host_len) != NULL && listen[0] != '[';
    int n = snprintf(bracketed, sizeof(bracketed), "%s%.*s%s%s", bare_ipv6 ? "[" : "",
                     (int)host_len, listen, bare_ipv6 ? "]" : "", colon ? colon : "");
    if (!colon || n < 0 || (size_t)n >= sizeof(bracketed) ||
        host_name_parse((struct slice){bracketed, (size_t)n}, &policy->listen) < 0 ||
        policy->listen.port == 0) {
        snprintf(err, errlen, "'%s' is not host:port", listen);
        return HOST_POLICY_BAD_LISTEN;
    }
    if (LISTED(policy->listen.name, WILDCARD_NAMES)) policy->listen.name[0] = '\0';
    size_t capacity = 1;
    for (const char *c = allowed ? allowed : ""; *c; c++)
        capacity += *c == ',';
    policy->allowed = xcalloc(capacity, sizeof(*policy->allowed));
    for (const char *entry = allowed ? allowed : ""; *entry;) {
        const char *comma = strchr(entry, ',');
        size_t len = comma ? (size_t)(comma - entry) : strlen(entry);
        struct slice name = {entry, len};
        while (name.len && name.p[0] == ' ') {
            name.p++;
            name.len--;
        }
        while (name.len && name.p[name.len - 1] == ' ')
            name.len--;
        if (name.len && host_name_parse(name, &policy->allowed[policy->allowed_count++]) < 0) {
            snprintf(err, errlen, "'%.*s' is not a host name or host:port", (int)name.len, name.p);
            host_policy_clear(policy);
            return HOST_POLICY_BAD_ALLOWED;
        }
        entry += comma ? len + 1 : len;
    }
    return 0;
}

void host_policy_clear(struct host_policy *policy)
{
    free(policy->allowed);
    policy->allowed = NULL;
    policy->allowed_count = 0;
}
