/* main.c - the catalogd command line: serve | verify | rebuild, with flags that each have an
 * environment variable. Flags are a table read by one loop. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <getopt.h>
#include <limits.h>
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
#include "common/redis_tls.h"
#include "common/xmalloc.h"
#include "http/server.h"
#include "http/tls.h"
#include "projection/apply.h"
#include "projection/bus.h"
#include "projection/generations.h"
#include "projection/leadership.h"
#include "projection/maintenance.h"
#include "projection/prefix_hold.h"
#include "projection/projector.h"
#include "projection/rebuild.h"
#include "projection/redis_sync.h"
#include "projection/verify.h"
#include "readmodel/layout.h"
#include "readmodel/applied_floor.h"
#include "readmodel/view_cache.h"

#define CATALOGD_VERSION   "0.1.0"
#define SHUTDOWN_GRACE_MS  5000
#define PROJECTOR_DRAIN_MS 2000

/* The text of every flag, from its default, then the environment, then the command line. */
struct options {
    const char *listen;
    const char *db;
    const char *redis;
    const char *redis_ca_file;
    const char *redis_cert;
    const char *redis_key;
    const char *threads;
    const char *api_token;
    const char *api_token_file;
    const char *redis_password_file;
    const char *durability;
    const char *log_level;
    const char *log_format;
    const char *prefix;
    const char *instance_id;
    const char *max_connections;
    const char *idle_timeout;
    const char *max_body_bytes;
    const char *max_header_bytes;
    const char *max_idempotency_keys;
    const char *max_queued_commands;
    const char *view_cache_mb;
    const char *allowed_hosts;
    const char *tls_cert;
    const char *tls_key;
    const char *http2;             /* a switch */
    const char *allow_open_writes; /* "1" when given: a switch takes no value */
    char *joined;                  /* the values of a repeated flag, joined: freed by main */
};

/* Turns a flag's text into the configuration, or says why it cannot ("err"). */
typedef int (*flag_apply_fn)(const char *value, struct app_config *config, char *err,
                             size_t errlen);

/* One row per flag: its names, its default, how its value is checked and where it goes, and
 * its help. One loop reads the rows to parse the environment and the command line, one to
 * check and apply the values, one to print --help (and a test holds the README's table to
 * them). An integer flag names its field (an int or an int64_t of struct app_config) and its
 * range; any other flag names the function that applies it. */
struct flag {
    const char *name;
    const char *env;
    const char *fallback_env; /* read when "env" is unset, or NULL */
    const char *fallback;     /* the default, as text; NULL: none */
    size_t option;            /* offset of its text in struct options */
    size_t field, field_size; /* an integer's place in struct app_config, or field_size 0 */
    long long min, max;
    flag_apply_fn apply;
    int repeatable;  /* each use adds a comma-separated entry */
    int takes_value; /* 0: a switch */
    const char *help;
};

#define OPT(field)   offsetof(struct options, field)
#define INT_FIELD(f) offsetof(struct app_config, f), sizeof(((struct app_config *)0)->f)
#define NO_FIELD     0, 0

static int apply_listen(const char *value, struct app_config *config, char *err, size_t errlen);
static int apply_db(const char *value, struct app_config *config, char *err, size_t errlen);
static int apply_redis(const char *value, struct app_config *config, char *err, size_t errlen);
static int apply_prefix(const char *value, struct app_config *config, char *err, size_t errlen);
static int apply_instance_id(const char *value, struct app_config *config, char *err,
                             size_t errlen);
static int apply_threads(const char *value, struct app_config *config, char *err, size_t errlen);
static int apply_durability(const char *value, struct app_config *config, char *err, size_t errlen);
static int apply_log_level(const char *value, struct app_config *config, char *err, size_t errlen);
static int apply_log_format(const char *value, struct app_config *config, char *err, size_t errlen);
static int apply_api_token(const char *value, struct app_config *config, char *err, size_t errlen);
static int apply_api_token_file(const char *value, struct app_config *config, char *err,
                                size_t errlen);
static int apply_redis_password_file(const char *value, struct app_config *config, char *err,
                                     size_t errlen);
static int apply_switch(const char *value, struct app_config *config, char *err, size_t errlen);
static int apply_tls_cert(const char *value, struct app_config *config, char *err, size_t errlen);
static int apply_tls_key(const char *value, struct app_config *config, char *err, size_t errlen);
static int apply_http2(const char *value, struct app_config *config, char *err, size_t errlen);
static int apply_redis_ca_file(const char *value, struct app_config *config, char *err,
                               size_t errlen);
static int apply_redis_cert(const char *value, struct app_config *config, char *err, size_t errlen);
static int apply_redis_key(const char *value, struct app_config *config, char *err, size_t errlen);

static const struct flag FLAGS[] = {
    {"listen", "CATALOGD_LISTEN", NULL, "127.0.0.1:8000", OPT(listen), NO_FIELD, 0, 0, apply_listen,
     0, 1, "host:port to serve on"},
    {"db", "CATALOGD_DB", NULL, "./var/catalog.db", OPT(db), NO_FIELD, 0, 0, apply_db, 0, 1,
     "write model: an SQLite file, or postgresql://[user[:password]@]host[:port]/dbname"},
    {"redis", "CATALOGD_REDIS_URL", "REDIS_URL", "redis://127.0.0.1:6379/0", OPT(redis), NO_FIELD,
     0, 0, apply_redis, 0, 1,
     "redis://[[user]:password@]host:port/db, rediss:// (TLS) or unix:///path?db=N"},
    {"redis-password-file", "CATALOGD_REDIS_PASSWORD_FILE", NULL, NULL, OPT(redis_password_file),
     NO_FIELD, 0, 0, apply_redis_password_file, 0, 1,
     "the Redis password, from a file, when the URL has none"},
    {"redis-ca-file", "CATALOGD_REDIS_CA_FILE", NULL, NULL, OPT(redis_ca_file), NO_FIELD, 0, 0,
     apply_redis_ca_file, 0, 1,
     "PEM CA bundle that signs the rediss:// server's certificate (the system store)"},
    {"redis-cert", "CATALOGD_REDIS_CERT", NULL, NULL, OPT(redis_cert), NO_FIELD, 0, 0,
     apply_redis_cert, 0, 1, "PEM client certificate for rediss://, for tls-auth-clients"},
    {"redis-key", "CATALOGD_REDIS_KEY", NULL, NULL, OPT(redis_key), NO_FIELD, 0, 0, apply_redis_key,
     0, 1, "PEM private key of --redis-cert"},
    {"redis-prefix", "CATALOGD_REDIS_PREFIX", NULL, "catalogd", OPT(prefix), NO_FIELD, 0, 0,
     apply_prefix, 0, 1, "prefix of every Redis key (1-64 characters)"},
    {"instance-id", "CATALOGD_INSTANCE_ID", NULL, NULL, OPT(instance_id), NO_FIELD, 0, 0,
     apply_instance_id, 0, 1,
     "this instance's name in /admin/projection and the log (hostname:pid)"},
    {"threads", "CATALOGD_THREADS", NULL, NULL, OPT(threads), NO_FIELD, 0, 0, apply_threads, 0, 1,
     "event-loop threads, 1-256 (the number of cores)"},
    {"api-token", "CATALOGD_API_TOKEN", NULL, NULL, OPT(api_token), NO_FIELD, 0, 0, apply_api_token,
     0, 1, "require Authorization: Bearer <token> on commands and admin routes"},
    {"api-token-file", "CATALOGD_API_TOKEN_FILE", NULL, NULL, OPT(api_token_file), NO_FIELD, 0, 0,
     apply_api_token_file, 0, 1, "the token from a file instead (not shown by ps)"},
    {"allow-open-writes", NULL, NULL, NULL, OPT(allow_open_writes), NO_FIELD, 0, 0, apply_switch, 0,
     0, "serve commands on a non-loopback address without a token"},
    {"allowed-host", "CATALOGD_ALLOWED_HOSTS", NULL, NULL, OPT(allowed_hosts), NO_FIELD, 0, 0, NULL,
     1, 1,
     "host or host:port that writes may name in Host and Origin, besides --listen and "
     "localhost (repeatable, or comma-separated)"},
    {"tls-cert", "CATALOGD_TLS_CERT", NULL, NULL, OPT(tls_cert), NO_FIELD, 0, 0, apply_tls_cert, 0,
     1, "PEM certificate chain: serve HTTPS (with --tls-key)"},
    {"tls-key", "CATALOGD_TLS_KEY", NULL, NULL, OPT(tls_key), NO_FIELD, 0, 0, apply_tls_key, 0, 1,
     "PEM private key of --tls-cert"},
    {"http2", "CATALOGD_HTTP2", NULL, NULL, OPT(http2), NO_FIELD, 0, 0, apply_http2, 0, 0,
     "also offer h2 by ALPN over TLS (1 or true in the variable); off because h2o 2.2.5 "
     "predates the HTTP/2 rapid-reset fix (CVE-2023-44487): resets are budgeted per "
     "connection, buffered stream bodies are not bounded (README, Security)"},
    {"durability", "CATALOGD_DURABILITY", NULL, "full", OPT(durability), NO_FIELD, 0, 0,
     apply_durability, 0, 1, "full (fsync per commit batch) or normal"},
    {"log-level", "CATALOGD_LOG_LEVEL", NULL, "info", OPT(log_level), NO_FIELD, 0, 0,
     apply_log_level, 0, 1, "error, warn, info or debug"},
    {"log-format", "CATALOGD_LOG_FORMAT", NULL, "text", OPT(log_format), NO_FIELD, 0, 0,
     apply_log_format, 0, 1, "text, or json: one JSON object per line"},
    {"max-connections", "CATALOGD_MAX_CONNECTIONS", NULL, "4096", OPT(max_connections),
     INT_FIELD(max_connections), 1, 1000000, NULL, 0, 1, "open connections at once; more wait"},
    {"idle-timeout", "CATALOGD_IDLE_TIMEOUT", NULL, "10", OPT(idle_timeout),
     INT_FIELD(idle_timeout_s), 1, 3600, NULL, 0, 1,
     "seconds a connection may be silent, spend on one request, or leave its answer untaken"},
    {"max-body-bytes", "CATALOGD_MAX_BODY_BYTES", NULL, "65536", OPT(max_body_bytes),
     INT_FIELD(max_body_bytes), 1024, 64LL * 1024 * 1024, NULL, 0, 1,
     "larger request bodies get 413 unread"},
    {"max-header-bytes", "CATALOGD_MAX_HEADER_BYTES", NULL, "16384", OPT(max_header_bytes),
     INT_FIELD(max_header_bytes), 1024, 262144, NULL, 0, 1,
     "larger request line + headers get 431"},
    {"max-idempotency-keys", "CATALOGD_MAX_IDEMPOTENCY_KEYS", NULL, "1000000",
     OPT(max_idempotency_keys), INT_FIELD(max_idempotency_keys), 1, 1000000000, NULL, 0, 1,
     "Idempotency-Keys stored at once (24 h each); a new one beyond gets 503"},
    {"max-queued-commands", "CATALOGD_MAX_QUEUED_COMMANDS", NULL, "10000", OPT(max_queued_commands),
     INT_FIELD(max_queued_commands), 1, 10000000, NULL, 0, 1,
     "commands waiting for the writer at once; more get 503"},
    {"view-cache-mb", "CATALOGD_VIEW_CACHE_MB", NULL, "16", OPT(view_cache_mb),
     INT_FIELD(view_cache_mb), 0, 1024, NULL, 0, 1,
     "MiB of memory that keeps product views for GET /products/{id}, 0 for none (SQLite only: "
     "instances that share PostgreSQL keep none)"},
};
#define FLAG_COUNT (sizeof(FLAGS) / sizeof(FLAGS[0]))

static const char **option_slot(struct options *options, const struct flag *flag)
{
    return (const char **)((char *)options + flag->option);
}

static const char *option_value(const struct options *options, const struct flag *flag)
{
    return *(const char *const *)((const char *)options + flag->option);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: catalogd serve|verify|rebuild [flags]\n"
                 "       catalogd --help | --version\n\nflags (each also an environment "
                 "variable):\n");
    for (size_t i = 0; i < FLAG_COUNT; i++) {
        const struct flag *f = &FLAGS[i];
        fprintf(out, "  --%-20s %-29s %s", f->name, f->env ? f->env : "", f->help);
        if (f->fallback) fprintf(out, " (%s)", f->fallback);
        fputc('\n', out);
    }
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

/* Fills "options" from the defaults, the environment, then argv. Returns 0, or an exit
 * code. */
static int parse_flags(int argc, char **argv, struct options *options)
{
    struct option long_options[FLAG_COUNT + 1];
    for (size_t i = 0; i < FLAG_COUNT; i++) {
        const struct flag *f = &FLAGS[i];
        long_options[i] = (struct option){f->name, f->takes_value ? required_argument : no_argument,
                                          NULL, (int)i};
        const char *value = f->env ? getenv(f->env) : NULL;
        if ((!value || !*value) && f->fallback_env) value = getenv(f->fallback_env);
        *option_slot(options, f) = value && *value ? value : f->fallback;
    }
    long_options[FLAG_COUNT] = (struct option){0};
    opterr = 0;
    optind = 2; /* after the command */
    int index, given[FLAG_COUNT] = {0};
    while ((index = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
        if (index < 0 || (size_t)index >= FLAG_COUNT)
            return usage_error("unknown flag or missing value: %s", argv[optind - 1]);
        const char **slot = option_slot(options, &FLAGS[index]);
        const char *value = FLAGS[index].takes_value ? optarg : "1";
        if (FLAGS[index].repeatable && given[index]++) {
            char *joined = xmalloc(strlen(*slot) + strlen(value) + 2);
            sprintf(joined, "%s,%s", *slot, value);
            *slot = joined;
            free(options->joined);
            options->joined = joined;
        } else {
            *slot = value;
        }
    }
    if (optind < argc) return usage_error("unexpected argument: %s", argv[optind]);
    return 0;
}

/* strtol's number, but only from digits: it would also take " 2", "+2" or "-0". */
static int parse_decimal(const char *value, long long *number)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)value[0])) return -1;
    *number = strtoll(value, &end, 10);
    return *end || errno ? -1 : 0;
}

/* An integer flag: the whole text a number in [min, max], stored in its field. */
static int apply_integer(const struct flag *f, const char *value, struct app_config *config)
{
    long long number;
    if (parse_decimal(value, &number) < 0 || number < f->min || number > f->max) return -1;
    char *field = (char *)config + f->field;
    /* An int, or a 64-bit field: int64_t, or size_t, its unsigned counterpart (the range
     * keeps it non-negative; C lets a signed type access its unsigned counterpart). */
    if (f->field_size == sizeof(int))
        *(int *)field = (int)number;
    else if (f->field_size == sizeof(int64_t))
        *(int64_t *)field = number;
    else
        abort(); /* a row of the table names a field of another size */
    return 0;
}

static int apply_listen(const char *value, struct app_config *config, char *err, size_t errlen)
{
    const char *port = strrchr(value, ':');
    long long number = 0;
    if (!port || port == value || parse_decimal(port + 1, &number) < 0 || number < 1 ||
        number > 65535) {
        snprintf(err, errlen, "'%s' (host:port, port 1-65535)", value);
        return -1;
    }
    config->listen = value;
    return 0;
}

static int apply_db(const char *value, struct app_config *config, char *err, size_t errlen)
{
    /* Both would make SQLite keep the catalog in memory or in a temporary file, gone at exit
       with every write catalogd acknowledged. */
    if (!value[0] || strcmp(value, ":memory:") == 0) {
        snprintf(err, errlen,
                 "'%s' (an SQLite file or a postgresql:// URI; not empty, not "
                 ":memory:, whose writes would not outlive catalogd)",
                 value);
        return -1;
    }
    config->db_path = value;
    return 0;
}

static int apply_redis(const char *value, struct app_config *config, char *err, size_t errlen)
{
    config->redis_text = value;
    return redis_url_parse(value, &config->redis, err, errlen);
}

static int apply_instance_id(const char *value, struct app_config *config, char *err, size_t errlen)
{
    size_t len = strlen(value);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)value[i] < 0x21 || (unsigned char)value[i] > 0x7e) len = 0;
    if (len == 0 || len >= sizeof(config->instance_id)) {
        snprintf(err, errlen, "'%s' (1-%zu printable characters, no spaces)", value,
                 sizeof(config->instance_id) - 1);
        return -1;
    }
    memcpy(config->instance_id, value, len + 1);
    return 0;
}

static int apply_prefix(const char *value, struct app_config *config, char *err, size_t errlen)
{
    int control = 0;
    for (const char *c = value; *c; c++)
        control |= (unsigned char)*c < 0x20 || *c == 0x7f;
    if (!value[0] || strlen(value) > LAYOUT_PREFIX_MAX || control) {
        snprintf(err, errlen, "(1-64 characters, no control characters)");
        return -1;
    }
    config->prefix = value;
    return 0;
}

static int apply_threads(const char *value, struct app_config *config, char *err, size_t errlen)
{
    long long threads;
    if (parse_decimal(value, &threads) < 0 || threads < 1 || threads > 256) {
        snprintf(err, errlen, "%s (1-256)", value);
        return -1;
    }
    config->threads = (int)threads;
    return 0;
}

static int apply_durability(const char *value, struct app_config *config, char *err, size_t errlen)
{
    config->durable = strcmp(value, "full") == 0;
    if (config->durable || strcmp(value, "normal") == 0) return 0;
    snprintf(err, errlen, "%s (full or normal)", value);
    return -1;
}

static int apply_log_level(const char *value, struct app_config *config, char *err, size_t errlen)
{
    (void)config;
    enum log_level level;
    if (log_level_parse(value, &level) < 0) {
        snprintf(err, errlen, "%s (error, warn, info, debug)", value);
        return -1;
    }
    log_threshold = level;
    return 0;
}

static int apply_log_format(const char *value, struct app_config *config, char *err, size_t errlen)
{
    (void)config;
    enum log_format format;
    if (log_format_parse(value, &format) < 0) {
        snprintf(err, errlen, "%s (text or json)", value);
        return -1;
    }
    log_format = format;
    return 0;
}

static int apply_api_token(const char *value, struct app_config *config, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    config->api_token = value[0] ? value : NULL;
    return 0;
}

/* Reads a secret (a token, a password) from the file at "path" into "out": its first line,
 * without the line end, so that `echo secret > file` works. Returns 0, or -1 with "err". */
static int read_secret_file(const char *path, char *out, size_t cap, char *err, size_t errlen)
{
    FILE *file = fopen(path, "r");
    if (!file) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    int rc = fgets(out, (int)cap, file) ? 0 : -1;
    fclose(file);
    if (rc == 0) out[strcspn(out, "\r\n")] = '\0';
    if (rc < 0 || !out[0]) {
        snprintf(err, errlen, "%s: empty", path);
        return -1;
    }
    if (strlen(out) >= cap - 1) {
        snprintf(err, errlen, "%s: longer than %zu bytes", path, cap - 2);
        return -1;
    }
    return 0;
}

static int apply_api_token_file(const char *value, struct app_config *config, char *err,
                                size_t errlen)
{
    static char token[1024];
    if (config->api_token) {
        snprintf(err, errlen, "give --api-token or --api-token-file, not both");
        return -1;
    }
    if (read_secret_file(value, token, sizeof(token), err, errlen) < 0) return -1;
    config->api_token = token;
    return 0;
}

static int apply_redis_password_file(const char *value, struct app_config *config, char *err,
                                     size_t errlen)
{
    if (config->redis.password[0]) {
        snprintf(err, errlen, "give the Redis password in the URL or in this file, not both");
        return -1;
    }
    return read_secret_file(value, config->redis.password, sizeof(config->redis.password), err,
                            errlen);
}

/* The TLS files of rediss:// (checked together once every flag is read). */
static int apply_redis_ca_file(const char *value, struct app_config *config, char *err,
                               size_t errlen)
{
    (void)err;
    (void)errlen;
    config->redis.ca_file = value[0] ? value : NULL;
    return 0;
}

static int apply_redis_cert(const char *value, struct app_config *config, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    config->redis.cert_file = value[0] ? value : NULL;
    return 0;
}

static int apply_redis_key(const char *value, struct app_config *config, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    config->redis.key_file = value[0] ? value : NULL;
    return 0;
}

static int apply_tls_cert(const char *value, struct app_config *config, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    config->tls_cert = value[0] ? value : NULL;
    return 0;
}

static int apply_tls_key(const char *value, struct app_config *config, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    config->tls_key = value[0] ? value : NULL;
    return 0;
}

static int apply_http2(const char *value, struct app_config *config, char *err, size_t errlen)
{
    config->http2 = strcmp(value, "1") == 0 || strcmp(value, "true") == 0;
    if (config->http2 || strcmp(value, "0") == 0 || strcmp(value, "false") == 0) return 0;
    snprintf(err, errlen, "%s (1, true, 0 or false)", value);
    return -1;
}

static int apply_switch(const char *value, struct app_config *config, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    config->allow_open_writes = value[0] == '1';
    return 0;
}

/* Checks and applies every flag's text, in the table's order (a flag may rely on those
 * before it: the password file on --redis), then what involves several. Returns 0, or an
 * exit code. */
static int build_config(const struct options *options, struct app_config *config)
{
    char err[256];
    config->projection_wait_ms = 100;
    config->redis_timeout_ms = 500;
    char host[64] = "localhost";
    gethostname(host, sizeof(host) - 1);
    snprintf(config->instance_id, sizeof(config->instance_id), "%.64s:%ld", host, (long)getpid());
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    config->threads = cores > 0 ? (int)cores : 1;
    for (size_t i = 0; i < FLAG_COUNT; i++) {
        const char *value = option_value(options, &FLAGS[i]);
        if (!value || !(FLAGS[i].apply || FLAGS[i].field_size)) continue;
        err[0] = '\0';
        if (FLAGS[i].field_size && apply_integer(&FLAGS[i], value, config) < 0)
            return usage_error("bad --%s: %s (%lld-%lld)", FLAGS[i].name, value, FLAGS[i].min,
                               FLAGS[i].max);
        if (FLAGS[i].apply && FLAGS[i].apply(value, config, err, sizeof(err)) < 0)
            return usage_error("bad --%s: %s", FLAGS[i].name, err);
    }
    const char *tls_flag = config->redis.ca_file     ? "--redis-ca-file"
                           : config->redis.cert_file ? "--redis-cert"
                           : config->redis.key_file  ? "--redis-key"
                                                     : NULL;
    if (tls_flag && !config->redis.tls) /* the second "s" forgotten: no cleartext by surprise */
        return usage_error("%s is for rediss:// (TLS), and --redis is not a rediss:// URL",
                           tls_flag);
    if (tls_flag) {
        /* Loaded now, so that a bad file stops the start with one line, not every connect. */
        SSL_CTX *tls = redis_tls_context_new(&config->redis, err, sizeof(err));
        if (!tls) {
            fprintf(stderr, "catalogd: %s\n", err);
            return 2;
        }
        SSL_CTX_free(tls);
    }
    if (!config->tls_cert != !config->tls_key)
        return usage_error("--tls-cert and --tls-key go together: %s is missing",
                           config->tls_cert ? "--tls-key" : "--tls-cert");
    if (config->http2 && !config->tls_cert)
        return usage_error("--http2 needs --tls-cert and --tls-key (no cleartext HTTP/2)");
    if (config->redis.user[0] && !config->redis.password[0])
        return usage_error("bad --redis: the user %s needs a password (in the URL, or "
                           "--redis-password-file)",
                           config->redis.user);
    int rc = host_policy_init(&config->host_policy, options->listen, options->allowed_hosts, err,
                              sizeof(err));
    if (rc == HOST_POLICY_BAD_LISTEN) return usage_error("bad --listen: %s", err);
    if (rc == HOST_POLICY_BAD_ALLOWED) return usage_error("bad --allowed-host: %s", err);
    return 0;
}

/* Creates the directory that will hold the SQLite database file, like ./var/ (nothing for a
 * PostgreSQL URI, nor for an SQLite "file:" URI: its text is not a path). */
static void make_parent_directory(const char *path)
{
    if (store_is_postgresql(path) || strncmp(path, "file:", 5) == 0) return;
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) return;
    *slash = '\0';
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        LOG(LOG_WARN, "cannot create %s: %s", dir, strerror(errno));
}

/* The maintenance thread's question: does this catalog hold the read model's prefix? */
static int prefix_ours(void *projector)
{
    return projector_prefix_ours(projector);
}

/* app.read_model_unconfirmed: the projector confirms it, if it can, now. */
static void read_model_unconfirmed(const struct app *app)
{
    projector_poke(app->projector);
}

/* app.read_model_refusal: the projector says whether the read model is this catalog's. */
static const char *read_model_refusal(const struct app *app)
{
    if (projector_prefix_ours(app->projector)) return NULL;
    struct projector_status status;
    projector_get_status(app->projector, &status);
    return status.state == PROJECTOR_HELD_ELSEWHERE
               ? "the read model under this Redis prefix is another catalog's (two deployments "
                 "share the prefix); retry later"
               : "the read model is not yet known to be this catalog's (it is being checked, or "
                 "rebuilt, after a start or a takeover); retry shortly";
}

/* Who hears of a commit: this instance's projector and, when instances share the write
 * model, the others through the bus. */
struct commit_listeners {
    struct projector *projector;
    struct bus *bus; /* NULL: one instance */
    /* Writer thread only: the fingerprint of the log's event at seq "before_seq" (0: none
     * read), just before the first event of the batch being committed. */
    int64_t before_seq;
    char before[APPLY_FINGERPRINT_MAX];
};

/* Reads, in the batch's own transaction, the log's event just before the batch's first. The
 * projector must check that Redis names that same event at its checkpoint (the log may have
 * gone back in time under it); handed this with the events, it reads nothing from the log on
 * its own connection, which on SQLite meant a read transaction per batch, its locks contended
 * with the writer's. */
static void on_committing(struct store *store, const struct command *batch, void *arg)
{
    struct commit_listeners *listeners = arg;
    listeners->before_seq = 0;
    const struct command *first = batch;
    while (first && !(first->outcome == COMMAND_DONE && first->seq > 0))
        first = first->next;
    if (first && first->seq > 1 &&
        apply_log_fingerprint(store, first->seq - 1, listeners->before) == 1)
        listeners->before_seq = first->seq - 1;
}

/* The writer committed a batch: hand its events to the projector, each with the fingerprint
 * of the event before it where the commit knew it, and wake the projector. */
static void on_committed(int64_t head_seq, const struct command *batch, void *arg)
{
    struct commit_listeners *listeners = arg;
    _Static_assert(WRITER_MAX_BATCH <= APPLY_BATCH_MAX, "a commit's events fit one apply batch");
    struct apply_event events[WRITER_MAX_BATCH];
    size_t count = 0;
    for (const struct command *cmd = batch; cmd && count < WRITER_MAX_BATCH; cmd = cmd->next) {
        if (cmd->outcome != COMMAND_DONE || cmd->seq <= 0) continue;
        struct apply_event *event = &events[count];
        apply_event_from_product(cmd->seq, cmd->kind == COMMAND_DELETE_PRODUCT, &cmd->product,
                                 cmd->view, cmd->view_len, cmd->event_nonce, event);
        if (count == 0 && listeners->before_seq > 0 && listeners->before_seq == cmd->seq - 1)
            memcpy(event->prior, listeners->before, sizeof(event->prior));
        else if (count > 0 && event[-1].seq == cmd->seq - 1)
            apply_event_fingerprint(&event[-1], event->prior);
        count++;
    }
    listeners->before_seq = 0;
    projector_offer(listeners->projector, events, count);
    projector_notify(listeners->projector, head_seq);
    if (listeners->bus) bus_committed(listeners->bus, head_seq);
}

/* What the writer must not see a seq taken again below: the checkpoint the projector applied
 * (or, following, heard of). */
static int64_t known_seq(void *arg)
{
    struct commit_listeners *listeners = arg;
    return projector_checkpoint(listeners->projector);
}

static uint64_t commit_reads(void *arg)
{
    struct commit_listeners *listeners = arg;
    return projector_commit_reads(listeners->projector);
}

static void on_bus_committed(int64_t head, void *arg)
{
    projector_notify(arg, head);
}

static void on_bus_news(const struct projection_news *news, void *arg)
{
    projector_take_news(arg, news);
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
    struct applied_floor applied_floor;
    applied_floor_init(&applied_floor);
    struct app app = {.config = config,
                      .applied_floor = &applied_floor,
                      .inflight_keys = inflight_keys_new(),
                      .read_model_refusal = read_model_refusal,
                      .read_model_unconfirmed = read_model_unconfirmed};
    struct server *server;
    struct store *store = NULL;
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL); /* every thread inherits this */
    signal(SIGPIPE, SIG_IGN);

    make_parent_directory(config->db_path);
    if (store_open(config->db_path,
                   config->durable ? STORE_DURABILITY_FULL : STORE_DURABILITY_NORMAL, &store, err,
                   sizeof(err)) < 0) {
        /* PostgreSQL: a bad URI, a wrong password, a missing database, no server: one line,
         * exit 2, like any other setting that is wrong at start. */
        if (!store_is_postgresql(config->db_path)) {
            LOG(LOG_ERROR, "%s", err);
            goto out;
        }
        fprintf(stderr, "catalogd: %s\n", err);
        rc = 2;
        goto out;
    }
    if (store_claim_server(store, config->view_cache_mb > 0) < 0) {
        LOG(LOG_ERROR, "%s", store_errmsg(store));
        goto out;
    }
    /* The only projector that writes the read model is this process's, so it can keep the
     * views it holds exact; instances that share the write model cannot (view_cache.h). */
    if (!store_is_shared(store))
        app.view_cache = view_cache_new((size_t)config->view_cache_mb * 1024 * 1024);
    /* After the store: a write model it cannot use leaves nothing to unwind. */
    if (server_open(&app, &server, err, sizeof(err)) < 0) {
        LOG(LOG_ERROR, "%s", err);
        goto out;
    }
    int64_t head = 0;
    store_head_seq(store, &head);
    /* Instances that share the write model elect the one that projects; the others follow
     * its news, and tell it of their commits, over the bus. */
    struct leadership *leadership =
        store_is_shared(store) ? leadership_start(config->db_path, config->instance_id) : NULL;
    char catalog[PATH_MAX + 320];
    store_name_catalog(store, catalog, sizeof(catalog));
    struct projector_config projector_config = {.db_path = config->db_path,
                                                .redis = config->redis,
                                                .prefix = config->prefix,
                                                .head_seq = head,
                                                .instance_id = config->instance_id,
                                                .catalog = catalog,
                                                .leadership = leadership,
                                                .view_cache = app.view_cache,
                                                .applied_floor = app.applied_floor};
    struct commit_listeners listeners = {0};
    int started =
        (leadership || !store_is_shared(store)) &&
        projector_start(&projector_config, server_projection_applied, server, &app.projector) ==
            0 &&
        (app.maintenance = maintenance_start(config->db_path, &config->redis, config->prefix,
                                             prefix_ours, app.projector)) != NULL;
    listeners.projector = app.projector;
    struct bus_handlers bus_handlers = {on_bus_committed, on_bus_news, app.projector};
    if (started && leadership)
        started = (listeners.bus =
                       bus_start(&config->redis, config->prefix, catalog, &bus_handlers)) != NULL;
    if (!started ||
        writer_start(store,
                     &(struct writer_limits){.max_idempotency_keys = config->max_idempotency_keys,
                                             .max_queued = config->max_queued_commands},
                     &(struct writer_listener){.committing = on_committing,
                                               .committed = on_committed,
                                               .known_seq = known_seq,
                                               .commit_reads = commit_reads,
                                               .arg = &listeners},
                     &app.writer) < 0) {
        LOG(LOG_ERROR, "cannot start the projector, writer, bus or maintenance thread");
        return 1; /* threads may be running: the process exits without unwinding them */
    }
    char redis_shown[512], db_shown[512];
    LOG(LOG_INFO, "catalogd %s serving %s://%s%s (db %s, redis %s, %d threads, durability %s)",
        CATALOGD_VERSION, config->tls ? "https" : "http", config->listen,
        config->tls ? (config->http2 ? " (h2, http/1.1)" : " (http/1.1)") : "",
        store_is_postgresql(config->db_path)
            ? redis_url_redact(config->db_path, db_shown, sizeof(db_shown))
            : config->db_path,
        redis_url_redact(config->redis_text, redis_shown, sizeof(redis_shown)), config->threads,
        config->durable ? "full" : "normal");
    server_run(server, SHUTDOWN_GRACE_MS);
    writer_stop(app.writer);
    bus_stop(listeners.bus);
    projector_stop(app.projector, PROJECTOR_DRAIN_MS);
    leadership_stop(leadership);
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
    view_cache_free(app.view_cache); /* also when the server could not open */
    return rc;
}

/* Opens what verify and rebuild need. Returns 0, or prints why and returns the exit code: 2
 * when a PostgreSQL URI cannot be used (as serve), else 1. */
static int open_tools(const struct app_config *config, struct store **store,
                      struct redis_sync **redis)
{
    char err[256];
    signal(SIGPIPE, SIG_IGN); /* a Redis that went away is an error to report, not a signal */
    if (store_open_reader(config->db_path, store, err, sizeof(err)) < 0) {
        fprintf(stderr, "catalogd: %s\n", err);
        return store_is_postgresql(config->db_path) ? 2 : 1;
    }
    *redis = redis_sync_connect(&config->redis, 30000, err, sizeof(err));
    if (!*redis) {
        fprintf(stderr, "catalogd: %s\n", err);
        store_close(*store);
        return 1;
    }
    return 0;
}

/* Names the catalog that "hold" found holding the prefix, for verify's and rebuild's
 * messages. */
static void describe_holder(const struct app_config *config, const struct prefix_hold *hold,
                            char *out, size_t cap)
{
    snprintf(out, cap,
             "another catalog (another write model) holds the Redis prefix \"%s\", its instance "
             "%.100s",
             config->prefix, prefix_hold_holder(hold));
}

/* Says so on stderr when another catalog holds the prefix: its read model is not this
 * catalog's, and every difference verify lists comes from that. */
static void tell_if_held_elsewhere(const struct app_config *config, struct store *store,
                                   struct redis_sync *redis)
{
    char err[256], catalog[PATH_MAX + 320], holder[256];
    store_name_catalog(store, catalog, sizeof(catalog));
    struct prefix_hold *hold = prefix_hold_new(config->prefix, catalog, config->instance_id);
    if (prefix_hold_peek_elsewhere(hold, redis, err, sizeof(err)) == 1) {
        describe_holder(config, hold, holder, sizeof(holder));
        fprintf(stderr, "catalogd: %s: the read model there is that catalog's, not this one's\n",
                holder);
    }
    prefix_hold_free(hold);
}

static int verify(const struct app_config *config)
{
    struct store *store;
    struct redis_sync *redis;
    char err[256];
    int opened = open_tools(config, &store, &redis);
    if (opened != 0) return opened;
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
    if (rc < 0 || report.differences > 0) tell_if_held_elsewhere(config, store, redis);
    redis_sync_close(redis);
    store_close(store);
    return rc == 0 && report.differences == 0 ? 0 : 1;
}

/* The read model's prefix, held for a rebuild from the command line as the projector holds
 * it (prefix_hold.h): refused while another catalog holds it, kept between pages. */
struct rebuild_hold {
    struct prefix_hold *hold;
    struct redis_sync *redis;
};

static int rebuild_hold_lost(void *arg)
{
    struct rebuild_hold *held = arg;
    char err[256];
    return prefix_hold_keep(held->hold, held->redis, err, sizeof(err)) == PREFIX_HOLD_ELSEWHERE;
}

static int rebuild(const struct app_config *config)
{
    struct store *store;
    struct redis_sync *redis;
    char err[512], catalog[PATH_MAX + 320], holder[256];
    int opened = open_tools(config, &store, &redis);
    if (opened != 0) return opened;
    store_name_catalog(store, catalog, sizeof(catalog));
    struct rebuild_hold held = {prefix_hold_new(config->prefix, catalog, config->instance_id),
                                redis};
    struct rebuild_options options = {.should_stop = rebuild_hold_lost, .arg = &held};
    struct rebuild_result result;
    uint64_t started_ms = clock_mono_ms();
    int rc = REBUILD_FAILED;
    switch (prefix_hold_keep(held.hold, redis, err, sizeof(err))) {
    case PREFIX_HOLD_OURS:
        rc = rebuild_run(store, redis, config->prefix, &options, &result, err, sizeof(err));
        break;
    case PREFIX_HOLD_ELSEWHERE:
        describe_holder(config, held.hold, holder, sizeof(holder));
        snprintf(err, sizeof(err), "%s: a rebuild from this one would replace its read model",
                 holder);
        break;
    case PREFIX_HOLD_ERROR:
        break;
    }
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
    prefix_hold_release(held.hold, redis);
    prefix_hold_free(held.hold);
    redis_sync_close(redis);
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
    store_setup_process();
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
        struct options options = {0};
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
