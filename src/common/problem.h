/* problem.h - RFC 9457 problem details as JSON text: {"type","title","status","detail",...}.
 * Shared by the HTTP layer (errors it answers itself) and the command side (outcomes that an
 * Idempotency-Key stores with the command). */
#ifndef CATALOGD_PROBLEM_H
#define CATALOGD_PROBLEM_H

#include <jansson.h>
#include <stddef.h>

#define PROBLEM_CONTENT_TYPE "application/problem+json"

/* Renders a problem of type "urn:catalogd:problem:<slug>" with the slug's title. The members
 * of "extra" (may be NULL; its reference is taken) are added after "detail". Returns
 * malloc'd text (free it) and its length in "*len". */
char *problem_render(int status, const char *slug, const char *detail, json_t *extra, size_t *len);

#endif
