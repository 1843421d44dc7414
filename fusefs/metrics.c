/* metrics.c - the Prometheus endpoint (metrics.h).
 *
 * One thread polls the listening socket and a stop eventfd; it serves each
 * connection to the end before accepting the next (a scrape every few
 * seconds needs no more), with a deadline per connection so a silent
 * client cannot hold it.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "metrics.h"

#define METRICS_IO_MS 5000	/* a client must send its request / take the answer within this */
#define METRICS_REQUEST_MAX 4096 /* longest request head read */

struct mmsbfs_metrics {
	struct mmsb_store *st;	   /* the store (borrowed) */
	ctl_extra_stats_fn extra;  /* daemon values for stats, or NULL */
	void *arg;		   /* for extra */
	int lfd;		   /* listening socket */
	int stopfd;		   /* eventfd: readable once stop begins */
	pthread_t thread;	   /* the server thread */
};

/* Split "HOST:PORT" / "[HOST]:PORT" into host and port (malloc'd host). */
static int metrics_split(const char *addr, char **host, const char **port)
{
	const char *colon;
	size_t hlen;
	char *end;
	unsigned long p;

	if (addr[0] == '[') {
		const char *rb = strchr(addr, ']');

		if (rb == NULL || rb[1] != ':')
			return -EINVAL;
		colon = rb + 1;
		addr++;
		hlen = (size_t)(rb - addr);
	} else {
		colon = strrchr(addr, ':');
		if (colon == NULL)
			return -EINVAL;
		hlen = (size_t)(colon - addr);
	}
	errno = 0;
	p = strtoul(colon + 1, &end, 10);
	if (hlen == 0 || colon[1] == '\0' || *end != '\0' || errno != 0 || p == 0 || p > 65535)
		return -EINVAL;
	*port = colon + 1;
	*host = strndup(addr, hlen);
	return *host != NULL ? 0 : -ENOMEM;
}

int mmsbfs_metrics_check(const char *addr)
{
	const char *port;
	char *host = NULL;
	int rc = metrics_split(addr, &host, &port);

	free(host);
	return rc;
}

static int metrics_listen(const char *addr)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV | AI_PASSIVE}, *ai = NULL, *p;
	const char *port;
	char *host = NULL;
	int rc = metrics_split(addr, &host, &port), fd = -1, one = 1;

	if (rc < 0)
		return rc;
	if (getaddrinfo(host, port, &hints, &ai) != 0) {
		free(host);
		return -EINVAL;
	}
	rc = -EADDRNOTAVAIL;
	for (p = ai; p != NULL; p = p->ai_next) {
		fd = socket(p->ai_family, p->ai_socktype | SOCK_CLOEXEC, p->ai_protocol);
		if (fd < 0) {
			rc = -errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, p->ai_addr, p->ai_addrlen) == 0 && listen(fd, 16) == 0) {
			rc = 0;
			break;
		}
		rc = -errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	free(host);
	return rc < 0 ? rc : fd;
}

static int64_t metrics_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until fd is ready for events, the deadline passes (-ETIMEDOUT) or
 * stop begins (-ESHUTDOWN). */
static int metrics_wait(const struct mmsbfs_metrics *m, int fd, short events, int64_t deadline)
{
	struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = m->stopfd, .events = POLLIN}};
	int64_t left = deadline - metrics_ms();
	int n;

	if (left <= 0)
		return -ETIMEDOUT;
	n = poll(p, 2, (int)left);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	if (p[1].revents)
		return -ESHUTDOWN;
	return n == 0 ? -ETIMEDOUT : 0;
}

static int metrics_send(const struct mmsbfs_metrics *m, int fd, const char *p, size_t n, int64_t deadline)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			int rc = metrics_wait(m, fd, POLLOUT, deadline);

			if (rc < 0)
				return rc;
			continue;
		}
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The body for GET /metrics; 0 or -errno. */
static int metrics_body(const struct mmsbfs_metrics *m, struct ctl_buf *body)
{
	struct ctl_env env = {.st = m->st, .daemon_pid = getpid(), .extra_stats = m->extra, .extra_arg = m->arg};
	struct ctl_result res = {0};
	char *argv[] = {"stats"};
	int rc = ctl_exec(&env, 1, argv, &res);

	if (rc == 0)
		rc = ctl_prometheus(res.out.p ? res.out.p : "", body);
	ctl_result_free(&res);
	return rc;
}

static void metrics_serve(const struct mmsbfs_metrics *m, int fd)
{
	char req[METRICS_REQUEST_MAX + 1];
	struct ctl_buf body = {0}, head = {0};
	int64_t deadline = metrics_ms() + METRICS_IO_MS;
	const char *status = "200 OK", *ctype = "text/plain; version=0.0.4; charset=utf-8";
	size_t len = 0;
	bool head_only = false;

	while (len < METRICS_REQUEST_MAX && memmem(req, len, "\r\n\r\n", 4) == NULL &&
	       memmem(req, len, "\n\n", 2) == NULL) {
		ssize_t r = recv(fd, req + len, METRICS_REQUEST_MAX - len, MSG_DONTWAIT);

		if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (metrics_wait(m, fd, POLLIN, deadline) < 0)
				return;
			continue;
		}
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	req[len] = '\0';
	if (strncmp(req, "HEAD ", 5) == 0)
		head_only = true;
	else if (strncmp(req, "GET ", 4) != 0)
		status = "405 Method Not Allowed";
	if (status[0] == '2') {
		const char *path = strchr(req, ' ') + 1;
		size_t plen = strcspn(path, " ?\r\n");

		if (plen != 8 || strncmp(path, "/metrics", 8) != 0)
			status = "404 Not Found";
	}
	if (status[0] == '2' && metrics_body(m, &body) < 0) {
		ctl_buf_free(&body);
		status = "500 Internal Server Error";
	}
	if (status[0] != '2') {
		ctype = "text/plain; charset=utf-8";
		if (ctl_buf_printf(&body, "%s\n", status) < 0)
			return;
	}
	if (ctl_buf_printf(&head,
			   "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%sConnection: close\r\n\r\n",
			   status, ctype, body.len, status[0] == '4' && status[1] == '0' && status[2] == '5' ? "Allow: GET, HEAD\r\n" : "") == 0 &&
	    metrics_send(m, fd, head.p, head.len, deadline) == 0 && !head_only)
		metrics_send(m, fd, body.p ? body.p : "", body.len, deadline);
	ctl_buf_free(&head);
	ctl_buf_free(&body);
}

static void *metrics_main(void *arg)
{
	struct mmsbfs_metrics *m = arg;

	for (;;) {
		struct pollfd p[2] = {{.fd = m->lfd, .events = POLLIN}, {.fd = m->stopfd, .events = POLLIN}};
		int fd;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		fd = accept4(m->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		metrics_serve(m, fd);
		close(fd);
	}
	return NULL;
}

int mmsbfs_metrics_start(struct mmsb_store *st, const char *addr, ctl_extra_stats_fn extra, void *arg,
			 struct mmsbfs_metrics **out)
{
	struct mmsbfs_metrics *m = calloc(1, sizeof(*m));
	int rc;

	if (m == NULL)
		return -ENOMEM;
	*m = (struct mmsbfs_metrics){.st = st, .extra = extra, .arg = arg, .lfd = -1, .stopfd = -1};
	m->lfd = metrics_listen(addr);
	if (m->lfd < 0) {
		rc = m->lfd;
		goto fail;
	}
	m->stopfd = eventfd(0, EFD_CLOEXEC);
	if (m->stopfd < 0) {
		rc = -errno;
		goto fail;
	}
	rc = -pthread_create(&m->thread, NULL, metrics_main, m);
	if (rc < 0)
		goto fail;
	*out = m;
	return 0;
fail:
	if (m->stopfd >= 0)
		close(m->stopfd);
	if (m->lfd >= 0)
		close(m->lfd);
	free(m);
	return rc;
}

void mmsbfs_metrics_stop(struct mmsbfs_metrics *m)
{
	uint64_t one = 1;

	if (m == NULL)
		return;
	if (write(m->stopfd, &one, sizeof(one)) < 0) {
		/* an eventfd write of 1 cannot fail short of a bug: the join
		 * below would hang, so leak the thread rather than wait */
		return;
	}
	pthread_join(m->thread, NULL);
	close(m->stopfd);
	close(m->lfd);
	free(m);
}
