/* main.c - the catalogd command line: serve | verify | rebuild, with flags that each have an
 * environment variable. Flags are a table read by one loop. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app.h"
#include "command/inflight_keys.h"
#include "command/store.h"
#include "command/writer.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "http/server.h"
#include "http/tls.h"
#include "projection/apply.h"
#include "projection/generations.h"
#include "projection/maintenance.h"
#include "projection/projector.h"
#include "projection/rebuild.h"
#include "projection/redis_sync.h"
#include "projection/verify.h"
#include "readmodel/layout.h"

#define CATALOGD_VERSION   "0.1.0"
#define SHUTDOWN_GRACE_MS  5000
#define PROJECTOR_DRAIN_MS 2000

struct options {
    const char *listen;
    const char *db;
    const char *redis;
    const char *threads;
    const char *api_token;
    const char *durability;
    const char *log_level;
    const char *prefix;
    const char *max_connections;
    const char *idle_timeout;
    const char *max_body_bytes;
    const char *max_header_bytes;
    const char *allowed_hosts;
    const char *max_idempotency_keys;
    const char *max_queued_commands;
    const char *tls_cert;
    const char *tls_key;
    int allow_open_writes;
    int http2;
    char *joined; /* the values of a repeated flag, joined: freed by main */
};

struct flag {
    const char *name;
    const char *env; /* NULL: no environment variable */
    const char *fallback_env;
    size_t offset; /* of the const char * in struct options */
    const char *help;
    int repeatable; /* each use on the command line adds a comma-separated entry */
};

#define OPT(field) offsetof(struct options, field)

static const struct flag FLAGS[] = {
    {"listen", "CATALOGD_LISTEN", NULL, OPT(listen), "host:port to serve on (127.0.0.1:8000)", 0},
    {"db", "CATALOGD_DB", NULL, OPT(db), "SQLite write model (./var/catalog.db)", 0},
    {"redis", "CATALOGD_REDIS_URL", "REDIS_URL", OPT(redis),
     "redis://host:port/db or unix:///path?db=N (redis://127.0.0.1:6379/0)", 0},
    {"threads", "CATALOGD_THREADS", NULL, OPT(threads), "event-loop threads (number of cores)", 0},
    {"api-token", "CATALOGD_API_TOKEN", NULL, OPT(api_token),
     "require Authorization: Bearer <token> on commands", 0},
    {"durability", "CATALOGD_DURABILITY", NULL, OPT(durability),
     "full (fsync per commit batch) or normal (full)", 0},
    {"log-level", "CATALOGD_LOG_LEVEL", NULL, OPT(log_level), "error, warn, info or debug (info)",
     0},
    {"redis-prefix", "CATALOGD_REDIS_PREFIX", NULL, OPT(prefix),
     "prefix of every Redis key (catalogd)", 0},
    {"max-connections", "CATALOGD_MAX_CONNECTIONS", NULL, OPT(max_connections),
     "open connections at once; more wait (4096)", 0},
    {"idle-timeout", "CATALOGD_IDLE_TIMEOUT", NULL, OPT(idle_timeout),
     "seconds a connection may be silent or spend on one request (10)", 0},
    {"max-body-bytes", "CATALOGD_MAX_BODY_BYTES", NULL, OPT(max_body_bytes),
     "larger request bodies get 413 unread (65536)", 0},
    {"max-header-bytes", "CATALOGD_MAX_HEADER_BYTES", NULL, OPT(max_header_bytes),
     "larger request line + headers get 431 (16384)", 0},
    {"max-idempotency-keys", "CATALOGD_MAX_IDEMPOTENCY_KEYS", NULL, OPT(max_idempotency_keys),
     "Idempotency-Keys stored at once (24 h each); a new one beyond gets 503 (1000000)", 0},
    {"max-queued-commands", "CATALOGD_MAX_QUEUED_COMMANDS", NULL, OPT(max_queued_commands),
     "commands waiting for the writer at once; more get 503 (10000)", 0},
    {"allowed-host", "CATALOGD_ALLOWED_HOSTS", NULL, OPT(allowed_hosts),
     "host or host:port that writes may name in Host and Origin, besides --listen and "
     "localhost (repeatable, or comma-separated)",
     1},
    {"tls-cert", "CATALOGD_TLS_CERT", NULL, OPT(tls_cert),
     "PEM certificate chain: serve HTTPS (with --tls-key)", 0},
    {"tls-key", "CATALOGD_TLS_KEY", NULL, OPT(tls_key), "PEM private key of --tls-cert", 0},
};
#define FLAG_COUNT (sizeof(FLAGS) / sizeof(FLAGS[0]))

static const char **option_slot(struct options *options, const struct flag *flag)
{
    return (const char **)((char *)options + flag->offset);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: catalogd serve|verify|rebuild [flags]\n"
                 "       catalogd --help | --version\n\nflags (each also an environment "
                 "variable):\n");
    for (size_t i = 0; i < FLAG_COUNT; i++)
        fprintf(out, "  --%-14s %-22s %s\n", FLAGS[i].name, FLAGS[i].env, FLAGS[i].help);
    fprintf(out, "  --%-14s %-22s %s\n", "allow-open-writes", "",
            "serve commands on a non-loopback address without a token");
    fprintf(out, "  --%-14s %-22s %s\n", "http2", "CATALOGD_HTTP2=1",
            "also offer h2 by ALPN over TLS; off because h2o 2.2.5 predates the HTTP/2 rapid-reset "
            "fix (CVE-2023-44487): resets are budgeted per connection, buffered stream bodies "
            "are not bounded (README, Security)");
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    fputs("catalogd: ", stderr);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fputs("\n", stderr);
    usage(stderr);
    return 2;
}

/* Fills "options" from the environment, then from argv. Returns 0, or an exit code. */
static int parse_flags(int argc, char **argv, struct options *options)
{
    struct option long_options[FLAG_COUNT + 3];
    for (size_t i = 0; i < FLAG_COUNT; i++) {
        long_options[i] = (struct option){FLAGS[i].name, required_argument, NULL, (int)i};
        const char *value = getenv(FLAGS[i].env);
        if ((!value || !*value) && FLAGS[i].fallback_env) value = getenv(FLAGS[i].fallback_env);
        if (value && *value) *option_slot(options, &FLAGS[i]) = value;
    }
    long_options[FLAG_COUNT] = (struct option){"allow-open-writes", no_argument, NULL, 1000};
    long_options[FLAG_COUNT + 1] = (struct option){"http2", no_argument, NULL, 1001};
    long_options[FLAG_COUNT + 2] = (struct option){0};
    const char *http2 = getenv("CATALOGD_HTTP2");
    options->http2 = http2 && (strcmp(http2, "1") == 0 || strcmp(http2, "true") == 0);
    opterr = 0;
    optind = 2; /* after the command */
    int index, given[FLAG_COUNT] = {0};
    while ((index = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
        if (index == 1000) {
            options->allow_open_writes = 1;
        } else if (index == 1001) {
            options->http2 = 1;
        } else if (index >= 0 && (size_t)index < FLAG_COUNT) {
            const char **slot = option_slot(options, &FLAGS[index]);
            if (FLAGS[index].repeatable && given[index]++) {
                char *joined = xmalloc(strlen(*slot) + strlen(optarg) + 2);
                sprintf(joined, "%s,%s", *slot, optarg);
                *slot = joined;
                free(options->joined);
                options->joined = joined;
            } else {
                *slot = optarg;
            }
        } else {
            return usage_error("unknown flag or missing value: %s", argv[optind - 1]);
        }
    }
    if (optind < argc) return usage_error("unexpected argument: %s", argv[optind]);
    return 0;
}

/* Validates "options" into "config". Returns 0, or an exit code. */
static int build_config(const struct options *options, struct app_config *config)
{
    char err[256];
    config->listen = options->listen;
    config->db_path = options->db;
    config->redis_text = options->redis;
    config->prefix = options->prefix;
    config->projection_wait_ms = 100;
    config->redis_timeout_ms = 500;
    if (redis_url_parse(options->redis, &config->redis, err, sizeof(err)) < 0)
        return usage_error("bad --redis: %s", err);
    char *end;
    long threads =
        options->threads ? strtol(options->threads, &end, 10) : sysconf(_SC_NPROCESSORS_ONLN);
    if (options->threads && (*end || threads < 1 || threads > 256))
        return usage_error("bad --threads: %s (1-256)", options->threads);
    config->threads = threads > 0 ? (int)threads : 1;
    if (strcmp(options->durability, "full") == 0)
        config->durable = 1;
    else if (strcmp(options->durability, "normal") == 0)
        config->durable = 0;
    else
        return usage_error("bad --durability: %s (full or normal)", options->durability);
    long max_connections = strtol(options->max_connections, &end, 10);
    if (*end || max_connections < 1 || max_connections > 1000000)
        return usage_error("bad --max-connections: %s (1-1000000)", options->max_connections);
    config->max_connections = (int)max_connections;
    long idle_timeout = strtol(options->idle_timeout, &end, 10);
    if (*end || idle_timeout < 1 || idle_timeout > 3600)
        return usage_error("bad --idle-timeout: %s (1-3600 seconds)", options->idle_timeout);
    config->idle_timeout_s = (int)idle_timeout;
    long max_body = strtol(options->max_body_bytes, &end, 10);
    if (*end || max_body < 1024 || max_body > 64L * 1024 * 1024)
        return usage_error("bad --max-body-bytes: %s (1024-67108864)", options->max_body_bytes);
    config->max_body_bytes = (size_t)max_body;
    long max_header = strtol(options->max_header_bytes, &end, 10);
    if (*end || max_header < 1024 || max_header > 262144)
        return usage_error("bad --max-header-bytes: %s (1024-262144)", options->max_header_bytes);
    config->max_header_bytes = (size_t)max_header;
    long long max_keys = strtoll(options->max_idempotency_keys, &end, 10);
    if (*end || max_keys < 1 || max_keys > 1000000000LL)
        return usage_error("bad --max-idempotency-keys: %s (1-1000000000)",
                           options->max_idempotency_keys);
    config->max_idempotency_keys = max_keys;
    long max_queued = strtol(options->max_queued_commands, &end, 10);
    if (*end || max_queued < 1 || max_queued > 10000000)
        return usage_error("bad --max-queued-commands: %s (1-10000000)",
                           options->max_queued_commands);
    config->max_queued_commands = max_queued;
    enum log_level level;
    if (log_level_parse(options->log_level, &level) < 0)
        return usage_error("bad --log-level: %s (error, warn, info, debug)", options->log_level);
    log_threshold = level;
    if (!options->prefix[0] || strlen(options->prefix) > LAYOUT_PREFIX_MAX)
        return usage_error("bad --redis-prefix: '%s' (1-64 characters)", options->prefix);
    const char *port = strrchr(options->listen, ':');
    long port_number = port ? strtol(port + 1, &end, 10) : 0;
    if (!port || port == options->listen || *end || port_number < 1 || port_number > 65535)
        return usage_error("bad --listen: '%s' (host:port, port 1-65535)", options->listen);
    int rc = host_policy_init(&config->host_policy, options->listen, options->allowed_hosts, err,
                              sizeof(err));
    if (rc == HOST_POLICY_BAD_LISTEN) return usage_error("bad --listen: %s", err);
    if (rc == HOST_POLICY_BAD_ALLOWED) return usage_error("bad --allowed-host: %s", err);
    config->api_token = options->api_token && options->api_token[0] ? options->api_token : NULL;
    config->allow_open_writes = options->allow_open_writes;
    int has_cert = options->tls_cert && options->tls_cert[0];
    int has_key = options->tls_key && options->tls_key[0];
    if (has_cert != has_key)
        return usage_error("--tls-cert and --tls-key go together: %s is missing",
                           has_cert ? "--tls-key" : "--tls-cert");
    if (options->http2 && !has_cert)
        return usage_error("--http2 needs --tls-cert and --tls-key (no cleartext HTTP/2)");
    config->tls_cert = has_cert ? options->tls_cert : NULL;
    config->tls_key = has_key ? options->tls_key : NULL;
    config->http2 = options->http2;
    return 0;
}

/* Creates the directory that will hold the database file, like ./var/. */
static void make_parent_directory(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) return;
    *slash = '\0';
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        LOG(LOG_WARN, "cannot create %s: %s", dir, strerror(errno));
}

/* The writer committed a batch: hand its events to the projector and wake it. */
static void on_committed(int64_t head_seq, const struct command *batch, void *arg)
{
    _Static_assert(WRITER_MAX_BATCH <= APPLY_BATCH_MAX, "a commit's events fit one apply batch");
    struct apply_event events[WRITER_MAX_BATCH];
    size_t count = 0;
    for (const struct command *cmd = batch; cmd && count < WRITER_MAX_BATCH; cmd = cmd->next)
        if (cmd->outcome == COMMAND_DONE && cmd->seq > 0)
            apply_event_from_product(cmd->seq, cmd->kind == COMMAND_DELETE_PRODUCT, &cmd->product,
                                     cmd->view, cmd->view_len, &events[count++]);
    projector_offer(arg, events, count);
    projector_notify(arg, head_seq);
}

/* Descriptors catalogd needs besides its connections: stdio, per loop thread its listener,
 * poller, message queue and Redis connection, the SQLite files of the writer, projector and a
 * rebuild, their Redis connections, and room for a lingering close in progress. */
#define FILES_RESERVED(threads) (64 + 8 * (threads))

/* Raises the soft open-file limit to the hard one and fits --max-connections under it, so
 * that accept() does not run out of descriptors while under the connection cap. Returns 0,
 * or -1 when the limit leaves no room for even one connection per loop thread. */
static int fit_open_file_limit(struct app_config *config)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
    rlim_t wanted = limit.rlim_max == RLIM_INFINITY ? 1048576 : limit.rlim_max;
    /* Only when it changes anything: a systemd unit with LimitNOFILE= sets both, and its
     * SystemCallFilter=~@resources would kill the process for calling setrlimit. */
    if (limit.rlim_cur < wanted) {
        rlim_t before = limit.rlim_cur;
        limit.rlim_cur = wanted;
        if (setrlimit(RLIMIT_NOFILE, &limit) == 0)
            LOG(LOG_INFO, "open-file limit raised from %llu to %llu", (unsigned long long)before,
                (unsigned long long)wanted);
        else
            getrlimit(RLIMIT_NOFILE, &limit);
    }
    long long files = (long long)limit.rlim_cur, reserved = FILES_RESERVED(config->threads);
    if (files - reserved < config->threads) {
        LOG(LOG_ERROR,
            "the open-file limit (%lld) leaves no room for connections: catalogd needs about %lld "
            "descriptors for itself (raise it: ulimit -n, or LimitNOFILE= in a systemd unit)",
            files, reserved);
        return -1;
    }
    if (config->max_connections > files - reserved) {
        LOG(LOG_WARN,
            "--max-connections %d does not fit the open-file limit %lld (catalogd keeps %lld "
            "for itself): serving at most %lld connections at once; raise the limit (ulimit -n, "
            "LimitNOFILE=) to serve more",
            config->max_connections, files, reserved, files - reserved);
        config->max_connections = (int)(files - reserved);
    }
    return 0;
}

/* Serves until SIGTERM or SIGINT. Every thread is joined before "app" (on this stack) and
 * what it points to are freed: first the server stops accepting and lets requests finish,
 * then the writer runs what is queued, the projector drains, the maintenance thread stops,
 * and last the loops run what those handed them and stop. */
static int serve(const struct app_config *given)
{
    struct app_config fitted = *given, *config = &fitted;
    char err[256], bound[96];
    /* Judged on the address it will bind, not on the text of --listen. */
    if (listen_address_resolve(config->listen, &fitted.listen_address, err, sizeof(err)) < 0) {
        LOG(LOG_ERROR, "%s", err);
        return 1;
    }
    listen_address_format(&fitted.listen_address, bound, sizeof(bound));
    if (!listen_address_is_loopback(&fitted.listen_address) && !config->api_token &&
        !config->allow_open_writes)
        return usage_error("refusing to serve commands on %s (%s, not a loopback address) "
                           "without --api-token (or give --allow-open-writes)",
                           config->listen, bound);
    /* Certificate and key are read before anything starts: one line, exit 2 (a usage error:
     * the files given are wrong, running again will not help). */
    if (config->tls_cert && tls_context_new(config->tls_cert, config->tls_key, config->http2,
                                            &fitted.tls, err, sizeof(err)) < 0) {
        fprintf(stderr, "catalogd: %s\n", err);
        return 2;
    }
    if (fit_open_file_limit(config) < 0) return 1;
    int rc = 1;
    struct app app = {.config = config, .inflight_keys = inflight_keys_new()};
    struct server *server;
    struct store *store = NULL;
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL); /* every thread inherits this */
    signal(SIGPIPE, SIG_IGN);

    if (server_open(&app, &server, err, sizeof(err)) < 0) {
        LOG(LOG_ERROR, "%s", err);
        goto out;
    }
    make_parent_directory(config->db_path);
    if (store_open(config->db_path,
                   config->durable ? STORE_DURABILITY_FULL : STORE_DURABILITY_NORMAL, &store, err,
                   sizeof(err)) < 0) {
        LOG(LOG_ERROR, "%s", err);
        goto out;
    }
    int64_t head = 0;
    store_head_seq(store, &head);
    struct projector_config projector_config = {.db_path = config->db_path,
                                                .redis = config->redis,
                                                .prefix = config->prefix,
                                                .head_seq = head};
    app.maintenance = maintenance_start(config->db_path, &config->redis, config->prefix);
    if (!app.maintenance ||
        projector_start(&projector_config, server_projection_applied, server, &app.projector) < 0 ||
        writer_start(store,
                     &(struct writer_limits){.max_idempotency_keys = config->max_idempotency_keys,
                                             .max_queued = config->max_queued_commands},
                     on_committed, app.projector, &app.writer) < 0) {
        LOG(LOG_ERROR, "cannot start the projector, writer or maintenance thread");
        return 1; /* threads may be running: the process exits without unwinding them */
    }
    char redis_shown[512];
    LOG(LOG_INFO, "catalogd %s serving %s://%s%s (db %s, redis %s, %d threads, durability %s)",
        CATALOGD_VERSION, config->tls ? "https" : "http", config->listen,
        config->tls ? (config->http2 ? " (h2, http/1.1)" : " (http/1.1)") : "", config->db_path,
        redis_url_redact(config->redis_text, redis_shown, sizeof(redis_shown)), config->threads,
        config->durable ? "full" : "normal");
    server_run(server, SHUTDOWN_GRACE_MS);
    writer_stop(app.writer);
    projector_stop(app.projector, PROJECTOR_DRAIN_MS);
    maintenance_stop(app.maintenance);
    server_stop(server);
    writer_free(app.writer);
    projector_free(app.projector);
    LOG(LOG_INFO, "catalogd stopped");
    rc = 0;
out:
    tls_context_free(fitted.tls);
    store_close(store);
    inflight_keys_free(app.inflight_keys);
    return rc;
}

/* Opens what verify and rebuild need. Returns 0, or prints why and returns -1. */
static int open_tools(const struct app_config *config, struct store **store, redisContext **redis)
{
    char err[256];
    if (store_open_reader(config->db_path, store, err, sizeof(err)) < 0) {
        fprintf(stderr, "catalogd: %s\n", err);
        return -1;
    }
    *redis = redis_sync_connect(&config->redis, 30000, err, sizeof(err));
    if (!*redis) {
        fprintf(stderr, "catalogd: %s\n", err);
        store_close(*store);
        return -1;
    }
    return 0;
}

static int verify(const struct app_config *config)
{
    struct store *store;
    redisContext *redis;
    char err[256];
    if (open_tools(config, &store, &redis) < 0) return 1;
    struct verify_report report;
    int rc = verify_run(store, redis, config->prefix, 5000, stdout, &report, err, sizeof(err));
    if (rc < 0)
        fprintf(stderr, "catalogd: verify could not finish: %s\n", err);
    else
        printf("verify: %lld products, generation %lld, checkpoint %lld, head %lld: %lld "
               "difference%s\n",
               (long long)report.products, (long long)report.generation,
               (long long)report.checkpoint, (long long)report.head, (long long)report.differences,
               report.differences == 1 ? "" : "s");
    redisFree(redis);
    store_close(store);
    return rc == 0 && report.differences == 0 ? 0 : 1;
}

static int rebuild(const struct app_config *config)
{
    struct store *store;
    redisContext *redis;
    char err[256];
    if (open_tools(config, &store, &redis) < 0) return 1;
    struct rebuild_result result;
    uint64_t started_ms = clock_mono_ms();
    int rc = rebuild_run(store, redis, config->prefix, NULL, &result, err, sizeof(err));
    if (rc == REBUILD_OK) {
        printf("rebuild: generation %lld is live with %lld products (checkpoint %lld) after "
               "%.2f s\n",
               (long long)result.generation, (long long)result.products,
               (long long)result.checkpoint, (double)(clock_mono_ms() - started_ms) / 1000.0);
        fflush(stdout);
        if (result.old_generation > 0) {
            usleep((GENERATION_GRACE_MS + 100) * 1000); /* readers may still be in the old one */
            started_ms = clock_mono_ms();
            int dropped = generations_collect(redis, config->prefix, NULL, NULL, err, sizeof(err));
            if (dropped == REBUILD_LOCK_BUSY)
                printf("rebuild: another rebuild is running; it drops generation %lld\n",
                       (long long)result.old_generation);
            else if (dropped < 0)
                fprintf(stderr, "catalogd: could not drop generation %lld: %s\n",
                        (long long)result.old_generation, err);
            else
                printf("rebuild: %d old generation%s dropped in %.2f s\n", dropped,
                       dropped == 1 ? "" : "s", (double)(clock_mono_ms() - started_ms) / 1000.0);
        }
    } else {
        fprintf(stderr, "catalogd: rebuild failed: %s\n", err);
    }
    redisFree(redis);
    store_close(store);
    return rc == REBUILD_OK ? 0 : 1;
}

static const struct {
    const char *name;
    int (*run)(const struct app_config *config);
} COMMANDS[] = {
    {"serve", serve},
    {"verify", verify},
    {"rebuild", rebuild},
};

int main(int argc, char **argv)
{
    if (argc < 2) return usage_error("missing command");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("catalogd %s\n", CATALOGD_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof(COMMANDS) / sizeof(COMMANDS[0]); i++) {
        if (strcmp(argv[1], COMMANDS[i].name) != 0) continue;
        for (int a = 2; a < argc; a++)
            if (strcmp(argv[a], "--help") == 0) {
                usage(stdout);
                return 0;
            }
        struct options options = {.listen = "127.0.0.1:8000",
                                  .db = "./var/catalog.db",
                                  .redis = "redis://127.0.0.1:6379/0",
                                  .durability = "full",
                                  .log_level = "info",
                                  .prefix = "catalogd",
                                  .max_connections = "4096",
                                  .idle_timeout = "10",
                                  .max_body_bytes = "65536",
                                  .max_header_bytes = "16384",
                                  .max_idempotency_keys = "1000000",
                                  .max_queued_commands = "10000"};
        int rc = parse_flags(argc, argv, &options);
        if (rc != 0) return rc;
        struct app_config config = {0};
        rc = build_config(&options, &config);
        if (rc == 0) rc = COMMANDS[i].run(&config);
        host_policy_clear(&config.host_policy);
        free(options.joined);
        return rc;
    }
    return usage_error("unknown command: %s", argv[1]);
}
