/* chan.c - see chan.h. */
#include "chan.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "spin.h"
#include "tls.h"

struct chan {
	SSL			*ssl;
	int			 fd;
	int			 stopfd;
	char			 name[64];
	pthread_mutex_t		 ssl_lock;	/* each SSL_* call */
	pthread_mutex_t		 write_lock;	/* whole frames */
	pthread_mutex_t		 err_lock;
	atomic_int		 err;
	atomic_int		 timeout_ms;	/* no progress for this long: error */
	atomic_uint		 spin_us;	/* reads: busy poll before sleeping */
	char			 errmsg[256];
};

int
chan_new(SSL *ssl, int fd, int stopfd, const char *name, struct chan **out)
{
	struct chan *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return -ENOMEM;
	c->ssl = ssl;
	c->fd = fd;
	c->stopfd = stopfd;
	snprintf(c->name, sizeof(c->name), "%s", name);
	pthread_mutex_init(&c->ssl_lock, NULL);
	pthread_mutex_init(&c->write_lock, NULL);
	pthread_mutex_init(&c->err_lock, NULL);
	*out = c;
	return 0;
}

void
chan_free(struct chan *c)
{
	if (c == NULL)
		return;
	if (c->ssl != NULL) {
		if (atomic_load(&c->err) == 0)
			SSL_shutdown(c->ssl);	/* best effort close_notify */
		SSL_free(c->ssl);
	}
	if (c->fd >= 0)
		close(c->fd);
	pthread_mutex_destroy(&c->ssl_lock);
	pthread_mutex_destroy(&c->write_lock);
	pthread_mutex_destroy(&c->err_lock);
	free(c);
}

void
chan_set_name(struct chan *c, const char *name)
{
	snprintf(c->name, sizeof(c->name), "%s", name);
}

const char *
chan_name(const struct chan *c)
{
	return c->name;
}

int
chan_error(struct chan *c)
{
	return atomic_load(&c->err);
}

const char *
chan_errmsg(struct chan *c)
{
	return c->errmsg;
}

int
chan_set_error(struct chan *c, int err, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&c->err_lock);
	if (atomic_load(&c->err) == 0) {
		va_start(ap, fmt);
		vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
		va_end(ap);
		atomic_store(&c->err, err < 0 ? err : -EIO);
	}
	pthread_mutex_unlock(&c->err_lock);
	return atomic_load(&c->err);
}

void
chan_shutdown(struct chan *c)
{
	if (c == NULL)
		return;
	chan_set_error(c, -ECANCELED, "%s channel: cancelled", c->name);
	shutdown(c->fd, SHUT_RDWR);
}

void
chan_set_spin(struct chan *c, unsigned us)
{
	atomic_store(&c->spin_us, us);
}

void
chan_set_timeout(struct chan *c, int ms)
{
	atomic_store(&c->timeout_ms, ms > 0 ? ms : 0);
}

bool
chan_err_transient(int err)
{
	switch (err) {
	case -ECONNRESET: case -EPIPE: case -ETIMEDOUT: case -EIO:
	case -ECANCELED: case -ENETUNREACH: case -EHOSTUNREACH:
	case -ECONNREFUSED: case -ENOTCONN: case -ESHUTDOWN: case -ENETDOWN:
	case -EHOSTDOWN:
		return true;
	default:
		return false;
	}
}

void
chan_sock_setup(int fd, int timeout_ms)
{
	int one = 1, idle = timeout_ms / 3000 > 0 ? timeout_ms / 3000 : 1;
	int intvl = idle, cnt = 3;
	unsigned ut = timeout_ms > 0 ? (unsigned)timeout_ms : 0;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	if (timeout_ms <= 0)
		return;
	/* A dead peer or path is noticed by the kernel within about
	 * timeout_ms: keepalive probes while idle, and unacknowledged data
	 * never waits longer (TCP_USER_TIMEOUT). */
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ut, sizeof(ut));
}

/* Waits for the socket; 0, or the sticky error. A wait longer than the
 * channel's timeout is an error (-ETIMEDOUT): the peer sends pings, so
 * silence means the connection is dead. A reader with a spin budget polls
 * for it first (spin.h); the stop eventfd is looked at when it sleeps. */
static int
chan_wait(struct chan *c, short events, int tmo, bool reader)
{
	struct pollfd p[2] = {
		{ .fd = c->fd, .events = events },
		{ .fd = c->stopfd, .events = POLLIN },
	};

	if (reader && spin_fd(c->fd, events, atomic_load(&c->spin_us)))
		return atomic_load(&c->err);	/* ready: read it */

	for (;;) {
		int r = poll(p, c->stopfd >= 0 ? 2 : 1, tmo > 0 ? tmo : -1);

		if (atomic_load(&c->err) != 0)
			return atomic_load(&c->err);
		if (r == 0)
			return chan_set_error(c, -ETIMEDOUT, "%s channel: no "
			    "progress for %d ms (connection lost?)", c->name, tmo);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return chan_set_error(c, -errno, "%s channel: poll: %s",
			    c->name, strerror(errno));
		}
		if (c->stopfd >= 0 && (p[1].revents & POLLIN))
			return chan_set_error(c, -ECANCELED, "%s channel: cancelled",
			    c->name);
		if (p[0].revents)
			return 0;
	}
}

/* One SSL call's outcome: >0 bytes, or 0 when it must wait (*ev set), or
 * the sticky error. */
static int
chan_ssl_result(struct chan *c, int ok, size_t n, int r, const char *op,
    short *ev)
{
	int e;

	if (ok)
		return (int)n;
	e = SSL_get_error(c->ssl, r);
	switch (e) {
	case SSL_ERROR_WANT_READ:
		*ev = POLLIN;
		return 0;
	case SSL_ERROR_WANT_WRITE:
		*ev = POLLOUT;
		return 0;
	case SSL_ERROR_ZERO_RETURN:
		return chan_set_error(c, -ECONNRESET, "%s channel: peer closed "
		    "the connection", c->name);
	case SSL_ERROR_SYSCALL:
		if (ERR_peek_error() == 0)
			return chan_set_error(c, -ECONNRESET, "%s channel: "
			    "connection lost during %s%s%s", c->name, op,
			    errno ? ": " : "", errno ? strerror(errno) : "");
		/* FALLTHROUGH */
	default: {
		char why[256] = "";
		tls_errors(why, sizeof(why));
		/* A broken or truncated record: the connection is lost,
		 * not the protocol broken (-EPROTO is kept for frames we
		 * refuse). */
		return chan_set_error(c, -EIO, "%s channel: TLS %s failed: %s",
		    c->name, op, why);
	}
	}
}

/* Moves all of len bytes in one direction, waiting as needed (each wait
 * at most tmo ms; 0: no limit). */
static int
chan_io(struct chan *c, uint8_t *p, size_t len, bool out, int tmo)
{
	while (len > 0) {
		size_t n = 0;
		short ev = 0;
		int ok, r;

		if (atomic_load(&c->err) != 0)
			return atomic_load(&c->err);
		pthread_mutex_lock(&c->ssl_lock);
		ERR_clear_error();
		errno = 0;
		ok = out ? SSL_write_ex(c->ssl, p, len, &n) :
		    SSL_read_ex(c->ssl, p, len, &n);
		r = chan_ssl_result(c, ok, n, ok, out ? "write" : "read", &ev);
		pthread_mutex_unlock(&c->ssl_lock);
		if (r < 0)
			return r;
		if (r == 0) {
			if ((r = chan_wait(c, ev, tmo, !out)) < 0)
				return r;
			continue;
		}
		p += n;
		len -= n;
	}
	return 0;
}

int
chan_read_full(struct chan *c, void *buf, size_t len)
{
	return chan_io(c, buf, len, false, atomic_load(&c->timeout_ms));
}

static int
chan_write_full(struct chan *c, const void *buf, size_t len, int tmo)
{
	/* SSL_write_ex only reads the buffer. */
	return chan_io(c, (uint8_t *)(uintptr_t)buf, len, true, tmo);
}

int
chan_skip(struct chan *c, size_t len)
{
	uint8_t buf[16384];

	while (len > 0) {
		size_t n = len < sizeof(buf) ? len : sizeof(buf);
		int r = chan_read_full(c, buf, n);

		if (r < 0)
			return r;
		len -= n;
	}
	return 0;
}

/* The largest TLS record's plaintext. */
#define CHAN_RECORD_MAX	16384

/* A frame under write_lock (held by the caller), each wait at most tmo. */
static int
chan_send_locked(struct chan *c, const struct wire_hdr *h, const void *payload,
    int tmo)
{
	uint8_t small[WIRE_HDR_LEN + 16384];
	size_t head = CHAN_RECORD_MAX - WIRE_HDR_LEN;
	int r;

	wire_hdr_encode(small, h);
	if (h->length <= sizeof(small) - WIRE_HDR_LEN) {
		/* One TLS record for header and a small payload. */
		if (h->length > 0)
			memcpy(small + WIRE_HDR_LEN, payload, h->length);
		return chan_write_full(c, small, WIRE_HDR_LEN + h->length, tmo);
	}
	/* The header shares the first full record with the payload's
	 * start: no record (and no write) of its own. */
	memcpy(small + WIRE_HDR_LEN, payload, head);
	r = chan_write_full(c, small, CHAN_RECORD_MAX, tmo);
	if (r == 0)
		r = chan_write_full(c, (const uint8_t *)payload + head,
		    h->length - head, tmo);
	return r;
}

int
chan_send_frame(struct chan *c, const struct wire_hdr *h, const void *payload)
{
	int r;

	pthread_mutex_lock(&c->write_lock);
	r = chan_send_locked(c, h, payload, atomic_load(&c->timeout_ms));
	pthread_mutex_unlock(&c->write_lock);
	return r;
}

int
chan_send_msg_within(struct chan *c, unsigned type, const ProtobufCMessage *m,
    int ms)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	struct wire_hdr h = { .type = (uint8_t)type, .length = (uint32_t)len };
	uint8_t buf[1024];
	int r;

	if (len > sizeof(buf))
		return -EMSGSIZE;
	if (pthread_mutex_trylock(&c->write_lock) != 0)
		return -EBUSY;
	protobuf_c_message_pack(m, buf);
	r = chan_send_locked(c, &h, buf, ms);
	pthread_mutex_unlock(&c->write_lock);
	return r;
}

bool
chan_readable(struct chan *c)
{
	struct pollfd p = { .fd = c->fd, .events = POLLIN };
	bool pending;

	pthread_mutex_lock(&c->ssl_lock);
	/* Bytes in the read-ahead buffer count too (SSL_pending counts only
	 * a record already decrypted). */
	pending = SSL_pending(c->ssl) > 0 || SSL_has_pending(c->ssl);
	pthread_mutex_unlock(&c->ssl_lock);
	return pending || poll(&p, 1, 0) > 0;
}

bool
chan_readable_within(struct chan *c, int ms)
{
	struct pollfd p = { .fd = c->fd, .events = POLLIN };

	if (chan_readable(c))
		return true;
	while (poll(&p, 1, ms) < 0 && errno == EINTR)
		;
	return p.revents != 0;
}

int
chan_send_msg(struct chan *c, unsigned type, const ProtobufCMessage *m)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	struct wire_hdr h = { .type = (uint8_t)type, .length = (uint32_t)len };
	uint8_t *buf;
	int r;

	if (len > UINT32_MAX)
		return chan_set_error(c, -EMSGSIZE, "%s channel: %s message too "
		    "large", c->name, wire_type_name(type));
	if ((buf = malloc(len ? len : 1)) == NULL)
		return chan_set_error(c, -ENOMEM, "%s channel: out of memory",
		    c->name);
	protobuf_c_message_pack(m, buf);
	r = chan_send_frame(c, &h, buf);
	free(buf);
	return r;
}

int
chan_recv_hdr(struct chan *c, const struct wire_limits *lim, struct wire_hdr *h)
{
	uint8_t buf[WIRE_HDR_LEN];
	char why[200];
	int r;

	if ((r = chan_read_full(c, buf, sizeof(buf))) < 0)
		return r;
	if (wire_hdr_decode(buf, lim, h, why, sizeof(why)) < 0)
		return chan_set_error(c, -EPROTO, "%s channel: %s", c->name, why);
	return 0;
}

int
chan_recv_msg(struct chan *c, const struct wire_hdr *h, ProtobufCMessage **out)
{
	uint8_t *buf;
	char why[200];
	int r;

	*out = NULL;
	if ((buf = malloc(h->length ? h->length : 1)) == NULL)
		return chan_set_error(c, -ENOMEM, "%s channel: out of memory",
		    c->name);
	r = chan_read_full(c, buf, h->length);
	if (r == 0 && wire_body_decode(h->type, buf, h->length, out, why,
	    sizeof(why)) < 0)
		r = chan_set_error(c, -EPROTO, "%s channel: %s", c->name, why);
	free(buf);
	return r;
}
