/* tls.c - the listener's SSL_CTX (tls.h).
 * Invariant: a context is returned only once its certificate and key load and match. */
#include "http/tls.h"

#include <errno.h>
#include <h2o.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const h2o_iovec_t ALPN_HTTP1[] = {{H2O_STRLIT("http/1.1")}, {NULL, 0}};
static const h2o_iovec_t ALPN_HTTP2[] = {{H2O_STRLIT("h2")}, {H2O_STRLIT("http/1.1")}, {NULL, 0}};

/* Puts, into "err", why "path" (given to "flag") gave no "expected": the file cannot be
 * opened, is a directory, or OpenSSL read no such PEM object from it. Returns -1. */
static int tls_error(char *err, size_t errlen, const char *flag, const char *path,
                     const char *expected)
{
    unsigned long code = ERR_peek_error(); /* the first: the PEM reader's own reason */
    char reason[200] = "";
    struct stat st;
    FILE *file = fopen(path, "r");
    if (!file)
        snprintf(reason, sizeof(reason), "%s", strerror(errno));
    else if (fstat(fileno(file), &st) == 0 && S_ISDIR(st.st_mode))
        snprintf(reason, sizeof(reason), "is a directory, not a PEM file");
    else
        snprintf(reason, sizeof(reason), "no PEM %s could be read from it (%s)", expected,
                 code ? ERR_reason_error_string(code) : "unknown error");
    if (file) fclose(file);
    snprintf(err, errlen, "bad %s %s: %s", flag, path, reason);
    ERR_clear_error();
    return -1;
}

int tls_context_new(const char *cert_path, const char *key_path, int http2, SSL_CTX **out,
                    char *err, size_t errlen)
{
    *out = NULL;
    ERR_clear_error();
    SSL_CTX *context = SSL_CTX_new(TLS_server_method());
    if (!context) {
        snprintf(err, errlen, "cannot make a TLS context");
        return -1;
    }
    SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION);
    SSL_CTX_set_options(context, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                     SSL_OP_CIPHER_SERVER_PREFERENCE);
    int rc = -1;
    if (SSL_CTX_use_certificate_chain_file(context, cert_path) != 1) {
        tls_error(err, errlen, "--tls-cert", cert_path, "certificate");
        goto out;
    }
    /* OpenSSL checks the key against the certificate as it loads it. */
    int loaded = SSL_CTX_use_PrivateKey_file(context, key_path, SSL_FILETYPE_PEM) == 1;
    if (!loaded && ERR_GET_REASON(ERR_peek_last_error()) != X509_R_KEY_VALUES_MISMATCH) {
        tls_error(err, errlen, "--tls-key", key_path, "private key");
        goto out;
    }
    if (!loaded || SSL_CTX_check_private_key(context) != 1) {
        snprintf(err, errlen, "bad --tls-key %s: it does not match the certificate in %s", key_path,
                 cert_path);
        ERR_clear_error();
        goto out;
    }
    h2o_ssl_register_alpn_protocols(context, http2 ? ALPN_HTTP2 : ALPN_HTTP1);
    rc = 0;
out:
    if (rc < 0)
        SSL_CTX_free(context);
    else
        *out = context;
    return rc;
}

void tls_context_free(SSL_CTX *context)
{
    SSL_CTX_free(context);
}
