/* tcp_acked.c - see tcp_acked.h. Its own file: glibc's <netinet/tcp.h>, which h2o.h brings in,
 * has a struct tcp_info without tcpi_bytes_acked, and the kernel's <linux/tcp.h>, which has it,
 * cannot be included beside it. */
#include "http/tcp_acked.h"

#include <linux/tcp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

int tcp_bytes_acked(int fd, uint64_t *acked)
{
    struct tcp_info info;
    socklen_t len = sizeof(info);
    memset(&info, 0, sizeof(info));
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) < 0) return -1;
    /* A kernel older than the field (Linux 4.1) fills less of the structure. */
    if (len < offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof(info.tcpi_bytes_acked))
        return -1;
    *acked = info.tcpi_bytes_acked;
    return 0;
}
