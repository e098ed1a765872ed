/* redis_client.c - RESP over an h2o socket: commands are encoded straight into the output
 * buffer, replies are parsed with hiredis' reader and matched to calls in FIFO order.
 * For rediss:// the socket does TLS first (h2o's client-side handshake, the context from
 * common/redis_tls.c verifying the server), and the same RESP code then runs over it.
 * Invariant: every queued call gets exactly one outcome (its reply, or NULL on failure),
 * unless it was cancelled, and a call's callback never runs after cancellation. */
#include "query/redis_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/digits.h"
#include "common/log.h"
#include "common/redis_tls.h"
#include "common/xmalloc.h"
#include "query/reply_reader.h"
#include "readmodel/confirmed_run.h"

#define TICK_MS        50
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 1000
#define FEED_BYTES     4096

/* Over every loop's client in the process. A client whose connection failed tries again at
 * once when another client's session began since its last attempt did, rather than at the end
 * of its backoff (up to a second): after an outage every loop is back within a tick of the
 * first, not one loop serving and another answering 503. And /ready fails while any loop's
 * queries would. */
static atomic_ulong sessions_begun;
static atomic_int clients_down;
/* Why a client that is down last failed, for /ready to say: the client that wrote it, and
 * "" once that one has a session again (another one down says why at its next attempt). */
static pthread_mutex_t clients_problem_lock = PTHREAD_MUTEX_INITIALIZER;
static char clients_problem[200];
static const struct redis_client *clients_problem_of;

/* The input buffer of Redis connections. h2o reads until the socket is empty, doubling (and
 * copying) a buffer that fills up; h2o's own starts at 8 KiB, and a burst of catalog pages
 * (some 28 KiB each, one per client connection) copied itself several times per read. This
 * one holds such a burst at once and is recycled, so it is allocated once per thread. */
static __thread h2o_buffer_prototype_t redis_input_prototype = {
    .allocator = {.max = 2},
    ._initial_buf = {.capacity = 1024 * 1024},
};

struct redis_call {
    redis_reply_fn fn; /* NULL once cancelled */
    void *arg;
    uint64_t queued_at;
    struct redis_call *next;
};

struct buffer {
    char *base;
    size_t len, cap;
};

struct redis_client {
    h2o_loop_t *loop;
    struct redis_url url;
    uint64_t timeout_ms;
    void (*on_connect)(void *arg);
    void *on_connect_arg;

    SSL_CTX *tls_ctx; /* rediss:// only; NULL when its files could not be loaded */
    char tls_problem[200];
    h2o_socket_t *sock;
    int connected;
    char run_id[RUN_ID_LEN + 1]; /* of the Redis connected to, once it said; "" before */
    redisReader *reader;
    struct buffer pending, in_flight; /* commands not yet written / being written */
    int writing;
    uint64_t batch; /* the number of "pending": bumped whenever pending is written or dropped */

    struct redis_call *head, *tail; /* calls awaiting replies, oldest first */
    struct redis_call *free_calls;

    h2o_timeout_t zero_timeout, tick_timeout;
    h2o_timeout_entry_t flush_entry, tick_entry, reconnect_entry;
    uint64_t progress_at; /* when Redis last sent a byte, or the queue last became non-empty */
    uint64_t reconnect_at;
    uint64_t backoff_ms;
    uint64_t reconnected_at_once; /* when a lost connection was last tried again at once */
    uint64_t connecting_since;    /* when the attempt under way began */
    unsigned long sessions_seen;  /* sessions_begun when the last attempt began, or this
                                   * client's own session */
    int in_session;               /* a usable session: from usable() to disconnect() */
    int down;                     /* counted in clients_down: an attempt failed or the
                                   * session was lost, and no usable session since */

    unsigned long errors, reconnects;
    int ever_connected;
    char last_problem[200]; /* logged once; "" after a good connection */
    char why_down[200];     /* why the last attempt failed or the session was lost; "" in one */
    /* The last few errors Redis answered queries with, each logged once while it is here, and
     * at most one line a second: a query that keeps failing, or several kinds that fail in
     * turn, log a line or a few, not one per request. */
    char told[4][200];
    int told_next;
    uint64_t told_at;     /* when the last line was logged (h2o_now) */
    unsigned long untold; /* errors not logged since, for the rate */
};

static void start_connect(struct redis_client *c);
static void tell_bad_reply(struct redis_client *c, const redisReply *reply);

/* Room for "n" more bytes at the end of "b": where to write them. */
static char *reserve(struct buffer *b, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->base = xrealloc(b->base, b->cap);
    }
    return b->base + b->len;
}

/* Writes "<kind><number>\r\n" at "at"; returns the end. */
static char *put_number_line(char *at, char kind, size_t number)
{
    *at++ = kind;
    at += digits_u64(at, number);
    *at++ = '\r';
    *at++ = '\n';
    return at;
}

/* Appends a command in RESP (an array of bulk strings), sized first and written in one go. */
static void append_command(struct buffer *b, int argc, const char *const *argv,
                           const size_t *argvlen)
{
    const size_t line_max = 1 + DIGITS_U64_MAX + 2; /* "$<length>\r\n" */
    size_t need = line_max;
    for (int i = 0; i < argc; i++)
        need += line_max + argvlen[i] + 2;
    char *start = reserve(b, need), *at = put_number_line(start, '*', (size_t)argc);
    for (int i = 0; i < argc; i++) {
        at = put_number_line(at, '$', argvlen[i]);
        memcpy(at, argv[i], argvlen[i]);
        at += argvlen[i];
        *at++ = '\r';
        *at++ = '\n';
    }
    b->len += (size_t)(at - start);
}

static struct redis_call *new_call(struct redis_client *c)
{
    struct redis_call *call = c->free_calls;
    if (call)
        c->free_calls = call->next;
    else
        call = xmalloc(sizeof(*call));
    memset(call, 0, sizeof(*call));
    return call;
}

static void recycle_call(struct redis_client *c, struct redis_call *call)
{
    call->next = c->free_calls;
    c->free_calls = call;
}

static struct redis_call *pop_call(struct redis_client *c)
{
    struct redis_call *call = c->head;
    if (call) {
        c->head = call->next;
        if (!c->head) c->tail = NULL;
    }
    return call;
}

/* Fails every waiting call, closes the socket and schedules a reconnect. */
static void disconnect(struct redis_client *c, const char *why)
{
    int was_working = c->in_session; /* one Redis refused or never answered did not work */
    if (c->sock) {
        /* The same problem again and again (a wrong password) is logged once. */
        if ((c->connected || c->ever_connected) && strcmp(why, c->last_problem) != 0)
            LOG(LOG_WARN, "redis client: %s", why);
        snprintf(c->last_problem, sizeof(c->last_problem), "%s", why);
        h2o_socket_close(c->sock);
        c->sock = NULL;
    }
    snprintf(c->why_down, sizeof(c->why_down), "%s", why);
    pthread_mutex_lock(&clients_problem_lock);
    snprintf(clients_problem, sizeof(clients_problem), "%s", why);
    clients_problem_of = c;
    pthread_mutex_unlock(&clients_problem_lock);
    c->connected = 0;
    c->in_session = 0;
    if (!c->down) {
        c->down = 1;
        atomic_fetch_add(&clients_down, 1);
    }
    c->run_id[0] = '\0';
    c->writing = 0;
    c->pending.len = c->in_flight.len = 0;
    c->batch++;
    if (c->reader) reply_reader_free(c->reader);
    c->reader = NULL;
    c->errors++;
    struct redis_call *call;
    while ((call = pop_call(c)) != NULL) {
        if (call->fn) call->fn(NULL, call->arg);
        recycle_call(c, call);
    }
    uint64_t now = h2o_now(c->loop);
    /* A connection that worked and was lost (CLIENT KILL, a proxy's idle cut, a restart) is
     * tried again at once rather than at a tick after the backoff, which meant 50-100 ms of
     * 503s; attempts after a failed one back off, and at most one a second goes at once. */
    if (was_working && now - c->reconnected_at_once >= BACKOFF_MAX_MS) {
        c->reconnected_at_once = now;
        c->reconnect_at = now;
        if (!h2o_timeout_is_linked(&c->reconnect_entry))
            h2o_timeout_link(c->loop, &c->zero_timeout, &c->reconnect_entry);
        return;
    }
    c->reconnect_at = now + c->backoff_ms;
    c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
}

static void flush(struct redis_client *c);

static void on_written(h2o_socket_t *sock, const char *err)
{
    struct redis_client *c = sock->data;
    if (err) {
        /* h2o says "I/O error" whichever way it broke: one text, so that it is logged once */
        disconnect(c, "connection to Redis lost");
        return;
    }
    c->writing = 0;
    c->in_flight.len = 0;
    flush(c);
}

static void flush(struct redis_client *c)
{
    if (!c->sock || c->writing || c->pending.len == 0) return;
    struct buffer swap = c->in_flight;
    c->in_flight = c->pending;
    c->pending = swap;
    c->batch++;
    h2o_iovec_t bytes = h2o_iovec_init(c->in_flight.base, c->in_flight.len);
    c->writing = 1;
    h2o_socket_write(c->sock, &bytes, 1, on_written);
}

static void on_flush_timer(h2o_timeout_entry_t *entry)
{
    flush(H2O_STRUCT_FROM_MEMBER(struct redis_client, flush_entry, entry));
}

static void on_reconnect_due(h2o_timeout_entry_t *entry)
{
    struct redis_client *c = H2O_STRUCT_FROM_MEMBER(struct redis_client, reconnect_entry, entry);
    if (!c->sock) start_connect(c);
}

/* Hands every whole reply the reader holds to its call. Returns 0 when the connection was
 * closed meanwhile (a broken reply, or a callback that closed it). */
static int deliver_replies(struct redis_client *c)
{
    for (;;) {
        void *reply = NULL;
        if (redisReaderGetReply(c->reader, &reply) != REDIS_OK) {
            disconnect(c, "unreadable reply from Redis");
            return 0;
        }
        if (!reply) return 1;
        struct redis_call *call = pop_call(c);
        if (!call) {
            reply_reader_release(c->reader);
            disconnect(c, "a reply nobody asked for");
            return 0;
        }
        if (call->fn)
            call->fn(reply, call->arg);
        else if (((redisReply *)reply)->type == REDIS_REPLY_ERROR)
            tell_bad_reply(c, reply); /* a command queued in a MULTI refused: EXEC says less */
        recycle_call(c, call);
        if (!c->sock) return 0; /* a callback closed the connection, and freed the reader */
        reply_reader_release(c->reader);
    }
}

/* The reader is fed FEED_BYTES at a time: after each reply it moves the bytes it still holds
 * to the front of its buffer, so fed a burst of pages at once it would move the rest of the
 * burst once per reply. */
static void on_read(h2o_socket_t *sock, const char *err)
{
    struct redis_client *c = sock->data;
    if (err) {
        disconnect(c, "connection to Redis lost");
        return;
    }
    c->progress_at = h2o_now(c->loop);
    while (sock->input->size > 0) {
        size_t piece = sock->input->size < FEED_BYTES ? sock->input->size : FEED_BYTES;
        redisReaderFeed(c->reader, sock->input->bytes, piece);
        h2o_buffer_consume(&sock->input, piece);
        if (!deliver_replies(c)) return;
    }
}

/* The connection is usable: say so if it was lost before. */
static void usable(struct redis_client *c)
{
    if (c->ever_connected && c->last_problem[0]) {
        c->reconnects++;
        LOG(LOG_INFO, "redis client: reconnected");
    }
    c->ever_connected = 1;
    c->last_problem[0] = '\0';
    c->why_down[0] = '\0';
    pthread_mutex_lock(&clients_problem_lock);
    if (clients_problem_of == c) clients_problem[0] = '\0';
    pthread_mutex_unlock(&clients_problem_lock);
    /* Only a session that works ends the backoff: one that Redis refuses (a wrong password,
     * maxclients) is an attempt that failed. */
    c->backoff_ms = BACKOFF_MIN_MS;
    c->in_session = 1;
    if (c->down) {
        c->down = 0;
        atomic_fetch_sub(&clients_down, 1);
    }
    c->sessions_seen = atomic_fetch_add(&sessions_begun, 1) + 1; /* its own is no news to it */
}

static void on_auth(const redisReply *reply, void *arg)
{
    struct redis_client *c = arg;
    if (!reply || reply->type != REDIS_REPLY_ERROR) return; /* a failed connection says why */
    char why[200];
    snprintf(why, sizeof(why), "%s: %.*s", redis_auth_refusal(reply->str), (int)reply->len,
             reply->str);
    disconnect(c, why);
}

/* A database Redis does not have, or a session it refuses before any command (maxclients):
 * queries would otherwise go to database 0, or wait for INFO to fail. */
static void on_select(const redisReply *reply, void *arg)
{
    struct redis_client *c = arg;
    if (!reply || reply->type != REDIS_REPLY_ERROR) return;
    char why[200];
    snprintf(why, sizeof(why), "Redis refused the session: %.*s", (int)reply->len, reply->str);
    disconnect(c, why);
}

/* The session's last step: its Redis' run id, which every query compares with the one the
 * read model was confirmed in (confirmed_run.h). Its reply is also the first sign that the
 * session works (over TLS 1.3, a server that refuses our client certificate says so only
 * after the handshake). */
static void on_run_id(const redisReply *reply, void *arg)
{
    struct redis_client *c = arg;
    if (!reply) return;
    char why[200];
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(why, sizeof(why), "%s: %.*s", run_id_refusal(reply->str), (int)reply->len,
                 reply->str);
        disconnect(c, why);
    } else if (reply->type != REDIS_REPLY_STRING ||
               confirmed_run_parse(reply->str, reply->len, c->run_id) < 0) {
        disconnect(c, "Redis' INFO names no run_id");
    } else {
        usable(c);
    }
}

/* The connection (TLS done, if any) is open: authenticate, select, ask for the run id, then
 * run queued calls. */
static void start_session(struct redis_client *c, h2o_socket_t *sock)
{
    c->connected = 1;
    c->reader = reply_reader_new();
    if (!c->reader) {
        disconnect(c, "out of memory");
        return;
    }
    h2o_socket_read_start(sock, on_read);
    if (c->url.password[0]) { /* first: every later command needs it */
        /* AUTH [user] password: without a user, the password moves to the user's place. */
        int argc = c->url.user[0] ? 3 : 2;
        const char *argv[] = {"AUTH", argc == 3 ? c->url.user : c->url.password, c->url.password};
        const size_t lens[] = {4, strlen(argv[1]), strlen(c->url.password)};
        redis_client_call(c, on_auth, c, argc, argv, lens);
    }
    if (c->url.db != 0) {
        char db[16];
        int n = snprintf(db, sizeof(db), "%d", c->url.db);
        const char *argv[] = {"SELECT", db};
        const size_t lens[] = {6, (size_t)n};
        redis_client_call(c, on_select, c, 2, argv, lens);
    }
    const char *info[] = {"INFO", "server"};
    const size_t info_lens[] = {4, 6};
    redis_client_call(c, on_run_id, c, 2, info, info_lens);
    if (c->on_connect) c->on_connect(c->on_connect_arg);
}

static void on_handshake(h2o_socket_t *sock, const char *err)
{
    struct redis_client *c = sock->data;
    /* h2o 2.2.5 checks the name once more after the handshake, DNS names only, so it calls an
     * IP address in the certificate's IP SANs a mismatch. OpenSSL has already checked the
     * name, IP addresses included, during the handshake (redis_tls.c sets it on the context),
     * and would have failed it: that one complaint of h2o's is redundant. */
    if (err && err != h2o_socket_error_ssl_cert_name_mismatch) {
        char why[200];
        snprintf(why, sizeof(why), "TLS handshake with Redis failed: %s", err);
        disconnect(c, why);
        return;
    }
    start_session(c, sock);
}

static void on_connected(h2o_socket_t *sock, const char *err)
{
    struct redis_client *c = sock->data;
    if (err) {
        disconnect(c, err);
        return;
    }
    if (c->url.tls)
        h2o_socket_ssl_handshake(sock, c->tls_ctx, c->url.host, on_handshake);
    else
        start_session(c, sock);
}

static int resolve(const struct redis_url *url, struct sockaddr_storage *addr, socklen_t *len)
{
    if (url->path[0]) {
        struct sockaddr_un *un = (struct sockaddr_un *)addr;
        memset(un, 0, sizeof(*un));
        un->sun_family = AF_UNIX;
        snprintf(un->sun_path, sizeof(un->sun_path), "%s", url->path);
        *len = sizeof(*un);
        return 0;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *found = NULL;
    char port[8];
    snprintf(port, sizeof(port), "%d", url->port);
    if (getaddrinfo(url->host, port, &hints, &found) != 0 || !found) return -1;
    memcpy(addr, found->ai_addr, found->ai_addrlen);
    *len = found->ai_addrlen;
    freeaddrinfo(found);
    return 0;
}

static void start_connect(struct redis_client *c)
{
    struct sockaddr_storage addr;
    socklen_t len;
    c->connecting_since = h2o_now(c->loop);
    c->sessions_seen = atomic_load(&sessions_begun);
    if (c->url.tls && !c->tls_ctx) {
        disconnect(c, c->tls_problem);
        return;
    }
    if (resolve(&c->url, &addr, &len) < 0) {
        disconnect(c, "cannot resolve the Redis host");
        return;
    }
    c->sock = h2o_socket_connect(c->loop, (struct sockaddr *)&addr, len, on_connected);
    if (!c->sock) {
        disconnect(c, "cannot connect to Redis");
        return;
    }
    c->sock->data = c;
    h2o_buffer_init(&c->sock->input, &redis_input_prototype); /* empty: nothing is read yet */
}

/* Fails, one by one, the calls that waited longer than the timeout while Redis is busy with
 * earlier ones; their replies are dropped when they come. Calls are queued oldest first. */
static void fail_overdue_calls(struct redis_client *c, uint64_t now)
{
    for (struct redis_call *call = c->head; call && now - call->queued_at > c->timeout_ms;
         call = call->next) {
        if (!call->fn) continue;
        redis_reply_fn fn = call->fn;
        call->fn = NULL;
        fn(NULL, call->arg);
    }
}

/* Every tick: when Redis sent nothing for the whole timeout while calls wait, it is hung or
 * gone: fail everything and reconnect. When it is only slow (a large reply ahead of small
 * ones), fail just the calls that are overdue. Reconnect when due. */
static void on_tick(h2o_timeout_entry_t *entry)
{
    struct redis_client *c = H2O_STRUCT_FROM_MEMBER(struct redis_client, tick_entry, entry);
    uint64_t now = h2o_now(c->loop);
    if (c->sock && c->head && now - c->progress_at > c->timeout_ms)
        disconnect(c, "Redis did not answer in time");
    else if (c->sock && c->head)
        fail_overdue_calls(c, now);
    else if (c->sock && !c->connected && now - c->connecting_since > c->timeout_ms)
        disconnect(c, "connecting to Redis timed out");
    else if (!c->sock &&
             (now >= c->reconnect_at || atomic_load(&sessions_begun) != c->sessions_seen))
        start_connect(c);
    h2o_timeout_link(c->loop, &c->tick_timeout, &c->tick_entry);
}

struct redis_client *redis_client_new(h2o_loop_t *loop, const struct redis_url *url, int timeout_ms,
                                      void (*on_connect)(void *arg), void *arg)
{
    struct redis_client *c = xcalloc(1, sizeof(*c));
    c->loop = loop;
    c->url = *url;
    c->timeout_ms = (uint64_t)timeout_ms;
    c->on_connect = on_connect;
    c->on_connect_arg = arg;
    c->backoff_ms = BACKOFF_MIN_MS;
    /* Not counted down while its first attempt is under way: the loop that answers /ready
     * got its answer from the same Redis, so this one most likely will too, and a /ready
     * that blamed a healthy Redis for the first milliseconds of the process would be wrong
     * more often than right. It counts once an attempt fails. */
    if (url->tls) c->tls_ctx = redis_tls_context_new(url, c->tls_problem, sizeof(c->tls_problem));
    h2o_timeout_init(loop, &c->zero_timeout, 0);
    h2o_timeout_init(loop, &c->tick_timeout, TICK_MS);
    c->flush_entry.cb = on_flush_timer;
    c->tick_entry.cb = on_tick;
    c->reconnect_entry.cb = on_reconnect_due;
    h2o_timeout_link(loop, &c->tick_timeout, &c->tick_entry);
    c->reconnect_at = h2o_now(loop);
    start_connect(c);
    return c;
}

int redis_clients_down(void)
{
    return atomic_load(&clients_down);
}

void redis_clients_problem(char *out, size_t cap)
{
    pthread_mutex_lock(&clients_problem_lock);
    snprintf(out, cap, "%s", clients_problem);
    pthread_mutex_unlock(&clients_problem_lock);
}

const char *redis_client_problem(const struct redis_client *c)
{
    return c->why_down;
}

int redis_client_connected(const struct redis_client *c)
{
    return c->connected;
}

const char *redis_client_run_id(const struct redis_client *c)
{
    return c->run_id;
}

struct redis_call *redis_client_call(struct redis_client *c, redis_reply_fn fn, void *arg, int argc,
                                     const char *const *argv, const size_t *argvlen)
{
    if (!c->connected) return NULL;
    append_command(&c->pending, argc, argv, argvlen);
    struct redis_call *call = new_call(c);
    call->fn = fn;
    call->arg = arg;
    call->queued_at = h2o_now(c->loop);
    if (!c->head) c->progress_at = call->queued_at; /* Redis owes nothing older */
    if (c->tail)
        c->tail->next = call;
    else
        c->head = call;
    c->tail = call;
    /* Written after this loop turn's other events, so one write carries all of them. */
    if (!h2o_timeout_is_linked(&c->flush_entry))
        h2o_timeout_link(c->loop, &c->zero_timeout, &c->flush_entry);
    return call;
}

uint64_t redis_client_batch(const struct redis_client *c)
{
    return c->batch;
}

uint64_t redis_client_now(const struct redis_client *c)
{
    return h2o_now(c->loop);
}

void redis_call_cancel(struct redis_call *call)
{
    call->fn = NULL;
}

/* Logs what Redis said in "reply" (its error, or the first error among its elements), unless
 * it is among the errors told lately. */
static void tell_bad_reply(struct redis_client *c, const redisReply *reply)
{
    const redisReply *error = reply && reply->type == REDIS_REPLY_ERROR ? reply : NULL;
    for (size_t i = 0; !error && reply && reply->type == REDIS_REPLY_ARRAY && i < reply->elements;
         i++)
        if (reply->element[i]->type == REDIS_REPLY_ERROR) error = reply->element[i];
    char said[sizeof(c->told[0])];
    if (error)
        snprintf(said, sizeof(said), "%.*s", (int)error->len, error->str);
    else
        snprintf(said, sizeof(said), "an answer of another form");
    for (size_t i = 0; i < sizeof(c->told) / sizeof(c->told[0]); i++)
        if (strcmp(said, c->told[i]) == 0) return;
    uint64_t now = h2o_now(c->loop);
    if (c->told_at && now - c->told_at < 1000) {
        c->untold++; /* told at the next line, and then itself when it comes again */
        return;
    }
    if (c->untold)
        LOG(LOG_WARN,
            "redis client: Redis answered a query with %s (and %lu other errors since the last "
            "line)",
            said, c->untold);
    else
        LOG(LOG_WARN, "redis client: Redis answered a query with %s", said);
    c->told_at = now;
    c->untold = 0;
    memcpy(c->told[c->told_next], said, sizeof(said));
    c->told_next = (c->told_next + 1) % (int)(sizeof(c->told) / sizeof(c->told[0]));
}

void redis_client_count_bad_reply(struct redis_client *c, const redisReply *reply)
{
    c->errors++;
    tell_bad_reply(c, reply);
}

unsigned long redis_client_errors(const struct redis_client *c)
{
    return c->errors;
}

unsigned long redis_client_reconnects(const struct redis_client *c)
{
    return c->reconnects;
}
