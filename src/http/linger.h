/* linger.h - a lingering close for connections closed on an error while the client may still
 * be sending: a body refused unread, a request refused with more bytes after it.
 *
 * h2o answers 413 to a body over the limit as soon as it sees the Content-Length (or when a
 * chunked body crosses it), then closes the socket; catalogd does the same after a request
 * whose framing is ambiguous or whose head is too large. If the client is still sending,
 * closing a socket with unread input makes the kernel send a reset, and the client may lose
 * the answer it has not read yet. A lingering close instead sends FIN after the response,
 * then reads and throws away what the client still sends, until it closes or LINGER_MS pass.
 * Nothing of what it sends is kept, and none of it runs. */
#ifndef CATALOGD_LINGER_H
#define CATALOGD_LINGER_H

#include <h2o.h>

#define LINGER_MS 5000

/* Adds, to pathconf, a filter that arms a lingering close on every error response that closes
 * its connection; h2o's own early errors are bound to the host's fallback path, catalogd's
 * to the path of its handler. */
void linger_register(h2o_pathconf_t *pathconf);

#endif
