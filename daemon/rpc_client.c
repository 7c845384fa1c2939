/* rpc_client.c - the blocking control RPC client (see rpc_client.h):
 * postcopyctl, postcopy-bench and the tests; the daemon never links it. */
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common.pb-c.h"
#include "control.pb-c.h"
#include "pbcheck.h"
#include "rpc_client.h"
#include "tls.h"
#include "util.h"

struct rpc_client {
	int		 fd;
	SSL_CTX		*ctx;
	SSL		*ssl;
	uint32_t	 next_call;
};

static int
rpc_client_connect_unix(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd, r;

	if (str_copy(sun.sun_path, path, sizeof(sun.sun_path)) < 0) {
		str_printf(err, errlen, "socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		r = -errno;
		str_printf(err, errlen, "socket: %s", strerror(errno));
		return r;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		r = -errno;
		str_printf(err, errlen, "cannot connect to %s: %s", path,
		    strerror(errno));
		close(fd);
		return r;
	}
	return fd;
}

static int
rpc_client_connect_tcp(const char *target, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	char host[256], port[8];
	uint16_t p;
	int fd = -1, r, saved = ECONNREFUSED;

	if (parse_hostport(target, host, sizeof(host), &p) < 0 || p == 0) {
		str_printf(err, errlen, "'%s' is not host:port", target);
		return -EINVAL;
	}
	snprintf(port, sizeof(port), "%u", p);
	if ((r = getaddrinfo(host, port, &hints, &res)) != 0) {
		str_printf(err, errlen, "cannot resolve %s: %s", host,
		    gai_strerror(r));
		return -EHOSTUNREACH;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		saved = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		str_printf(err, errlen, "cannot connect to %s: %s", target,
		    strerror(saved));
		return -saved;
	}
	return fd;
}

static void
rpc_client_ssl_err(char *err, size_t errlen, const char *what)
{
	char buf[256] = "";
	unsigned long e = ERR_get_error();

	if (e != 0)
		ERR_error_string_n(e, buf, sizeof(buf));
	str_printf(err, errlen, "%s: %s", what, e != 0 ? buf : "TLS failure");
	ERR_clear_error();
}

static int
rpc_client_tls(struct rpc_client *c, const char *target,
    const char *dir, char *err, size_t errlen)
{
	X509_VERIFY_PARAM *vp;
	char host[256];
	uint16_t port;
	int r;

	if ((r = tls_profile_load(dir, TLS_ROLE_CLIENT, NULL, &c->ctx, err,
	    errlen)) < 0)
		return r;
	if ((c->ssl = SSL_new(c->ctx)) == NULL ||
	    SSL_set_fd(c->ssl, c->fd) != 1) {
		rpc_client_ssl_err(err, errlen, "SSL_new");
		return -ENOMEM;
	}
	vp = SSL_get0_param(c->ssl);
	if (parse_hostport(target, host, sizeof(host), &port) == 0) {
		SSL_set_tlsext_host_name(c->ssl, host);
		X509_VERIFY_PARAM_set1_host(vp, host, 0);
		if (X509_VERIFY_PARAM_set1_ip_asc(vp, host) == 1)
			X509_VERIFY_PARAM_set1_host(vp, NULL, 0);
	}
	if (SSL_connect(c->ssl) != 1) {
		long v = SSL_get_verify_result(c->ssl);

		if (v != X509_V_OK)
			str_printf(err, errlen, "TLS handshake with %s: %s",
			    target, X509_verify_cert_error_string(v));
		else
			rpc_client_ssl_err(err, errlen, "TLS handshake");
		return -ECONNREFUSED;
	}
	return 0;
}

int
rpc_client_connect(const char *target, const char *tls_dir,
    struct rpc_client **out, char *err, size_t errlen)
{
	struct rpc_client *c;
	int r;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return -ENOMEM;
	c->next_call = 1;
	if (tls_dir == NULL)
		c->fd = rpc_client_connect_unix(target, err, errlen);
	else
		c->fd = rpc_client_connect_tcp(target, err, errlen);
	if (c->fd < 0) {
		r = c->fd;
		free(c);
		return r;
	}
	if (tls_dir != NULL &&
	    (r = rpc_client_tls(c, target, tls_dir, err, errlen)) < 0) {
		rpc_client_close(c);
		return r;
	}
	*out = c;
	return 0;
}

void
rpc_client_close(struct rpc_client *c)
{
	if (c == NULL)
		return;
	if (c->ssl != NULL) {
		SSL_shutdown(c->ssl);	/* close_notify; no wait for the peer's */
		SSL_free(c->ssl);
	}
	if (c->ctx != NULL)
		SSL_CTX_free(c->ctx);
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

static int
rpc_client_write(struct rpc_client *c, const uint8_t *buf, size_t n)
{
	while (n > 0) {
		ssize_t w;

		if (c->ssl != NULL) {
			int k = SSL_write(c->ssl, buf, (int)n);

			if (k <= 0)
				return -ECONNRESET;
			w = k;
		} else {
			w = send(c->fd, buf, n, MSG_NOSIGNAL);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				return -errno;
		}
		buf += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads exactly n bytes; deadline in CLOCK_MONOTONIC ns, 0 = none. */
static int
rpc_client_read(struct rpc_client *c, uint8_t *buf, size_t n,
    uint64_t deadline)
{
	while (n > 0) {
		ssize_t r;

		if (c->ssl == NULL || SSL_pending(c->ssl) == 0) {
			struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
			int timeout = -1;

			if (deadline != 0) {
				uint64_t now = now_ns();

				if (now >= deadline)
					return -ETIMEDOUT;
				timeout = (int)((deadline - now) / 1000000) + 1;
			}
			r = poll(&pfd, 1, timeout);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				return -errno;
			if (r == 0)
				return -ETIMEDOUT;
		}
		if (c->ssl != NULL) {
			int k = SSL_read(c->ssl, buf, (int)(n > INT32_MAX ?
			    INT32_MAX : n));

			if (k <= 0) {
				int e = SSL_get_error(c->ssl, k);

				if (e == SSL_ERROR_WANT_READ)
					continue;
				return -ECONNRESET;
			}
			r = k;
		} else {
			r = recv(c->fd, buf, n, 0);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				return -errno;
			if (r == 0)
				return -ECONNRESET;
		}
		buf += r;
		n -= (size_t)r;
	}
	return 0;
}

int
rpc_client_send(struct rpc_client *c, unsigned method,
    const ProtobufCMessage *req, uint32_t *call_id, char *err, size_t errlen)
{
	uint8_t *buf;
	size_t n;
	uint32_t id = c->next_call++;
	int r;

	if (c->next_call == 0)
		c->next_call = 1;
	if ((r = rpc_frame_pack(RPC_REQUEST, 0, id, (uint16_t)method, req,
	    &buf, &n)) < 0) {
		str_printf(err, errlen, "cannot pack the request: %s",
		    strerror(-r));
		return r;
	}
	r = rpc_client_write(c, buf, n);
	free(buf);
	if (r < 0) {
		str_printf(err, errlen, "cannot send the request: %s",
		    strerror(-r));
		return r;
	}
	if (call_id != NULL)
		*call_id = id;
	return 0;
}

/* Field 1 of every reply and event is a pcd.Status. */
static const Pcd__Status *
rpc_answer_status(const ProtobufCMessage *m)
{
	const ProtobufCFieldDescriptor *f;

	if (m->descriptor == &pcd__status__descriptor)
		return (const Pcd__Status *)m;
	f = protobuf_c_message_descriptor_get_field(m->descriptor, 1);
	if (f == NULL || f->type != PROTOBUF_C_TYPE_MESSAGE ||
	    f->descriptor != &pcd__status__descriptor)
		return NULL;
	return *(Pcd__Status *const *)((const char *)m + f->offset);
}

int
rpc_answer_decode(const struct rpc_hdr *h, const uint8_t *p, size_t n,
    struct rpc_answer *a, char *err, size_t errlen)
{
	const ProtobufCMessageDescriptor *desc;
	const ProtobufCMethodDescriptor *m;
	const Pcd__Status *st;

	memset(a, 0, sizeof(*a));
	a->hdr = *h;
	if (h->kind == RPC_ERROR) {
		desc = &pcd__status__descriptor;
	} else if ((h->kind == RPC_REPLY || h->kind == RPC_EVENT) &&
	    (m = rpc_method_get(h->method)) != NULL) {
		desc = m->output;
	} else {
		str_printf(err, errlen, "unexpected frame kind %u method %u",
		    h->kind, h->method);
		return -EPROTO;
	}
	if ((a->msg = pbcheck_unpack(desc, n, p)) == NULL) {
		str_printf(err, errlen, "cannot unpack %s from the daemon",
		    desc->name);
		return -EPROTO;
	}
	st = rpc_answer_status(a->msg);
	a->code = st != NULL ? st->code : STATUS_OK;
	a->message = st != NULL && st->message != NULL ? st->message : "";
	return 0;
}

int
rpc_client_recv(struct rpc_client *c, int timeout_ms, struct rpc_answer *a,
    char *err, size_t errlen)
{
	struct rpc_hdr h;
	uint8_t hdr[RPC_HDR_SIZE], *payload = NULL;
	uint64_t deadline = timeout_ms < 0 ? 0 :
	    now_ns() + (uint64_t)timeout_ms * 1000000;
	size_t n;
	int r;

	memset(a, 0, sizeof(*a));
	if ((r = rpc_client_read(c, hdr, sizeof(hdr), deadline)) < 0) {
		if (r == -ETIMEDOUT)
			str_printf(err, errlen, "no answer from the daemon within "
			    "%d ms", timeout_ms);
		else
			str_printf(err, errlen, "connection to the daemon lost");
		return r;
	}
	if ((r = rpc_hdr_decode(hdr, RPC_MAX_FRAME_LIMIT, &h)) < 0) {
		a->hdr = h;
		str_printf(err, errlen, "malformed frame from the daemon (length "
		    "%u, version %u)", h.len, h.version);
		return r;
	}
	n = rpc_payload_len(&h);
	if (n > 0) {
		if ((payload = malloc(n)) == NULL)
			return -ENOMEM;
		if ((r = rpc_client_read(c, payload, n, deadline)) < 0) {
			free(payload);
			str_printf(err, errlen, "connection lost mid-frame");
			return r;
		}
	}
	r = rpc_answer_decode(&h, payload, n, a, err, errlen);
	free(payload);
	return r;
}

void
rpc_answer_clear(struct rpc_answer *a)
{
	if (a->msg != NULL)
		protobuf_c_message_free_unpacked(a->msg, NULL);
	memset(a, 0, sizeof(*a));
}

int
rpc_client_refusal(struct rpc_client *c, int r, struct rpc_answer *a,
    char *err, size_t errlen)
{
	char why[256];

	/* A daemon that refuses a connection (too many open) says so in an
	 * error frame and closes; the request may meet the closed socket. */
	if (r != -EPIPE && r != -ECONNRESET)
		return r;
	if (rpc_client_recv(c, RPC_REFUSAL_WAIT_MS, a, why, sizeof(why)) < 0)
		return r;
	if (a->hdr.kind == RPC_ERROR && a->hdr.call_id == 0)
		return 0;
	rpc_answer_clear(a);
	return r;
}

int
rpc_client_call(struct rpc_client *c, unsigned method,
    const ProtobufCMessage *req, int timeout_ms, struct rpc_answer *a,
    char *err, size_t errlen)
{
	uint32_t id;
	int r;

	if ((r = rpc_client_send(c, method, req, &id, err, errlen)) < 0)
		return rpc_client_refusal(c, r, a, err, errlen);
	for (;;) {
		if ((r = rpc_client_recv(c, timeout_ms, a, err, errlen)) < 0)
			return r;
		if (a->hdr.call_id == id || a->hdr.call_id == 0)
			return 0;
		rpc_answer_clear(a);	/* an answer to an older call */
	}
}
