/* bench_tls.c - raw TLS 1.3 baselines on loopback.
 *
 * A server thread and the calling thread talk mutual TLS 1.3 over
 * 127.0.0.1 with the same certificates and TLS profile (tls_profile_load,
 * the wire's options) as the daemons:
 *  - a stream of o->bytes in frames of o->frame_hdr header bytes and
 *    o->record payload bytes, written as the daemon's chan_send_frame
 *    writes them (one SSL_write when the frame fits in a 16 KiB record,
 *    else the header and the payload apart), read into a ring buffer larger
 *    than the caches (the ceiling of the bulk channel);
 *  - request/response round trips: o->rtt_request bytes out, o->rtt_response
 *    bytes back (the floor of a remote fault on the urgent channel), on a
 *    quiet connection and again while a third connection carries a stream
 *    (as the bulk channel does while demand pages travel).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "bench.h"
#include "tls.h"
#include "util.h"

#define BENCH_TLS_RING		(64u << 20)	/* per side */
#define BENCH_TLS_WARMUP	50

static unsigned
bench_tls_warmup(const struct bench_tls_opts *o)
{
	return o->rtt_warmup != 0 ? o->rtt_warmup : BENCH_TLS_WARMUP;
}

struct bench_tls_srv {
	const struct bench_tls_opts *o;
	SSL_CTX		*ctx;
	int		 lfd;
	int		 rc;
	double		 rx_cpu_s;	/* the stream's receiver, CPU seconds */
	char		 err[256];
};

static void
bench_tls_err(char *err, size_t errlen, const char *what)
{
	char buf[256];
	unsigned long e = ERR_get_error();

	if (e != 0)
		ERR_error_string_n(e, buf, sizeof(buf));
	else
		snprintf(buf, sizeof(buf), "%s", errno ? strerror(errno) :
		    "connection closed");
	snprintf(err, errlen, "%s: %s", what, buf);
	ERR_clear_error();
}

/* The daemons' wire profile (tls.h), so the baselines measure what the
 * migrations run on; only the suite may be chosen (--cipher). */
static SSL_CTX *
bench_tls_ctx(const struct bench_tls_opts *o, bool server, char *err,
    size_t errlen)
{
	const struct tls_profile_opts wire = { .suites = o->ciphersuite,
	    .stream = true };
	char why[512];
	SSL_CTX *ctx;

	if (tls_profile_load(o->tls_dir, server ? TLS_ROLE_SERVER :
	    TLS_ROLE_CLIENT, &wire, &ctx, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "TLS baseline: %s", why);
		return NULL;
	}
	return ctx;
}

static int
bench_tls_read(SSL *ssl, void *buf, size_t len)
{
	size_t got;

	while (len > 0) {
		if (!SSL_read_ex(ssl, buf, len, &got))
			return -EIO;
		buf = (char *)buf + got;
		len -= got;
	}
	return 0;
}

static int
bench_tls_write(SSL *ssl, const void *buf, size_t len)
{
	size_t put;

	while (len > 0) {
		if (!SSL_write_ex(ssl, buf, len, &put))
			return -EIO;
		buf = (const char *)buf + put;
		len -= put;
	}
	return 0;
}

static void
bench_tls_nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static SSL *
bench_tls_accept(struct bench_tls_srv *s)
{
	SSL *ssl;
	int fd;

	fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0) {
		snprintf(s->err, sizeof(s->err), "accept: %s", strerror(errno));
		return NULL;
	}
	bench_tls_nodelay(fd);
	ssl = SSL_new(s->ctx);
	if (ssl == NULL || !SSL_set_fd(ssl, fd) || SSL_accept(ssl) != 1) {
		bench_tls_err(s->err, sizeof(s->err), "server handshake");
		SSL_free(ssl);
		close(fd);
		return NULL;
	}
	return ssl;
}

static void
bench_tls_drop(SSL *ssl)
{
	int fd;

	if (ssl == NULL)
		return;
	fd = SSL_get_fd(ssl);
	SSL_shutdown(ssl);
	SSL_free(ssl);
	if (fd >= 0)
		close(fd);
}

static int
bench_tls_serve_rtt(struct bench_tls_srv *s, SSL *ssl, char *req, char *resp)
{
	const struct bench_tls_opts *o = s->o;
	unsigned i;

	for (i = 0; i < o->rtt_rounds + bench_tls_warmup(o); i++) {
		if (bench_tls_read(ssl, req, o->rtt_request) != 0 ||
		    bench_tls_write(ssl, resp, o->rtt_response) != 0) {
			bench_tls_err(s->err, sizeof(s->err), "round trip");
			return -EIO;
		}
	}
	return 0;
}

/* A background stream while round trips are timed: the writer sends
 * frames until told to stop, the reader reads until the end. */
struct bench_tls_bg {
	SSL		*ssl;
	const char	*buf;
	size_t		 len;
	atomic_bool	 stop;
	uint64_t	 bytes;
};

static void *
bench_tls_drain(void *arg)
{
	struct bench_tls_bg *bg = arg;
	char *buf = malloc(65536);
	size_t got;

	while (buf != NULL && SSL_read_ex(bg->ssl, buf, 65536, &got))
		bg->bytes += got;
	ERR_clear_error();
	free(buf);
	return NULL;
}

static void *
bench_tls_flood(void *arg)
{
	struct bench_tls_bg *bg = arg;

	while (!atomic_load(&bg->stop) &&
	    bench_tls_write(bg->ssl, bg->buf, bg->len) == 0)
		bg->bytes += bg->len;
	ERR_clear_error();
	return NULL;
}

static void *
bench_tls_server(void *arg)
{
	struct bench_tls_srv *s = arg;
	const struct bench_tls_opts *o = s->o;
	uint64_t left = o->bytes, off = 0;
	char *ring = NULL, *req = NULL, *resp = NULL, ack = 1;
	struct bench_tls_bg bg = { 0 };
	SSL *ssl = NULL;
	pthread_t th;
	bool started = false;
	size_t got;

	s->rc = -EIO;
	ring = malloc(BENCH_TLS_RING);
	req = malloc(o->rtt_request);
	resp = malloc(o->rtt_response);
	if (ring == NULL || req == NULL || resp == NULL) {
		snprintf(s->err, sizeof(s->err), "out of memory");
		s->rc = -ENOMEM;
		goto out;
	}
	memset(resp, 0x5a, o->rtt_response);

	/* The stream: read straight into the ring, as the destination reads
	 * page bytes straight into guest memory. */
	if ((ssl = bench_tls_accept(s)) == NULL)
		goto out;
	s->rx_cpu_s = bench_cpu_thread_now();
	while (left > 0) {
		size_t want = BENCH_TLS_RING - off;

		if (want > left)
			want = left;
		if (want > 65536)
			want = 65536;
		if (!SSL_read_ex(ssl, ring + off, want, &got)) {
			bench_tls_err(s->err, sizeof(s->err), "stream read");
			goto out;
		}
		left -= got;
		off = (off + got) % BENCH_TLS_RING;
	}
	s->rx_cpu_s = bench_cpu_thread_now() - s->rx_cpu_s;
	if (bench_tls_write(ssl, &ack, 1) != 0) {
		bench_tls_err(s->err, sizeof(s->err), "stream ack");
		goto out;
	}
	bench_tls_drop(ssl);

	/* Round trips on a quiet connection... */
	if ((ssl = bench_tls_accept(s)) == NULL ||
	    bench_tls_serve_rtt(s, ssl, req, resp) != 0)
		goto out;
	bench_tls_drop(ssl);
	ssl = NULL;

	/* ... and while another connection carries a stream. */
	if ((bg.ssl = bench_tls_accept(s)) == NULL)
		goto out;
	if (pthread_create(&th, NULL, bench_tls_drain, &bg) != 0) {
		snprintf(s->err, sizeof(s->err), "pthread_create failed");
		goto out;
	}
	started = true;
	if ((ssl = bench_tls_accept(s)) == NULL ||
	    bench_tls_serve_rtt(s, ssl, req, resp) != 0)
		goto out;
	s->rc = 0;
out:
	bench_tls_drop(ssl);
	if (started)
		pthread_join(th, NULL);
	bench_tls_drop(bg.ssl);
	free(ring);
	free(req);
	free(resp);
	return NULL;
}

static SSL *
bench_tls_connect(SSL_CTX *ctx, const struct sockaddr_in *sin, char *err,
    size_t errlen)
{
	SSL *ssl;
	int fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (const struct sockaddr *)sin,
	    sizeof(*sin)) != 0) {
		snprintf(err, errlen, "connect to 127.0.0.1:%u: %s",
		    ntohs(sin->sin_port), strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	bench_tls_nodelay(fd);
	ssl = SSL_new(ctx);
	if (ssl == NULL || !SSL_set_fd(ssl, fd) ||
	    !SSL_set1_host(ssl, "localhost") || SSL_connect(ssl) != 1) {
		bench_tls_err(err, errlen, "client handshake");
		SSL_free(ssl);
		close(fd);
		return NULL;
	}
	return ssl;
}

static int
bench_tls_rounds(const struct bench_tls_opts *o, SSL *ssl, char *req,
    char *resp, double *rtt, char *err, size_t errlen)
{
	uint64_t t0;
	unsigned i;

	for (i = 0; i < o->rtt_rounds + bench_tls_warmup(o); i++) {
		t0 = now_ns();
		if (bench_tls_write(ssl, req, o->rtt_request) != 0 ||
		    bench_tls_read(ssl, resp, o->rtt_response) != 0) {
			bench_tls_err(err, errlen, "TLS baseline: round trip");
			return -EIO;
		}
		if (i >= bench_tls_warmup(o))
			rtt[i - bench_tls_warmup(o)] = (double)(now_ns() - t0) /
			    1e3;
	}
	return 0;
}

int
bench_tls_run(const struct bench_tls_opts *o, struct bench_tls_result *r,
    char *err, size_t errlen)
{
	struct bench_tls_srv srv = { .o = o, .lfd = -1 };
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t slen = sizeof(sin);
	SSL_CTX *cctx = NULL;
	SSL *ssl = NULL;
	char *ring = NULL, *req = NULL, *resp = NULL, ack, hdr[256];
	double *rtt = NULL;
	uint64_t left, off = 0, t0, t1;
	struct bench_tls_bg bg = { 0 };
	pthread_t th, bth;
	bool started = false, bstarted = false;
	int rc = -EIO;

	memset(r, 0, sizeof(*r));
	if (o->record == 0 || o->rtt_request == 0 || o->rtt_response == 0 ||
	    o->rtt_rounds == 0 || o->bytes == 0 ||
	    o->frame_hdr > sizeof(hdr) || o->record + o->frame_hdr >
	    BENCH_TLS_RING) {
		snprintf(err, errlen, "TLS baseline: sizes must be positive");
		return -EINVAL;
	}
	ring = malloc(BENCH_TLS_RING);
	req = calloc(1, o->rtt_request);
	resp = malloc(o->rtt_response);
	rtt = calloc(o->rtt_rounds, sizeof(*rtt));
	if (ring == NULL || req == NULL || resp == NULL || rtt == NULL) {
		snprintf(err, errlen, "TLS baseline: out of memory");
		rc = -ENOMEM;
		goto out;
	}
	/* Incompressible-looking content; TLS 1.3 never compresses anyway. */
	for (size_t k = 0; k < BENCH_TLS_RING / 8; k++)
		((uint64_t *)ring)[k] = (k + 1) * 0x9e3779b97f4a7c15ull;

	if ((srv.ctx = bench_tls_ctx(o, true, err, errlen)) == NULL ||
	    (cctx = bench_tls_ctx(o, false, err, errlen)) == NULL)
		goto out;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	srv.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (srv.lfd < 0 || bind(srv.lfd, (struct sockaddr *)&sin,
	    sizeof(sin)) != 0 || listen(srv.lfd, 4) != 0 ||
	    getsockname(srv.lfd, (struct sockaddr *)&sin, &slen) != 0) {
		snprintf(err, errlen, "TLS baseline: listen on 127.0.0.1: %s",
		    strerror(errno));
		rc = -errno;
		goto out;
	}
	if ((rc = pthread_create(&th, NULL, bench_tls_server, &srv)) != 0) {
		snprintf(err, errlen, "TLS baseline: pthread_create: %s",
		    strerror(rc));
		rc = -rc;
		goto out;
	}
	started = true;
	rc = -EIO;

	/* Stream. */
	if ((ssl = bench_tls_connect(cctx, &sin, err, errlen)) == NULL)
		goto out;
	snprintf(r->cipher, sizeof(r->cipher), "%s",
	    SSL_CIPHER_get_name(SSL_get_current_cipher(ssl)));
	t0 = now_ns();
	r->stream_tx_cpu_s = bench_cpu_thread_now();
	for (left = o->bytes; left > 0; ) {
		size_t n = o->record + o->frame_hdr;

		if (n > left)
			n = left;
		if (off + n > BENCH_TLS_RING)
			off = 0;
		if (n > 16384 && n > o->frame_hdr) {
			/* Header and payload apart, as chan_send_frame. */
			memcpy(hdr, ring + off, o->frame_hdr);
			rc = bench_tls_write(ssl, hdr, o->frame_hdr);
			if (rc == 0)
				rc = bench_tls_write(ssl, ring + off + o->frame_hdr,
				    n - o->frame_hdr);
		} else
			rc = bench_tls_write(ssl, ring + off, n);
		if (rc != 0) {
			rc = -EIO;
			bench_tls_err(err, errlen, "TLS baseline: stream write");
			goto out;
		}
		off += n;
		left -= n;
	}
	rc = -EIO;
	if (bench_tls_read(ssl, &ack, 1) != 0) {
		bench_tls_err(err, errlen, "TLS baseline: stream ack");
		goto out;
	}
	t1 = now_ns();
	r->stream_tx_cpu_s = bench_cpu_thread_now() - r->stream_tx_cpu_s;
	r->stream_s = (double)(t1 - t0) / 1e9;
	r->stream_gbps = (double)o->bytes * 8.0 / (double)(t1 - t0);
	bench_tls_drop(ssl);

	/* Round trips on a quiet connection. */
	if ((ssl = bench_tls_connect(cctx, &sin, err, errlen)) == NULL ||
	    bench_tls_rounds(o, ssl, req, resp, rtt, err, errlen) != 0)
		goto out;
	r->rtt_p99_us = bench_quantile(rtt, o->rtt_rounds, 0.99);
	r->rtt_p50_us = bench_quantile(rtt, o->rtt_rounds, 0.50);
	bench_tls_drop(ssl);
	ssl = NULL;

	/* The same while a stream runs on another connection, as demand
	 * pages travel while the bulk channel is busy. */
	if ((bg.ssl = bench_tls_connect(cctx, &sin, err, errlen)) == NULL)
		goto out;
	bg.buf = ring;
	bg.len = o->record;
	if (pthread_create(&bth, NULL, bench_tls_flood, &bg) != 0) {
		snprintf(err, errlen, "TLS baseline: pthread_create failed");
		goto out;
	}
	bstarted = true;
	if ((ssl = bench_tls_connect(cctx, &sin, err, errlen)) == NULL ||
	    bench_tls_rounds(o, ssl, req, resp, rtt, err, errlen) != 0)
		goto out;
	r->rtt_loaded_p99_us = bench_quantile(rtt, o->rtt_rounds, 0.99);
	r->rtt_loaded_p50_us = bench_quantile(rtt, o->rtt_rounds, 0.50);
	/* Still under the stream: whatever else must see the same load. */
	if (o->alongside != NULL)
		r->alongside_rc = o->alongside(o->alongside_arg);
	rc = 0;
out:
	bench_tls_drop(ssl);
	if (bstarted) {
		atomic_store(&bg.stop, true);
		pthread_join(bth, NULL);
	}
	bench_tls_drop(bg.ssl);
	if (started) {
		/* Unblocks an accept() that will never see its client. */
		if (rc != 0)
			shutdown(srv.lfd, SHUT_RDWR);
		pthread_join(th, NULL);
		if (rc == 0 && srv.rc != 0) {
			snprintf(err, errlen, "TLS baseline server: %s", srv.err);
			rc = srv.rc;
		}
		r->stream_rx_cpu_s = srv.rx_cpu_s;
	}
	if (srv.lfd >= 0)
		close(srv.lfd);
	SSL_CTX_free(srv.ctx);
	SSL_CTX_free(cctx);
	free(ring);
	free(req);
	free(resp);
	free(rtt);
	return rc;
}
