/* listen_address.h - the --listen address, resolved once: the address the server binds and
 * the one the loopback check decides on (a name is judged by what it resolves to, not by how
 * it reads: "127.attacker.test" may resolve to 0.0.0.0, every interface). */
#ifndef CATALOGD_LISTEN_ADDRESS_H
#define CATALOGD_LISTEN_ADDRESS_H

#include <stddef.h>
#include <sys/socket.h>

struct listen_address {
    struct sockaddr_storage addr;
    socklen_t len;
};

/* Resolves "listen" ("host:port", "[v6]:port") to the first address getaddrinfo gives for a
 * passive TCP socket. Returns 0, or -1 with the reason in "err" ("errlen" bytes). */
int listen_address_resolve(const char *listen, struct listen_address *out, char *err,
                           size_t errlen);

/* 1 when "address" is a loopback address (127.0.0.0/8, ::1, or ::ffff:127.0.0.0/104), else 0:
 * 0.0.0.0 and :: are every interface. */
int listen_address_is_loopback(const struct listen_address *address);

/* Writes "address" as "host:port" ("[v6]:port") into "out" ("cap" bytes). */
void listen_address_format(const struct listen_address *address, char *out, size_t cap);

#endif
