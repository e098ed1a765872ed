/* linger.h - a lingering close for connections whose request body was refused unread.
 *
 * h2o answers 413 to a body over the limit as soon as it sees the Content-Length (or when a
 * chunked body crosses it), then closes the socket. If the client is still sending, closing a
 * socket with unread input makes the kernel send a reset, and the client may lose the 413 it
 * has not read yet. A lingering close instead sends FIN after the response, then reads and
 * throws away what the client still sends, until it closes or LINGER_MS pass. Nothing of the
 * body is kept. */
#ifndef CATALOGD_LINGER_H
#define CATALOGD_LINGER_H

#include <h2o.h>

#define LINGER_MS 5000

/* Adds, to pathconf, a filter that arms a lingering close on every 413 it sees; h2o's own
 * early errors are bound to the host's fallback path. */
void linger_register(h2o_pathconf_t *pathconf);

#endif
