/* linger.h - a lingering close for connections closed on an error while the client may still
 * be sending: a body refused unread, a request refused with more bytes after it, a head over
 * the limit.
 *
 * h2o answers 413 to a body over the limit as soon as it sees the Content-Length (or when a
 * chunked body crosses it), then closes the socket; catalogd does the same after a request
 * whose framing is ambiguous or whose head is too large. If the client is still sending,
 * closing a socket with unread input makes the kernel send a reset, and the client may lose
 * the answer it has not read yet. A lingering close instead keeps a duplicate of the socket's
 * descriptor past h2o's close, sends FIN, then reads and throws away what the client still
 * sends, until it closes or LINGER_MS pass. Nothing of what it sends is kept, and none of it
 * runs. conn_guard.c decides when to linger; this module does it. */
#ifndef CATALOGD_LINGER_H
#define CATALOGD_LINGER_H

#include <h2o.h>

#define LINGER_MS 5000

/* Lingers on "fd" (a duplicate of a connection's descriptor, whose h2o socket is closed; this
 * module closes it) on "loop", then calls "done(arg)". On the loop's thread. */
void linger_start(h2o_loop_t *loop, int fd, void (*done)(void *arg), void *arg);

#endif
