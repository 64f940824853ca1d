#define _GNU_SOURCE
#include "CPlumbSys.h"

#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netpacket/packet.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <sched.h>

uint64_t plumb_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int64_t plumb_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int plumb_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int plumb_epoll_add_oneshot(int epfd, int fd, int readable, int writable, uint64_t token) {
    struct epoll_event event;
    memset(&event, 0, sizeof event);
    event.events = EPOLLONESHOT | (readable ? EPOLLIN : 0) | (writable ? EPOLLOUT : 0);
    event.data.u64 = token;
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event);
}

int plumb_epoll_remove(int epfd, int fd) { return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL); }

int plumb_epoll_wait(int epfd, uint64_t *tokens, uint32_t *events, int max, int timeout_ms) {
    struct epoll_event buffer[64];
    if (max > 64) max = 64;
    int count;
    do {
        count = epoll_wait(epfd, buffer, max, timeout_ms);
    } while (count < 0 && errno == EINTR);
    for (int i = 0; i < count; i++) {
        tokens[i] = buffer[i].data.u64;
        events[i] = buffer[i].events;
    }
    return count;
}

int plumb_eventfd_create(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }

void plumb_eventfd_signal(int fd) {
    uint64_t one = 1;
    ssize_t ignored = write(fd, &one, sizeof one);
    (void)ignored;
}

void plumb_eventfd_drain(int fd) {
    uint64_t value;
    ssize_t ignored = read(fd, &value, sizeof value);
    (void)ignored;
}

int plumb_enable_pktinfo(int fd) {
    int on = 1;
    return setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof on);
}

ssize_t plumb_recv_pktinfo(int fd, void *buffer, size_t length, struct sockaddr_in *from, struct in_addr *local_address,
                           int *interface_index) {
    struct iovec iov = {.iov_base = buffer, .iov_len = length};
    char control[CMSG_SPACE(sizeof(struct in_pktinfo))];
    struct msghdr message;
    memset(&message, 0, sizeof message);
    message.msg_name = from;
    message.msg_namelen = sizeof *from;
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    ssize_t received;
    do {
        received = recvmsg(fd, &message, 0);
    } while (received < 0 && errno == EINTR);
    if (received < 0) return received;
    local_address->s_addr = 0;
    *interface_index = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&message); c != NULL; c = CMSG_NXTHDR(&message, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo info;
            memcpy(&info, CMSG_DATA(c), sizeof info);
            *local_address = info.ipi_addr;
            *interface_index = info.ipi_ifindex;
        }
    }
    return received;
}

ssize_t plumb_send_from(int fd, const void *buffer, size_t length, const struct sockaddr_in *to, struct in_addr local_address,
                        int interface_index) {
    struct iovec iov = {.iov_base = (void *)buffer, .iov_len = length};
    char control[CMSG_SPACE(sizeof(struct in_pktinfo))];
    memset(control, 0, sizeof control);
    struct msghdr message;
    memset(&message, 0, sizeof message);
    message.msg_name = (void *)to;
    message.msg_namelen = sizeof *to;
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    struct cmsghdr *c = CMSG_FIRSTHDR(&message);
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
    struct in_pktinfo info;
    memset(&info, 0, sizeof info);
    info.ipi_spec_dst = local_address;
    info.ipi_ifindex = 0;
    (void)interface_index;
    memcpy(CMSG_DATA(c), &info, sizeof info);
    return sendmsg(fd, &message, MSG_NOSIGNAL);
}

struct sockaddr_in plumb_sockaddr_in(uint32_t address_host_order, uint16_t port) {
    struct sockaddr_in address;
    memset(&address, 0, sizeof address);
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(address_host_order);
    return address;
}

uint32_t plumb_sockaddr_address(const struct sockaddr_in *address) { return ntohl(address->sin_addr.s_addr); }
uint16_t plumb_sockaddr_port(const struct sockaddr_in *address) { return ntohs(address->sin_port); }

int plumb_connect_in(int fd, const struct sockaddr_in *address) {
    int result;
    do {
        result = connect(fd, (const struct sockaddr *)address, sizeof *address);
    } while (result < 0 && errno == EINTR);
    return result == 0 ? 0 : errno;
}

int plumb_bind_in(int fd, const struct sockaddr_in *address) {
    return bind(fd, (const struct sockaddr *)address, sizeof *address) == 0 ? 0 : errno;
}

int plumb_sendto_in(int fd, const void *buffer, size_t length, const struct sockaddr_in *address) {
    ssize_t sent = sendto(fd, buffer, length, MSG_NOSIGNAL, (const struct sockaddr *)address, address ? sizeof *address : 0);
    return sent < 0 ? errno : 0;
}

ssize_t plumb_recvfrom_in(int fd, void *buffer, size_t length, struct sockaddr_in *from) {
    socklen_t size = sizeof *from;
    ssize_t received;
    do {
        received = recvfrom(fd, buffer, length, 0, (struct sockaddr *)from, &size);
    } while (received < 0 && errno == EINTR);
    return received;
}

int plumb_accept_in(int fd, struct sockaddr_in *from) {
    socklen_t size = sizeof *from;
    int result;
    do {
        result = accept4(fd, (struct sockaddr *)from, &size, SOCK_CLOEXEC);
    } while (result < 0 && errno == EINTR);
    return result;
}

int plumb_getsockname_in(int fd, struct sockaddr_in *address) {
    socklen_t size = sizeof *address;
    return getsockname(fd, (struct sockaddr *)address, &size) == 0 ? 0 : errno;
}

int plumb_socket_error(int fd) {
    int error = 0;
    socklen_t size = sizeof error;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size) != 0) return errno;
    return error;
}

int plumb_set_int_option(int fd, int level, int name, int value) {
    return setsockopt(fd, level, name, &value, sizeof value) == 0 ? 0 : errno;
}

int plumb_set_linger_zero(int fd) {
    struct linger linger = {.l_onoff = 1, .l_linger = 0};
    return setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, sizeof linger) == 0 ? 0 : errno;
}

int plumb_set_receive_timeout_ms(int fd, int milliseconds) {
    struct timeval tv = {.tv_sec = milliseconds / 1000, .tv_usec = (milliseconds % 1000) * 1000};
    return setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0 ? 0 : errno;
}

int plumb_errno(void) { return errno; }

static plumb_interface *find_or_add(plumb_interface *interfaces, int *count, int max, const char *name) {
    for (int i = 0; i < *count; i++) {
        if (strncmp(interfaces[i].name, name, sizeof interfaces[i].name) == 0) return &interfaces[i];
    }
    if (*count >= max) return NULL;
    plumb_interface *entry = &interfaces[(*count)++];
    memset(entry, 0, sizeof *entry);
    strncpy(entry->name, name, sizeof entry->name - 1);
    entry->index = (int)if_nametoindex(name);
    return entry;
}

int plumb_list_interfaces(plumb_interface *interfaces, int max) {
    struct ifaddrs *list;
    if (getifaddrs(&list) != 0) return -1;
    int count = 0;
    for (struct ifaddrs *item = list; item != NULL; item = item->ifa_next) {
        if (item->ifa_name == NULL) continue;
        plumb_interface *entry = find_or_add(interfaces, &count, max, item->ifa_name);
        if (entry == NULL) break;
        entry->is_loopback = (item->ifa_flags & IFF_LOOPBACK) != 0;
        entry->is_up = (item->ifa_flags & IFF_UP) != 0;
        if (item->ifa_addr == NULL) continue;
        if (item->ifa_addr->sa_family == AF_PACKET) {
            const struct sockaddr_ll *link = (const struct sockaddr_ll *)item->ifa_addr;
            if (link->sll_halen == 6) {
                memcpy(entry->mac, link->sll_addr, 6);
                entry->has_mac = 1;
            }
        } else if (item->ifa_addr->sa_family == AF_INET && entry->address_count < 16) {
            const struct sockaddr_in *address = (const struct sockaddr_in *)item->ifa_addr;
            int prefix = 0;
            if (item->ifa_netmask != NULL) {
                uint32_t mask = ntohl(((const struct sockaddr_in *)item->ifa_netmask)->sin_addr.s_addr);
                while (mask & 0x80000000u) {
                    prefix++;
                    mask <<= 1;
                }
            }
            entry->addresses[entry->address_count] = ntohl(address->sin_addr.s_addr);
            entry->prefix_lengths[entry->address_count] = (uint8_t)prefix;
            entry->address_count++;
        }
    }
    freeifaddrs(list);
    return count;
}

uint16_t plumb_inet_checksum(const void *data, size_t length) {
    const uint8_t *bytes = data;
    uint32_t sum = 0;
    while (length > 1) {
        sum += (uint32_t)((bytes[0] << 8) | bytes[1]);
        bytes += 2;
        length -= 2;
    }
    if (length == 1) sum += (uint32_t)(bytes[0] << 8);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

void plumb_set_thread_name(const char *name) { pthread_setname_np(pthread_self(), name); }

int plumb_pin_to_cpu(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set) == 0 ? 0 : errno;
}
