/* tls.c - see tls.h. */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "util.h"

struct tls_ctx {
	SSL_CTX	*ctx;
	bool	 server;
};

void
tls_errors(char *buf, size_t len)
{
	unsigned long e;
	size_t n = strlen(buf);

	while ((e = ERR_get_error()) != 0) {
		char one[256];

		ERR_error_string_n(e, one, sizeof(one));
		/* Keep the reason only: "error:0A000086:SSL routines::certificate verify failed" */
		const char *r = strrchr(one, ':');
		r = r != NULL ? r + 1 : one;
		if (n + 3 + strlen(r) >= len)
			continue;
		n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? "; " : "", r);
	}
}

static int
tls_load(SSL_CTX *ctx, const char *dir, const char *file, int kind,
    char *err, size_t errlen)
{
	char path[PATH_MAX];
	int ok;

	if (snprintf(path, sizeof(path), "%s/%s", dir, file) >= (int)sizeof(path)) {
		snprintf(err, errlen, "TLS credentials path too long: %s/%s", dir, file);
		return -ENAMETOOLONG;
	}
	if (access(path, R_OK) != 0) {
		int e = errno;
		snprintf(err, errlen, "cannot read TLS credential %s: %s", path,
		    strerror(e));
		return -e;
	}
	switch (kind) {
	case 0:
		ok = SSL_CTX_load_verify_locations(ctx, path, NULL);
		break;
	case 1:
		ok = SSL_CTX_use_certificate_chain_file(ctx, path);
		break;
	default:
		ok = SSL_CTX_use_PrivateKey_file(ctx, path, SSL_FILETYPE_PEM);
		break;
	}
	if (ok != 1) {
		char why[256] = "";
		tls_errors(why, sizeof(why));
		snprintf(err, errlen, "cannot load TLS credential %s: %s", path, why);
		return -EINVAL;
	}
	return 0;
}

static void
tls_profile_settings(SSL_CTX *ctx, const struct tls_profile_opts *o)
{
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER |
	    SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	/* No session tickets: nothing arrives after the handshake that a
	 * writer thread would have to process, and no resumption. */
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (o->stream) {
		SSL_CTX_set_read_ahead(ctx, 1);
		SSL_CTX_set_default_read_buffer_len(ctx, 64 * 1024);
	}
	if (o->eof_ok)
		SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
}

static int
tls_profile_creds(SSL_CTX *ctx, const char *dir, enum tls_role role,
    char *err, size_t errlen)
{
	const char *who = role == TLS_ROLE_SERVER ? "server" : "client";
	char file[64];
	int r;

	if ((r = tls_load(ctx, dir, "ca-cert.pem", 0, err, errlen)) < 0)
		return r;
	snprintf(file, sizeof(file), "%s-cert.pem", who);
	if ((r = tls_load(ctx, dir, file, 1, err, errlen)) < 0)
		return r;
	snprintf(file, sizeof(file), "%s-key.pem", who);
	if ((r = tls_load(ctx, dir, file, 2, err, errlen)) < 0)
		return r;
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "%s/%s-key.pem does not match %s-cert.pem",
		    dir, who, who);
		return -EINVAL;
	}
	return 0;
}

int
tls_profile_load(const char *dir, enum tls_role role,
    const struct tls_profile_opts *o, SSL_CTX **out, char *err,
    size_t errlen)
{
	static const struct tls_profile_opts defaults;
	const char *suites;
	SSL_CTX *ctx;
	int r;

	*out = NULL;
	if (o == NULL)
		o = &defaults;
	suites = o->suites != NULL ? o->suites : TLS_PROFILE_SUITES;
	if (dir == NULL || *dir == '\0') {
		snprintf(err, errlen, "no TLS credentials directory given "
		    "(postcopyd has no plaintext mode)");
		return -EINVAL;
	}
	ctx = SSL_CTX_new(role == TLS_ROLE_SERVER ? TLS_server_method() :
	    TLS_client_method());
	if (ctx == NULL) {
		snprintf(err, errlen, "cannot create a TLS context");
		ERR_clear_error();
		return -ENOMEM;
	}
	tls_profile_settings(ctx, o);
	if (SSL_CTX_set_ciphersuites(ctx, suites) != 1) {
		snprintf(err, errlen, "'%s' names no TLS 1.3 cipher suite "
		    "OpenSSL knows", suites);
		r = -EINVAL;
		goto fail;
	}
	if ((r = tls_profile_creds(ctx, dir, role, err, errlen)) < 0)
		goto fail;
	*out = ctx;
	return 0;
fail:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return r;
}

int
tls_ctx_new(const char *dir, bool server, struct tls_ctx **out,
    char *err, size_t errlen)
{
	static const struct tls_profile_opts wire = { .stream = true };
	struct tls_ctx *c;
	int r;

	*out = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return -ENOMEM;
	c->server = server;
	r = tls_profile_load(dir, server ? TLS_ROLE_SERVER : TLS_ROLE_CLIENT,
	    &wire, &c->ctx, err, errlen);
	if (r < 0) {
		free(c);
		return r;
	}
	*out = c;
	return 0;
}

void
tls_ctx_free(struct tls_ctx *c)
{
	if (c == NULL)
		return;
	SSL_CTX_free(c->ctx);
	free(c);
}

/* The name the peer's certificate must carry: an IP address or a DNS
 * name (no partial wildcards); a client also sends it as SNI. */
static int
tls_expect_peer(const struct tls_ctx *c, SSL *ssl, const char *peer_name)
{
	unsigned char ip[16];
	X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);

	if (inet_pton(AF_INET, peer_name, ip) == 1 ||
	    inet_pton(AF_INET6, peer_name, ip) == 1)
		return X509_VERIFY_PARAM_set1_ip_asc(vp, peer_name) == 1 ? 0 : -1;
	X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (X509_VERIFY_PARAM_set1_host(vp, peer_name, 0) != 1)
		return -1;
	if (!c->server)
		SSL_set_tlsext_host_name(ssl, peer_name);
	return 0;
}

/* Why a handshake failed, in the words an operator needs: a rejected
 * certificate, a peer that does not speak TLS 1.3, no client certificate. */
static void
tls_explain_failure(const struct tls_ctx *c, SSL *ssl, int e, char *err,
    size_t errlen)
{
	long v = SSL_get_verify_result(ssl);
	char why[384] = "";

	/* TLS 1.3: a client's certificate leaves with its Finished, when
	 * SSL_connect is done; a close while it runs came before the peer
	 * saw a certificate of ours (a refusal of it arrives later, as an
	 * alert on the first read: session.c names it). */
	if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
		snprintf(why, sizeof(why), "connection %s by peer during the "
		    "handshake", errno == ECONNRESET ? "reset" : "closed");
	else
		tls_errors(why, sizeof(why));
	if (!c->server && (strstr(why, "by peer during the handshake") ||
	    strstr(why, "unexpected eof")))
		snprintf(why + strlen(why), sizeof(why) - strlen(why), "%s, "
		    "before it saw our certificate (is a postcopyd migration "
		    "listener there?)", strstr(why, "unexpected eof") ?
		    " (closed by peer during the handshake)" : "");
	if (v != X509_V_OK)
		snprintf(err, errlen, "TLS handshake failed: peer certificate "
		    "rejected: %s (%s)", X509_verify_cert_error_string(v), why);
	else if (strstr(why, "wrong version number") ||
	    strstr(why, "http request") ||
	    strstr(why, "packet length too long") ||
	    strstr(why, "record layer failure"))
		snprintf(err, errlen, "TLS handshake failed: peer does not "
		    "speak TLS 1.3 (plaintext?): %s", why);
	else if (strstr(why, "peer did not return a certificate"))
		snprintf(err, errlen, "TLS handshake failed: peer presented no "
		    "certificate (mutual TLS is required): %s", why);
	else
		snprintf(err, errlen, "TLS handshake failed: %s",
		    why[0] ? why : "unknown error");
}

int
tls_handshake_start(struct tls_ctx *c, int fd, const char *peer_name,
    SSL **out, char *err, size_t errlen)
{
	SSL *ssl;
	int r, fl;

	*out = NULL;
	ERR_clear_error();
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		r = -errno;
		snprintf(err, errlen, "fcntl: %s", strerror(-r));
		return r;
	}
	if ((ssl = SSL_new(c->ctx)) == NULL || SSL_set_fd(ssl, fd) != 1) {
		snprintf(err, errlen, "cannot create a TLS session");
		SSL_free(ssl);
		return -ENOMEM;
	}
	if (peer_name != NULL && *peer_name != '\0' &&
	    tls_expect_peer(c, ssl, peer_name) != 0) {
		snprintf(err, errlen, "bad expected peer name '%s'", peer_name);
		SSL_free(ssl);
		return -EINVAL;
	}
	*out = ssl;
	return 0;
}

int
tls_handshake_step(struct tls_ctx *c, SSL *ssl, short *events, char *err,
    size_t errlen)
{
	int r, e;

	ERR_clear_error();
	r = c->server ? SSL_accept(ssl) : SSL_connect(ssl);
	if (r == 1)
		return 1;
	e = SSL_get_error(ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		*events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
		return 0;
	}
	tls_explain_failure(c, ssl, e, err, errlen);
	ERR_clear_error();
	return -EPROTO;
}

int
tls_handshake(struct tls_ctx *c, int fd, int stopfd, const char *peer_name,
    int timeout_ms, SSL **out, char *err, size_t errlen)
{
	SSL *ssl;
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull;
	int r;

	if ((r = tls_handshake_start(c, fd, peer_name, &ssl, err, errlen)) < 0)
		return r;
	for (;;) {
		struct pollfd p[2] = { { .fd = fd }, { .fd = stopfd, .events = POLLIN } };
		uint64_t now;

		if ((r = tls_handshake_step(c, ssl, &p[0].events, err,
		    errlen)) == 1)
			break;
		if (r < 0) {
			SSL_free(ssl);
			return r;
		}
		now = now_ns();
		if (now >= deadline) {
			snprintf(err, errlen, "TLS handshake timed out after %d ms",
			    timeout_ms);
			SSL_free(ssl);
			return -ETIMEDOUT;
		}
		r = poll(p, stopfd >= 0 ? 2 : 1,
		    (int)((deadline - now) / 1000000ull) + 1);
		if (r < 0 && errno != EINTR) {
			r = -errno;
			snprintf(err, errlen, "poll: %s", strerror(-r));
			SSL_free(ssl);
			return r;
		}
		if (stopfd >= 0 && (p[1].revents & POLLIN)) {
			snprintf(err, errlen, "cancelled");
			SSL_free(ssl);
			return -ECANCELED;
		}
	}
	*out = ssl;
	return 0;
}
