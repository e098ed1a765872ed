/* redis_sync.c - blocking Redis connections: hiredis for TCP and unix sockets, a small client
 * of ours for TLS.
 *
 * Why and how. hiredis 0.14 (Debian 12) has no TLS and no hook to put TLS under its
 * redisContext, whose reads and writes are plain read(2)/write(2) on its descriptor. Its two
 * halves work on their own, though: redisFormatCommandArgv encodes a command, and a
 * redisReader parses replies from whatever bytes it is fed. A TLS connection here is
 * therefore a socket, an OpenSSL SSL and a reader:
 *   - connect: a non-blocking connect(2) waited for with poll(2) up to the timeout; then the
 *     socket blocks again with SO_SNDTIMEO and SO_RCVTIMEO set to the timeout (as hiredis'
 *     redisSetTimeout does), and SSL_connect verifies the server (common/redis_tls.c);
 *   - commands are formatted into an output buffer (so pipelining works as with hiredis'
 *     redisAppendCommandArgv) and written in full when a reply is wanted;
 *   - replies: SSL_read into the reader until it yields one; a read or write that times out
 *     fails the connection, as hiredis does.
 * Everything above redis_sync_append and redis_sync_get_reply is the same for both kinds.
 * Invariant: a connection that failed once stays failed (redis_sync_broken), so no caller
 * ever reads a reply that belongs to an earlier command. */
#include "projection/redis_sync.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/digits.h"
#include "common/redis_tls.h"
#include "common/xmalloc.h"
#include "readmodel/layout.h"

struct redis_sync {
    redisContext *plain; /* TCP or unix socket: hiredis does the I/O; NULL over TLS */
    /* TLS only: */
    int fd;
    SSL_CTX *tls_ctx;
    SSL *ssl;
    redisReader *reader;
    char *out; /* formatted commands not yet written */
    size_t out_len, out_cap;
    int broken;
    char errstr[256];
};

static void fail(struct redis_sync *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct redis_sync *r, const char *fmt, ...)
{
    if (r->broken) return; /* the first cause is the one worth reporting */
    va_list args;
    va_start(args, fmt);
    vsnprintf(r->errstr, sizeof(r->errstr), fmt, args);
    va_end(args);
    r->broken = 1;
}

/* Waits up to "timeout_ms" for the non-blocking connect on "fd". Returns 0, or -1 with errno. */
static int wait_connected(int fd, int timeout_ms)
{
    struct pollfd waiting = {.fd = fd, .events = POLLOUT};
    int n;
    do
        n = poll(&waiting, 1, timeout_ms);
    while (n < 0 && errno == EINTR);
    if (n == 0) errno = ETIMEDOUT;
    if (n <= 0) return -1;
    int so_error = 0;
    socklen_t len = sizeof(so_error);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) < 0) return -1;
    if (so_error) {
        errno = so_error;
        return -1;
    }
    return 0;
}

/* Opens a TCP connection to "url" within "timeout_ms", then makes it blocking with that
 * timeout on every read and write. Returns the descriptor, or -1 with a reason in "err". */
static int tcp_connect(const struct redis_url *url, int timeout_ms, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *found = NULL;
    char port[8];
    snprintf(port, sizeof(port), "%d", url->port);
    int rc = getaddrinfo(url->host, port, &hints, &found);
    if (rc != 0) {
        snprintf(err, errlen, "cannot connect to Redis: %s", gai_strerror(rc));
        return -1;
    }
    int fd = -1, why = ECONNREFUSED;
    for (struct addrinfo *a = found; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            why = errno;
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
        if (errno == EINPROGRESS && wait_connected(fd, timeout_ms) == 0) break;
        why = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(found);
    if (fd < 0) {
        snprintf(err, errlen, "cannot connect to Redis: %s", strerror(why));
        return -1;
    }
    struct timeval timeout = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    int one = 1;
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout)) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) {
        snprintf(err, errlen, "cannot connect to Redis: %s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* Whether an SSL call failed with "code" because the socket's timeout ran out: OpenSSL takes
 * the EAGAIN of a blocking socket's timeout for a retry. */
static int tls_timed_out(int code)
{
    return code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE ||
           (code == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK));
}

/* Why the SSL call that returned "ret" failed, in words; the connection is failed. Returns
 * whether it timed out. */
static int tls_io_failed(struct redis_sync *r, int ret)
{
    int code = SSL_get_error(r->ssl, ret), timed_out = tls_timed_out(code);
    if (code == SSL_ERROR_ZERO_RETURN || (code == SSL_ERROR_SYSCALL && errno == 0)) {
        fail(r, "connection closed by Redis");
    } else if (timed_out) {
        fail(r, "Redis did not answer in time");
    } else if (code == SSL_ERROR_SYSCALL) {
        fail(r, "%s", strerror(errno));
    } else {
        char why[200];
        fail(r, "%s", redis_tls_failure(r->ssl, "TLS error", why, sizeof(why)));
    }
    ERR_clear_error();
    return timed_out;
}

static struct redis_sync *tls_connect(const struct redis_url *url, int timeout_ms, char *err,
                                      size_t errlen)
{
    SSL_CTX *ctx = redis_tls_context_new(url, err, errlen);
    if (!ctx) return NULL;
    int fd = tcp_connect(url, timeout_ms, err, errlen);
    if (fd < 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    struct redis_sync *r = xcalloc(1, sizeof(*r));
    r->fd = fd;
    r->tls_ctx = ctx;
    r->reader = redisReaderCreate();
    r->ssl = SSL_new(ctx);
    if (!r->reader || !r->ssl || SSL_set_fd(r->ssl, fd) != 1) xmalloc_fail();
    unsigned char ip[16];
    if (inet_pton(AF_INET, url->host, ip) != 1 && inet_pton(AF_INET6, url->host, ip) != 1)
        SSL_set_tlsext_host_name(r->ssl, url->host); /* SNI carries names, not addresses */
    ERR_clear_error();
    errno = 0;
    int ret = SSL_connect(r->ssl);
    if (ret != 1) {
        int timed_out = tls_io_failed(r, ret);
        snprintf(err, errlen, "cannot connect to Redis: %s%s", r->errstr,
                 timed_out ? " in the TLS handshake (does it speak TLS on that port?)" : "");
        redis_sync_close(r);
        return NULL;
    }
    return r;
}

/* Writes the queued commands in full. Returns 0, or -1 with the connection failed. */
static int tls_flush(struct redis_sync *r)
{
    size_t done = 0;
    while (done < r->out_len) {
        size_t written = 0;
        ERR_clear_error();
        errno = 0;
        int ret = SSL_write_ex(r->ssl, r->out + done, r->out_len - done, &written);
        if (ret != 1) {
            tls_io_failed(r, ret);
            return -1;
        }
        done += written;
    }
    r->out_len = 0;
    return 0;
}

struct redis_sync *redis_sync_connect(const struct redis_url *url, int timeout_ms, char *err,
                                      size_t errlen)
{
    struct redis_sync *r = NULL;
    if (url->tls) {
        r = tls_connect(url, timeout_ms, err, errlen);
        if (!r) return NULL;
    } else {
        struct timeval timeout = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
        redisContext *plain = url->path[0] ? redisConnectUnixWithTimeout(url->path, timeout)
                                           : redisConnectWithTimeout(url->host, url->port, timeout);
        if (!plain || plain->err) {
            snprintf(err, errlen, "cannot connect to Redis: %s",
                     plain ? plain->errstr : "no memory");
            redisFree(plain);
            return NULL;
        }
        redisSetTimeout(plain, timeout);
        r = xcalloc(1, sizeof(*r));
        r->plain = plain;
        r->fd = -1;
    }
    if (url->password[0]) {
        /* AUTH [user] password: without a user, the password moves to the user's place. */
        int argc = url->user[0] ? 3 : 2;
        const char *argv[] = {"AUTH", argc == 3 ? url->user : url->password, url->password};
        char why[200];
        redisReply *reply = redis_sync_command(r, argc, argv, NULL, why, sizeof(why));
        if (!reply) {
            snprintf(err, errlen, "%s: %s", redis_auth_refusal(why), why);
            redis_sync_close(r);
            return NULL;
        }
        freeReplyObject(reply);
    }
    /* Over TLS 1.3 a server that refuses our client certificate says so only after the
     * handshake: without AUTH, SELECT's reply is the first sign that the session works. */
    if (url->db != 0 || (url->tls && !url->password[0])) {
        char db[16];
        snprintf(db, sizeof(db), "%d", url->db);
        const char *argv[] = {"SELECT", db};
        redisReply *reply = redis_sync_command(r, 2, argv, NULL, err, errlen);
        if (!reply) {
            redis_sync_close(r);
            return NULL;
        }
        freeReplyObject(reply);
    }
    return r;
}

void redis_sync_close(struct redis_sync *r)
{
    if (!r) return;
    redisFree(r->plain);
    if (r->ssl) {
        if (!r->broken) SSL_shutdown(r->ssl); /* close_notify, not waiting for Redis' */
        SSL_free(r->ssl);
    }
    SSL_CTX_free(r->tls_ctx);
    if (r->reader) redisReaderFree(r->reader);
    if (!r->plain && r->fd >= 0) close(r->fd);
    free(r->out);
    free(r);
}

int redis_sync_broken(const struct redis_sync *r)
{
    return r->plain ? r->plain->err != 0 : r->broken;
}

int redis_sync_idle_and_open(const struct redis_sync *r)
{
    if (redis_sync_broken(r)) return 0;
    char byte;
    ssize_t got = recv(r->plain ? r->plain->fd : r->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

void redis_sync_append(struct redis_sync *r, int argc, const char **argv, const size_t *argvlen)
{
    if (r->plain) {
        redisAppendCommandArgv(r->plain, argc, argv, argvlen); /* fails only out of memory */
        return;
    }
    char *command;
    int len = redisFormatCommandArgv(&command, argc, argv, argvlen);
    if (len < 0) xmalloc_fail();
    if (r->out_len + (size_t)len > r->out_cap) {
        r->out_cap = (r->out_len + (size_t)len) * 2;
        r->out = xrealloc(r->out, r->out_cap);
    }
    memcpy(r->out + r->out_len, command, (size_t)len);
    r->out_len += (size_t)len;
    redisFreeCommand(command);
}

int redis_sync_get_reply(struct redis_sync *r, redisReply **reply, char *err, size_t errlen)
{
    void *found = NULL;
    *reply = NULL;
    if (r->plain) {
        if (redisGetReply(r->plain, &found) != REDIS_OK) {
            snprintf(err, errlen, "%s", r->plain->errstr[0] ? r->plain->errstr : "no reply");
            return -1;
        }
        *reply = found;
        return 0;
    }
    /* A reply already parsed (pipelining) comes first; else send what is queued and read. */
    if (!r->broken && redisReaderGetReply(r->reader, &found) != REDIS_OK)
        fail(r, "unreadable reply from Redis: %s", r->reader->errstr);
    if (!r->broken && !found) tls_flush(r);
    while (!r->broken && !found) {
        char bytes[16384];
        size_t n = 0;
        ERR_clear_error();
        errno = 0;
        int ret = SSL_read_ex(r->ssl, bytes, sizeof(bytes), &n);
        if (ret != 1) {
            tls_io_failed(r, ret);
            break;
        }
        if (redisReaderFeed(r->reader, bytes, n) != REDIS_OK ||
            redisReaderGetReply(r->reader, &found) != REDIS_OK)
            fail(r, "unreadable reply from Redis: %s", r->reader->errstr);
    }
    if (r->broken) {
        if (found) freeReplyObject(found);
        snprintf(err, errlen, "%s", r->errstr);
        return -1;
    }
    *reply = found;
    return 0;
}

/* One command, one reply of any type; NULL with "err" ("Redis NAME: why") when the
 * connection failed. */
static redisReply *round_trip(struct redis_sync *r, int argc, const char **argv,
                              const size_t *argvlen, char *err, size_t errlen)
{
    redisReply *reply;
    char why[256];
    redis_sync_append(r, argc, argv, argvlen);
    if (redis_sync_get_reply(r, &reply, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "Redis %s: %s", argv[0], why);
        return NULL;
    }
    return reply;
}

redisReply *redis_sync_command(struct redis_sync *redis, int argc, const char **argv,
                               const size_t *argvlen, char *err, size_t errlen)
{
    redisReply *reply = round_trip(redis, argc, argv, argvlen, err, errlen);
    if (!reply) return NULL;
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "Redis %s: %.*s", argv[0], (int)reply->len, reply->str);
        freeReplyObject(reply);
        return NULL;
    }
    return reply;
}

int redis_sync_get_generation(struct redis_sync *redis, const char *key, long long *gen, char *err,
                              size_t errlen)
{
    const char *argv[] = {"GET", key};
    redisReply *reply = round_trip(redis, 2, argv, NULL, err, errlen); /* WRONGTYPE included */
    if (!reply) return -1;
    int rc = 1;
    int64_t value;
    if (reply->type == REDIS_REPLY_STRING) {
        rc = digits_parse_canonical(reply->str, reply->len, 1, GENERATION_MAX, &value) == 0 ? 0 : 2;
        if (rc == 0) *gen = value;
    } else if (reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "WRONGTYPE", 9) == 0) {
        rc = 2; /* a hash or a list written there by hand names no generation either */
    } else if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "Redis GET: %.*s", (int)reply->len, reply->str);
        rc = -1;
    } else if (reply->type != REDIS_REPLY_NIL) {
        snprintf(err, errlen, "%s: unexpected reply type %d", key, reply->type);
        rc = -1;
    }
    freeReplyObject(reply);
    return rc;
}

int redis_sync_get_int(struct redis_sync *redis, const char *key, long long *value, char *err,
                       size_t errlen)
{
    const char *argv[] = {"GET", key};
    redisReply *reply = redis_sync_command(redis, 2, argv, NULL, err, errlen);
    if (!reply) return -1;
    int rc = 1;
    if (reply->type == REDIS_REPLY_STRING) {
        char *end;
        *value = strtoll(reply->str, &end, 10);
        rc = (reply->len > 0 && *end == '\0') ? 0 : -1;
        if (rc < 0) snprintf(err, errlen, "%s holds no number", key);
    } else if (reply->type != REDIS_REPLY_NIL) {
        snprintf(err, errlen, "%s: unexpected reply type %d", key, reply->type);
        rc = -1;
    }
    freeReplyObject(reply);
    return rc;
}

redisReply *redis_sync_script(struct redis_sync *redis, struct script *s,
                              const struct script_guard *guards, size_t guard_count, size_t argc,
                              const char *const *argv, const size_t *argvlen, char *err,
                              size_t errlen)
{
    /* EVALSHA sha numkeys guard_count, the guards' pairs, then the arguments */
    size_t total = 4 + 2 * guard_count + argc;
    const char **all = xmalloc(total * sizeof(*all));
    size_t *lens = xmalloc(total * sizeof(*lens));
    char count_text[DIGITS_U64_MAX];
    size_t n = 0;
    all[n] = "EVALSHA";
    lens[n++] = 7;
    all[n] = script_sha(s);
    lens[n++] = SCRIPT_SHA_LEN;
    all[n] = "0";
    lens[n++] = 1;
    all[n] = count_text;
    lens[n++] = digits_u64(count_text, guard_count);
    for (size_t i = 0; i < guard_count; i++) {
        all[n] = guards[i].key;
        lens[n++] = strlen(guards[i].key);
        all[n] = guards[i].value;
        lens[n++] = strlen(guards[i].value);
    }
    for (size_t i = 0; i < argc; i++) {
        all[n] = argv[i];
        lens[n++] = argvlen ? argvlen[i] : strlen(argv[i]);
    }
    redisReply *reply = round_trip(redis, (int)n, all, lens, err, errlen);
    if (reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0) {
        freeReplyObject(reply);
        all[0] = "EVAL";
        lens[0] = 4;
        all[1] = script_text(s, &lens[1]);
        reply = round_trip(redis, (int)n, all, lens, err, errlen);
    }
    free(all);
    free(lens);
    return reply;
}
