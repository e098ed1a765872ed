/* redis_tls.h - the client side of TLS to Redis (rediss://), shared by the query loops'
 * client and the blocking connections: one place decides what a trusted server is.
 * Invariant: a context made here verifies the server's certificate chain (against
 * "--redis-ca-file", or the system store) and its name (the URL's host, a DNS name or an IP
 * address), during the handshake; a connection that fails either check never carries a
 * command. */
#ifndef CATALOGD_REDIS_TLS_H
#define CATALOGD_REDIS_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "common/redis_url.h"

/* Makes a client context for "url" (its host, ca_file, cert_file and key_file). Returns it
 * (free with SSL_CTX_free), or NULL with a reason naming the file in "err". */
SSL_CTX *redis_tls_context_new(const struct redis_url *url, char *err, size_t errlen);

/* Writes why the handshake on "ssl" failed into "out" ("cap" bytes): the certificate check
 * that failed ("certificate verify failed: unable to get local issuer certificate"), else
 * OpenSSL's first queued error, else "fallback". Clears OpenSSL's error queue. Returns "out". */
const char *redis_tls_failure(const SSL *ssl, const char *fallback, char *out, size_t cap);

#endif
