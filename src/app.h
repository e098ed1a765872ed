/* app.h - the services a handler may use: shared ones (struct app) and the ones owned by the
 * loop thread that runs the handler (struct app_thread). Built by main, passed down; there
 * is no global. The services are named, not included: a query handler that includes this
 * header knows nothing of the writer or the projector (scripts/check-includes.sh). */
#ifndef CATALOGD_APP_H
#define CATALOGD_APP_H

#include "common/redis_url.h"
#include "http/host_policy.h"
#include "http/listen_address.h"

struct app_config {
    const char *listen;                   /* "host:port", as given */
    struct listen_address listen_address; /* resolved, by serve */
    struct host_policy host_policy; /* the names state-changing requests may give (Host, Origin) */
    const char *db_path;
    const char *redis_text; /* as given, for messages */
    struct redis_url redis;
    const char *prefix;    /* Redis key prefix */
    char instance_id[128]; /* this instance's name among those sharing the write model */
    int threads;
    int durable;                  /* synchronous=FULL */
    int projection_wait_ms;       /* how long a command waits for its view (read-your-writes) */
    int redis_timeout_ms;         /* how long a query waits for Redis */
    const char *api_token;        /* NULL: commands are open */
    int allow_open_writes;        /* serve commands on a non-loopback address without a token */
    int max_connections;          /* open at once; more wait in the listen backlog */
    size_t max_body_bytes;        /* larger bodies get 413, unread */
    size_t max_header_bytes;      /* larger request line + headers get 431 */
    int idle_timeout_s;           /* for a connection that sends nothing or trickles a request */
    int64_t max_idempotency_keys; /* stored at once */
    int64_t max_queued_commands;  /* waiting for the writer at once */
    int view_cache_mb;            /* product views kept in memory (0: none) */
    const char *tls_cert;         /* PEM paths: HTTPS when set (both or neither) */
    const char *tls_key;
    int http2;              /* offer h2 by ALPN (TLS only) */
    struct ssl_ctx_st *tls; /* made by serve from tls_cert and tls_key; NULL: plain HTTP */
};

struct inflight_keys;
struct maintenance;
struct projector;
struct view_cache;
struct writer;
struct applied_floor;

struct app {
    const struct app_config *config;
    struct writer *writer;
    struct inflight_keys *inflight_keys; /* Idempotency-Keys of commands not yet answered */
    struct projector *projector;
    struct maintenance *maintenance; /* rebuilds (POST /admin/rebuild), old generations */
    /* NULL while queries may answer from the read model, else why not: what is under the
     * Redis prefix is not known to be this catalog's (projection/prefix_hold.h). */
    const char *(*read_model_refusal)(const struct app *app);
    /* Called when a query finds the read model not confirmed in Redis (READ_UNCONFIRMED):
     * asks the projector to check Redis now (projector_poke). */
    void (*read_model_unconfirmed)(const struct app *app);
    /* Views for GET /products/{id}, kept exact by the projector; NULL when none (several
     * instances share the write model, or --view-cache-mb 0). */
    struct view_cache *view_cache;
    /* The checkpoint queries hold Redis to (applied_floor.h), raised by the projector. */
    struct applied_floor *applied_floor;
};

struct read_model;
struct redis_client;

struct app_thread {
    struct redis_client *redis; /* this loop's connection to the read model */
    struct read_model *read_model;
};

#endif
