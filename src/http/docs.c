/* docs.c - serves GET /docs and its assets from the bytes the Makefile linked in (ld -b binary,
 * from build/docs/embed/: Swagger UI from npm, docs/index.html and docs/catalogd-docs.js).
 * Invariant: an asset is only answered under the tag of this build (a hash of every embedded
 * file), so a URL marked immutable always names the same bytes; the page itself is no-cache
 * with that tag as its ETag. Nothing here reads the filesystem. */
#include "http/docs.h"

#include <stdio.h>
#include <string.h>

/* Embedded files: ld names each _binary_<file name, non-alphanumerics as '_'>_start/_end. */
#define EMBEDDED(symbol)                                                                           \
    extern const char _binary_##symbol##_start[];                                                  \
    extern const char _binary_##symbol##_end[];
EMBEDDED(docs_tag)
EMBEDDED(docs_index_html)
EMBEDDED(swagger_ui_css)
EMBEDDED(swagger_ui_bundle_js)
EMBEDDED(catalogd_docs_js)
EMBEDDED(favicon_32x32_png)
EMBEDDED(LICENSE)
EMBEDDED(NOTICE)
EMBEDDED(swagger_ui_bundle_js_LICENSE_txt)

#define BYTES(symbol) _binary_##symbol##_start, _binary_##symbol##_end

static const struct {
    const char *name; /* the last path segment */
    const char *content_type;
    const char *start;
    const char *end;
} ASSETS[] = {
    {"swagger-ui.css", "text/css; charset=utf-8", BYTES(swagger_ui_css)},
    {"swagger-ui-bundle.js", "text/javascript; charset=utf-8", BYTES(swagger_ui_bundle_js)},
    {"catalogd-docs.js", "text/javascript; charset=utf-8", BYTES(catalogd_docs_js)},
    {"favicon-32x32.png", "image/png", BYTES(favicon_32x32_png)},
    /* Swagger UI's Apache-2.0 licence and notice, and the licences of what its bundle holds
     * (the bundle's last comment names this file, relative to itself). */
    {"LICENSE", "text/plain; charset=utf-8", BYTES(LICENSE)},
    {"NOTICE", "text/plain; charset=utf-8", BYTES(NOTICE)},
    {"swagger-ui-bundle.js.LICENSE.txt", "text/plain; charset=utf-8",
     BYTES(swagger_ui_bundle_js_LICENSE_txt)},
};

/* Only this server's own scripts, styles and API; Swagger UI's icons are data: images in its
 * CSS. No framing (the page can send writes: no clickjacking), no forms elsewhere, no <base>. */
static const char CONTENT_SECURITY_POLICY[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'";

static struct slice build_tag(void)
{
    return (struct slice){_binary_docs_tag_start,
                          (size_t)(_binary_docs_tag_end - _binary_docs_tag_start)};
}

/* Returns 1 when the request's If-None-Match lists "etag" (weak or strong) or is "*". */
static int etag_matches(const struct http_exchange *ex, struct slice etag)
{
    struct slice given = http_header(ex, "if-none-match");
    if (given.len == 1 && given.p[0] == '*') return 1;
    for (size_t i = 0; i + etag.len <= given.len; i++)
        if (memcmp(given.p + i, etag.p, etag.len) == 0) return 1;
    return 0;
}

static void add_common_headers(struct http_exchange *ex)
{
    static const char nosniff[] = "nosniff";
    http_add_header(ex, "x-content-type-options", nosniff, sizeof(nosniff) - 1);
}

void docs_page(struct http_exchange *ex)
{
    static const char no_cache[] = "no-cache";
    static const char deny[] = "DENY";
    static const char no_referrer[] = "no-referrer";
    struct slice tag = build_tag();
    char etag[80];
    size_t etag_len = (size_t)snprintf(etag, sizeof(etag), "\"%.*s\"", (int)tag.len, tag.p);
    add_common_headers(ex);
    http_add_header(ex, "cache-control", no_cache, sizeof(no_cache) - 1);
    http_add_header(ex, "etag", etag, etag_len);
    http_add_header(ex, "content-security-policy", CONTENT_SECURITY_POLICY,
                    sizeof(CONTENT_SECURITY_POLICY) - 1);
    http_add_header(ex, "x-frame-options", deny, sizeof(deny) - 1);
    http_add_header(ex, "referrer-policy", no_referrer, sizeof(no_referrer) - 1);
    if (etag_matches(ex, (struct slice){etag, etag_len})) {
        http_respond(ex, 304, NULL, "", 0);
        return;
    }
    http_respond(ex, 200, "text/html; charset=utf-8", _binary_docs_index_html_start,
                 (size_t)(_binary_docs_index_html_end - _binary_docs_index_html_start));
}

void docs_asset(struct http_exchange *ex)
{
    static const char forever[] = "public, max-age=31536000, immutable";
    struct slice tag = build_tag();
    struct slice given_tag = ex->params[0], name = ex->params[1];
    int same_build = given_tag.len == tag.len && memcmp(given_tag.p, tag.p, tag.len) == 0;
    for (size_t i = 0; same_build && i < sizeof(ASSETS) / sizeof(ASSETS[0]); i++) {
        if (!slice_eq(name, ASSETS[i].name)) continue;
        add_common_headers(ex);
        http_add_header(ex, "cache-control", forever, sizeof(forever) - 1);
        http_respond(ex, 200, ASSETS[i].content_type, ASSETS[i].start,
                     (size_t)(ASSETS[i].end - ASSETS[i].start));
        return;
    }
    http_respond_problem(ex, 404, "not-found", "no such asset of this build's /docs page", NULL);
}
