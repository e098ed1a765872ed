/* tls.h - the listener's TLS: one server SSL_CTX made at start from --tls-cert and --tls-key,
 * shared by every loop thread (an SSL_CTX may be used from several threads at once). ALPN
 * offers http/1.1, and h2 only when asked for (--http2: README "Security" says why it is off
 * by default). */
#ifndef CATALOGD_TLS_H
#define CATALOGD_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

/* Makes the server context for the PEM certificate chain at "cert_path" and the PEM private key
 * at "key_path", offering h2 by ALPN when "http2" is non-zero. Returns 0 and the context in
 * "*out" (freed with tls_context_free), or -1 with one line in "err" naming the file and the
 * reason (missing, unreadable, not PEM, a key that does not match the certificate). */
int tls_context_new(const char *cert_path, const char *key_path, int http2, SSL_CTX **out,
                    char *err, size_t errlen);

void tls_context_free(SSL_CTX *context);

#endif
