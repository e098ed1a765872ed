/* response.h - the HTTP response a command's outcome gets. */
#ifndef CATALOGD_RESPONSE_H
#define CATALOGD_RESPONSE_H

#include <stddef.h>

#include "command/command.h"

/* The HTTP response a command's outcome gets: a pure function of the command, used to answer
 * and, with an Idempotency-Key, to store the answer in the command's transaction. */
struct command_response {
    int status;
    int retry_after_s; /* a Retry-After header when > 0 */
    char location[64];
    char etag[24];
    const char *content_type; /* NULL for no body */
    char *body;               /* malloc'd or NULL */
    size_t body_len;
};

void command_response_render(const struct command *cmd, struct command_response *out);
void command_response_clear(struct command_response *response);

#endif
