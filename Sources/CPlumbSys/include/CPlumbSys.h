#ifndef PLUMB_SYS_H
#define PLUMB_SYS_H

#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>
#include <netinet/in.h>

/// Monotonic clock in nanoseconds (CLOCK_MONOTONIC).
uint64_t plumb_monotonic_ns(void);
/// Wall clock in milliseconds since the Unix epoch (CLOCK_REALTIME).
int64_t plumb_wall_ms(void);

/// epoll: create (close-on-exec), add a one-shot interest carrying `token`, remove, wait.
int plumb_epoll_create(void);
int plumb_epoll_add_oneshot(int epfd, int fd, int readable, int writable, uint64_t token);
int plumb_epoll_remove(int epfd, int fd);
/// Waits up to `timeout_ms` (-1: forever) and writes at most `max` tokens and event masks. Returns the count or -1.
int plumb_epoll_wait(int epfd, uint64_t *tokens, uint32_t *events, int max, int timeout_ms);
/// An eventfd used to wake an epoll loop.
int plumb_eventfd_create(void);
void plumb_eventfd_signal(int fd);
void plumb_eventfd_drain(int fd);

/// Turns on IP_PKTINFO on a UDP socket.
int plumb_enable_pktinfo(int fd);
/// recvmsg with IP_PKTINFO: the sender, the local address the datagram was sent to, and the interface it arrived on.
ssize_t plumb_recv_pktinfo(int fd, void *buffer, size_t length, struct sockaddr_in *from, struct in_addr *local_address,
                           int *interface_index);
/// sendmsg from a given local address (IP_PKTINFO), so a reply leaves from the address the request was sent to.
ssize_t plumb_send_from(int fd, const void *buffer, size_t length, const struct sockaddr_in *to, struct in_addr local_address,
                        int interface_index);

/// IPv4 socket address from a host-order address and port.
struct sockaddr_in plumb_sockaddr_in(uint32_t address_host_order, uint16_t port);
uint32_t plumb_sockaddr_address(const struct sockaddr_in *address);
uint16_t plumb_sockaddr_port(const struct sockaddr_in *address);

/// Connects a non-blocking socket; returns 0, or the errno (EINPROGRESS while the handshake runs).
int plumb_connect_in(int fd, const struct sockaddr_in *address);
int plumb_bind_in(int fd, const struct sockaddr_in *address);
int plumb_sendto_in(int fd, const void *buffer, size_t length, const struct sockaddr_in *address);
ssize_t plumb_recvfrom_in(int fd, void *buffer, size_t length, struct sockaddr_in *from);
int plumb_accept_in(int fd, struct sockaddr_in *from);
int plumb_getsockname_in(int fd, struct sockaddr_in *address);
/// The pending error of a socket (SO_ERROR).
int plumb_socket_error(int fd);
int plumb_set_int_option(int fd, int level, int name, int value);
/// SO_LINGER {on, 0}: close sends a reset instead of leaving a TIME_WAIT behind.
int plumb_set_linger_zero(int fd);
int plumb_set_receive_timeout_ms(int fd, int milliseconds);
int plumb_errno(void);

/// Interfaces: one entry per interface with its index, name, MAC and IPv4 addresses.
typedef struct plumb_interface {
    int index;
    char name[32];
    uint8_t mac[6];
    int has_mac;
    int is_loopback;
    int is_up;
    int address_count;
    uint32_t addresses[16];   // host order
    uint8_t prefix_lengths[16];
} plumb_interface;
/// Fills at most `max` interfaces; returns the count or -1.
int plumb_list_interfaces(plumb_interface *interfaces, int max);

/// Pins the calling thread (and threads it starts later) to one CPU; 0 or an errno.
int plumb_pin_to_cpu(int cpu);

/// Names the calling thread (at most 15 bytes are kept).
void plumb_set_thread_name(const char *name);

/// Internet checksum (RFC 1071).
uint16_t plumb_inet_checksum(const void *data, size_t length);

#endif
