/* redis_tls.c - builds the verifying client context for rediss:// and names its failures. */
#include "common/redis_tls.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

/* Writes OpenSSL's first queued error into "out" and empties the queue. */
static void first_error(char *out, size_t cap)
{
    unsigned long code = ERR_get_error();
    if (code) {
        char text[256];
        ERR_error_string_n(code, text, sizeof(text));
        snprintf(out, cap, "%s", text);
    }
    ERR_clear_error();
}

SSL_CTX *redis_tls_context_new(const struct redis_url *url, char *err, size_t errlen)
{
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        snprintf(err, errlen, "cannot make a TLS context");
        return NULL;
    }
    char why[256] = "unknown error";
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (url->ca_file) {
        if (SSL_CTX_load_verify_locations(ctx, url->ca_file, NULL) != 1) {
            first_error(why, sizeof(why));
            snprintf(err, errlen, "cannot load the Redis CA file %s: %s", url->ca_file, why);
            goto fail;
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        first_error(why, sizeof(why));
        snprintf(err, errlen, "cannot load the system CA store: %s", why);
        goto fail;
    }
    if (url->cert_file || url->key_file) {
        const char *cert = url->cert_file ? url->cert_file : url->key_file;
        const char *key = url->key_file ? url->key_file : url->cert_file;
        if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
            first_error(why, sizeof(why));
            snprintf(err, errlen, "cannot load the Redis client certificate %s: %s", cert, why);
            goto fail;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx) != 1) {
            first_error(why, sizeof(why));
            snprintf(err, errlen, "cannot use the Redis client key %s%s: %s", key,
                     url->key_file ? "" : " (no --redis-key: looked for in --redis-cert)", why);
            goto fail;
        }
    }
    /* The name check is OpenSSL's, during the handshake: an IP address must be in the
     * certificate's IP SANs, a host name in its DNS SANs (wildcards as RFC 6125 says), never
     * in its Common Name, where OpenSSL looks by default when there are no DNS SANs. */
    X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
    unsigned char ip[16];
    int is_ip = inet_pton(AF_INET, url->host, ip) == 1 || inet_pton(AF_INET6, url->host, ip) == 1;
    if ((is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, url->host)
               : X509_VERIFY_PARAM_set1_host(param, url->host, 0)) != 1) {
        snprintf(err, errlen, "cannot check the Redis host name %s", url->host);
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return NULL;
}

const char *redis_tls_failure(const SSL *ssl, const char *fallback, char *out, size_t cap)
{
    long verify = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    snprintf(out, cap, "%s", fallback);
    if (verify != X509_V_OK) {
        snprintf(out, cap, "TLS certificate verify failed: %s",
                 X509_verify_cert_error_string(verify));
        ERR_clear_error();
    } else {
        char why[256] = "";
        first_error(why, sizeof(why));
        if (why[0]) snprintf(out, cap, "TLS handshake failed: %s", why);
    }
    return out;
}
