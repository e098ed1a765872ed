/* host_policy.h - which names a request may give for this server, in Host and in Origin.
 *
 * A page on another site can make a browser send requests to catalogd: a "simple" POST needs
 * no CORS preflight, and a name the attacker controls can be made to resolve to 127.0.0.1 (DNS
 * rebinding), so a request that reaches a loopback listener is not proof of a local client.
 * What the browser cannot forge is the Host it names and the Origin of the page. So a
 * state-changing request must name this server in Host (the --listen address, a loopback name
 * with the listening port, or a name given with --allowed-host), and when it carries an Origin,
 * that Origin must name this server too. Pure: no h2o types. */
#ifndef CATALOGD_HOST_POLICY_H
#define CATALOGD_HOST_POLICY_H

#include <stddef.h>

#include "common/slice.h"

#define HOST_POLICY_NAME_MAX 255

/* One name the policy accepts: "host" (any port) or "host:port". */
struct host_name {
    char name[HOST_POLICY_NAME_MAX + 1]; /* lowercase; an IPv6 address keeps its brackets */
    int port;                            /* 0: any port */
};

struct host_policy {
    struct host_name listen;   /* the --listen address (port set); name "" for 0.0.0.0 or [::] */
    struct host_name *allowed; /* the --allowed-host names */
    size_t allowed_count;
};

/* Parses "text" ("host" or "host:port", an IPv6 address in brackets) into "*out", lowercased.
 * Returns 0, or -1 when it is not a host name, an IP address or a port 1-65535. */
int host_name_parse(struct slice text, struct host_name *out);

enum host_policy_error {
    HOST_POLICY_BAD_LISTEN = -1,  /* the --listen address is not host:port */
    HOST_POLICY_BAD_ALLOWED = -2, /* an --allowed-host entry is not a name or name:port */
};

/* Builds "*policy" from the --listen address "listen" ("host:port") and the comma-separated
 * --allowed-host list "allowed" (NULL or "" for none; entries may be padded with spaces, empty
 * ones are skipped). Returns 0, or an enum host_policy_error with the bad value named in "err"
 * ("errlen" bytes). Free with host_policy_clear (accepts a cleared policy). */
int host_policy_init(struct host_policy *policy, const char *listen, const char *allowed, char *err,
                     size_t errlen);
void host_policy_clear(struct host_policy *policy);

/* 1 when the Host header value "host" names this server, else 0. A Host without a port means
 * port 80 (catalogd speaks plain HTTP). */
int host_policy_allows_host(const struct host_policy *policy, struct slice host);

/* 1 when the Origin header value "origin" ("http://name[:port]" or "https://...") names this
 * server, by the same rules as Host (its port defaults by scheme), else 0 ("null" included). */
int host_policy_allows_origin(const struct host_policy *policy, struct slice origin);

#endif
