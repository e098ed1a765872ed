/* redis_url.h - where the read model lives: "redis://[[user]:password@]host:port/db",
 * "rediss://..." (the same over TLS), "redis://user@host:port/db" (the password given apart)
 * or "unix:///path?db=N". The user and password are percent-decoded. */
#ifndef CATALOGD_REDIS_URL_H
#define CATALOGD_REDIS_URL_H

#include <stddef.h>

struct redis_url {
    char host[256];     /* empty for a unix socket */
    int port;           /* 6379 when not given */
    char path[108];     /* unix socket path, empty for TCP */
    int db;             /* 0 when not given */
    char user[128];     /* a Redis 6 ACL user, "" for the default user */
    char password[256]; /* "" when none: no AUTH */
    int tls;            /* 1 for rediss:// */
    /* TLS files from the flags (main sets them; the parser leaves them NULL): the CA bundle
     * that signs the server (NULL: the system store), the client certificate and its key. */
    const char *ca_file, *cert_file, *key_file;
};

/* Parses "text". Returns 0, or -1 with a reason in "err" ("errlen" bytes). */
int redis_url_parse(const char *text, struct redis_url *out, char *err, size_t errlen);

/* Writes "text" into "out" ("cap" bytes) fit for a log line: a password in the URL's userinfo
 * ("redis://user:password@host", "redis://:password@host", or a userinfo that is a password
 * alone) or in a query parameter named password becomes "***". Returns "out". */
const char *redis_url_redact(const char *text, char *out, size_t cap);

/* What refused a session whose AUTH Redis answered with "error": "Redis refused the
 * credentials" (a wrong password or user, or AUTH where Redis wants none) or "Redis refused the
 * session" (maxclients, protected mode: Redis says so to whatever command comes first). */
const char *redis_auth_refusal(const char *error);

#endif
