/* tcp_acked.h - how many bytes of a TCP connection's output its peer has acknowledged: the one
 * measure of whether a client takes what is sent to it, where h2o counts bytes as written when
 * they are handed to it (h2o_socket_t's bytes_written), long before the kernel sends them. */
#ifndef CATALOGD_TCP_ACKED_H
#define CATALOGD_TCP_ACKED_H

#include <stdint.h>

/* Puts in "*acked" the bytes the peer of TCP socket "fd" has acknowledged so far (TCP_INFO).
 * Returns 0, or -1 when the kernel does not tell (not a TCP socket). */
int tcp_bytes_acked(int fd, uint64_t *acked);

#endif
