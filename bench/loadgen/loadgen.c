/* weir bench load generator: the hot loops the bench must not run in Node.
 *
 *   loadgen tcp-server PORT             accept and close, forever (backend netns)
 *   loadgen udp-server PORT             echo datagrams, forever
 *   loadgen tcp-connect IP PORT SECONDS new TCP connection after new connection; prints JSON
 *   loadgen udp-rr IP PORT SECONDS      one request, wait for its reply, repeat; prints JSON
 *
 * Connect latency is connect() start to the handshake completing (SYN -> SYN-ACK
 * through the service translation and back). The client closes with SO_LINGER 0
 * (a RST) so no TIME_WAIT state piles up and every connection is a fresh flow.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLES (4 * 1024 * 1024)
#define TIMEOUT_MS 1000

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double pct_us(uint64_t *s, size_t n, double p)
{
	if (!n)
		return 0;
	size_t i = (size_t)(p * (double)(n - 1) + 0.5);
	return (double)s[i] / 1000.0;
}

static void report(const char *mode, uint64_t *s, size_t n, uint64_t errors, double secs)
{
	qsort(s, n, sizeof(*s), cmp_u64);
	printf("{\"mode\":\"%s\",\"count\":%zu,\"errors\":%llu,\"seconds\":%.3f,\"rate\":%.1f,"
	       "\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"min_us\":%.1f,\"max_us\":%.1f}\n",
	       mode, n, (unsigned long long)errors, secs, secs > 0 ? (double)n / secs : 0,
	       pct_us(s, n, 0.50), pct_us(s, n, 0.90), pct_us(s, n, 0.99),
	       n ? (double)s[0] / 1000.0 : 0, n ? (double)s[n - 1] / 1000.0 : 0);
}

static struct sockaddr_in addr_of(const char *ip, const char *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port)) };
	if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) {
		fprintf(stderr, "loadgen: bad IPv4 address '%s'\n", ip);
		exit(2);
	}
	return a;
}

static int tcp_server(const char *port)
{
	struct sockaddr_in a = addr_of("0.0.0.0", port);
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 4096)) {
		perror("loadgen tcp-server: bind/listen");
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
		if (c >= 0)
			close(c);
	}
}

/* Replies leave from the address the request was sent to (IP_PKTINFO): the
 * backend netns holds many endpoint addresses, and a reply from any other
 * source would not match the node's NAT state. */
static int udp_server(const char *port)
{
	struct sockaddr_in a = addr_of("0.0.0.0", port);
	int one = 1, fd = socket(AF_INET, SOCK_DGRAM, 0);
	setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a))) {
		perror("loadgen udp-server: bind");
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	char buf[2048], cbuf[CMSG_SPACE(sizeof(struct in_pktinfo))];
	for (;;) {
		struct sockaddr_in from;
		struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
		struct msghdr m = { .msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &iov, .msg_iovlen = 1,
				    .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
		ssize_t n = recvmsg(fd, &m, 0);
		if (n <= 0)
			continue;
		struct in_pktinfo *pi = NULL;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
			if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO)
				pi = (struct in_pktinfo *)CMSG_DATA(c);
		if (pi) {
			pi->ipi_spec_dst = pi->ipi_addr; /* source of the reply */
			pi->ipi_ifindex = 0;
		}
		iov.iov_len = (size_t)n;
		m.msg_controllen = pi ? sizeof(cbuf) : 0;
		sendmsg(fd, &m, 0);
	}
}

/* One connection: nonblocking connect bounded by TIMEOUT_MS. Returns latency ns or 0 on failure. */
static uint64_t one_connect(const struct sockaddr_in *a)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	uint64_t t0 = now_ns(), lat = 0;
	int r = connect(fd, (const struct sockaddr *)a, sizeof(*a));
	if (r == 0) {
		lat = now_ns() - t0;
	} else if (errno == EINPROGRESS) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		if (poll(&p, 1, TIMEOUT_MS) == 1) {
			int err = 0;
			socklen_t l = sizeof(err);
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
			if (!err)
				lat = now_ns() - t0;
		}
	}
	close(fd);
	return lat ? lat : 0;
}

static int tcp_connect(const char *ip, const char *port, double secs)
{
	struct sockaddr_in a = addr_of(ip, port);
	uint64_t *s = malloc(MAX_SAMPLES * sizeof(*s)), errors = 0;
	size_t n = 0;
	uint64_t start = now_ns(), end = start + (uint64_t)(secs * 1e9);
	while (now_ns() < end && n < MAX_SAMPLES) {
		uint64_t lat = one_connect(&a);
		if (lat)
			s[n++] = lat;
		else if (++errors > 50 && n == 0)
			break; /* nothing answers: stop instead of burning the budget */
	}
	report("tcp-connect", s, n, errors, (double)(now_ns() - start) / 1e9);
	return 0;
}

static int udp_rr(const char *ip, const char *port, double secs)
{
	struct sockaddr_in a = addr_of(ip, port);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		perror("loadgen udp-rr: connect");
		return 1;
	}
	uint64_t *s = malloc(MAX_SAMPLES * sizeof(*s)), errors = 0;
	size_t n = 0;
	char buf[64] = "weir-bench", in[64];
	uint64_t start = now_ns(), end = start + (uint64_t)(secs * 1e9);
	while (now_ns() < end && n < MAX_SAMPLES) {
		uint64_t t0 = now_ns();
		if (send(fd, buf, 32, 0) != 32) {
			errors++;
			continue;
		}
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, TIMEOUT_MS) == 1 && recv(fd, in, sizeof(in), 0) == 32)
			s[n++] = now_ns() - t0;
		else if (++errors > 50 && n == 0)
			break;
	}
	report("udp-rr", s, n, errors, (double)(now_ns() - start) / 1e9);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 3 && !strcmp(argv[1], "tcp-server"))
		return tcp_server(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "udp-server"))
		return udp_server(argv[2]);
	if (argc == 5 && !strcmp(argv[1], "tcp-connect"))
		return tcp_connect(argv[2], argv[3], atof(argv[4]));
	if (argc == 5 && !strcmp(argv[1], "udp-rr"))
		return udp_rr(argv[2], argv[3], atof(argv[4]));
	fprintf(stderr, "usage: loadgen tcp-server PORT | udp-server PORT | tcp-connect IP PORT SECONDS | udp-rr IP PORT SECONDS\n");
	return 2;
}
