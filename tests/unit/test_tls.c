/* test_tls.c - unit tests of the one TLS profile (tls_profile_load) and
 * the wire handshake, with credentials made at test time by
 * postcopy-gencerts (path in $POSTCOPYGENCERTS; skipped without it).
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/ssl.h>

#include "tls.h"

static char certs[PATH_MAX];

static void
test_tls_settings(SSL_CTX *ctx, bool stream, bool eof_ok)
{
	assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_3_VERSION);
	assert_int_equal(SSL_CTX_get_max_proto_version(ctx), TLS1_3_VERSION);
	assert_int_equal(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_PEER |
	    SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
	assert_int_equal(SSL_CTX_get_num_tickets(ctx), 0);
	assert_int_equal(SSL_CTX_get_session_cache_mode(ctx),
	    SSL_SESS_CACHE_OFF);
	assert_int_equal(SSL_CTX_get_read_ahead(ctx), stream ? 1 : 0);
	assert_int_equal((SSL_CTX_get_options(ctx) &
	    SSL_OP_IGNORE_UNEXPECTED_EOF) != 0, eof_ok);
}

/* Every user gets the same security settings; only the I/O options differ. */
static void
test_tls_profile_same_everywhere(void **state)
{
	const struct tls_profile_opts stream = { .stream = true };
	const struct tls_profile_opts eof = { .eof_ok = true };
	char err[512] = "";
	SSL_CTX *ctx;

	for (int role = TLS_ROLE_SERVER; role <= TLS_ROLE_CLIENT; role++) {
		assert_int_equal(tls_profile_load(certs, role, NULL, &ctx, err,
		    sizeof(err)), 0);
		test_tls_settings(ctx, false, false);
		SSL_CTX_free(ctx);
		assert_int_equal(tls_profile_load(certs, role, &stream, &ctx,
		    err, sizeof(err)), 0);
		test_tls_settings(ctx, true, false);
		SSL_CTX_free(ctx);
		assert_int_equal(tls_profile_load(certs, role, &eof, &ctx, err,
		    sizeof(err)), 0);
		test_tls_settings(ctx, false, true);
		SSL_CTX_free(ctx);
	}
}

static void
test_tls_profile_errors(void **state)
{
	const struct tls_profile_opts bad = { .suites = "TLS_NO_SUCH_SUITE" };
	char err[512] = "", dir[PATH_MAX + 16], cmd[8 * PATH_MAX];
	SSL_CTX *ctx = (SSL_CTX *)1;

	assert_int_equal(tls_profile_load("", TLS_ROLE_SERVER, NULL, &ctx, err,
	    sizeof(err)), -EINVAL);
	assert_null(ctx);
	assert_non_null(strstr(err, "no TLS credentials directory"));

	snprintf(dir, sizeof(dir), "%s/nowhere", certs);
	assert_int_equal(tls_profile_load(dir, TLS_ROLE_CLIENT, NULL, &ctx, err,
	    sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "nowhere/ca-cert.pem"));

	assert_int_equal(tls_profile_load(certs, TLS_ROLE_CLIENT, &bad, &ctx,
	    err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "TLS_NO_SUCH_SUITE"));

	/* A key from the other CA's set does not match our certificate. */
	snprintf(dir, sizeof(dir), "%s/mixed", certs);
	snprintf(cmd, sizeof(cmd), "mkdir -p %s && cp %s/ca-cert.pem "
	    "%s/server-cert.pem %s && cp %s/other-ca/server-key.pem %s",
	    dir, certs, certs, dir, certs, dir);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(tls_profile_load(dir, TLS_ROLE_SERVER, NULL, &ctx, err,
	    sizeof(err)), -EINVAL);
	/* OpenSSL checks the pair when the key is loaded. */
	assert_non_null(strstr(err, "mixed/server-key.pem"));
	assert_true(strstr(err, "mismatch") != NULL ||
	    strstr(err, "does not match") != NULL);
}

struct test_tls_peer {
	const char	*dir;
	int		 fd;
	int		 rc;
	SSL		*ssl;
	char		 err[480];
};

static void *
test_tls_client(void *arg)
{
	struct test_tls_peer *p = arg;
	struct tls_ctx *c;

	p->rc = tls_ctx_new(p->dir, false, &c, p->err, sizeof(p->err));
	if (p->rc == 0) {
		p->rc = tls_handshake(c, p->fd, -1, "localhost", 5000, &p->ssl,
		    p->err, sizeof(p->err));
		tls_ctx_free(c);	/* the SSL keeps its reference */
	}
	if (p->rc < 0)
		shutdown(p->fd, SHUT_RDWR);
	return NULL;
}

/* The wire's handshake over a socket pair: dir is the client's set. */
static int
test_tls_pair(const char *dir, SSL **srv, SSL **cli, char *err, size_t errlen)
{
	struct test_tls_peer p = { .dir = dir };
	struct tls_ctx *s;
	pthread_t th;
	int sv[2], r;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(tls_ctx_new(certs, true, &s, err, errlen), 0);
	p.fd = sv[1];
	assert_int_equal(pthread_create(&th, NULL, test_tls_client, &p), 0);
	r = tls_handshake(s, sv[0], -1, NULL, 5000, srv, err, errlen);
	pthread_join(th, NULL);
	tls_ctx_free(s);
	*cli = p.ssl;
	if (r == 0 && p.rc < 0) {
		snprintf(err, errlen, "client: %s", p.err);
		r = p.rc;
	}
	return r;
}

static void
test_tls_free_pair(SSL *srv, SSL *cli)
{
	int fds[2] = { srv ? SSL_get_fd(srv) : -1, cli ? SSL_get_fd(cli) : -1 };

	SSL_free(srv);
	SSL_free(cli);
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

static void
test_tls_handshake(void **state)
{
	SSL *srv = NULL, *cli = NULL;
	char err[512] = "";

	assert_int_equal(test_tls_pair(certs, &srv, &cli, err, sizeof(err)), 0);
	assert_int_equal(SSL_version(srv), TLS1_3_VERSION);
	assert_string_equal(SSL_CIPHER_get_name(SSL_get_current_cipher(cli)),
	    "TLS_AES_256_GCM_SHA384");
	assert_non_null(SSL_get0_peer_certificate(srv));	/* mutual */
	assert_int_equal(SSL_session_reused(cli), 0);
	test_tls_free_pair(srv, cli);
}

static void
test_tls_foreign_ca_refused(void **state)
{
	SSL *srv = NULL, *cli = NULL;
	char err[512] = "", dir[PATH_MAX + 16];
	int r;

	snprintf(dir, sizeof(dir), "%s/other-ca", certs);
	r = test_tls_pair(dir, &srv, &cli, err, sizeof(err));
	assert_int_equal(r, -EPROTO);
	assert_non_null(strstr(err, "TLS handshake failed"));
	test_tls_free_pair(srv, cli);
}

static int
test_tls_setup(void **state)
{
	const char *gen = getenv("POSTCOPYGENCERTS");
	char cmd[2 * PATH_MAX];

	snprintf(certs, sizeof(certs), "/tmp/test_tls.XXXXXX");
	if (gen == NULL || mkdtemp(certs) == NULL)
		return -1;
	snprintf(cmd, sizeof(cmd), "%s %s/set >/dev/null", gen, certs);
	if (system(cmd) != 0)
		return -1;
	strncat(certs, "/set", sizeof(certs) - strlen(certs) - 1);
	return 0;
}

static int
test_tls_teardown(void **state)
{
	char cmd[PATH_MAX + 16];

	*strrchr(certs, '/') = '\0';
	snprintf(cmd, sizeof(cmd), "rm -rf %s", certs);
	return system(cmd) == 0 ? 0 : -1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tls_profile_same_everywhere),
		cmocka_unit_test(test_tls_profile_errors),
		cmocka_unit_test(test_tls_handshake),
		cmocka_unit_test(test_tls_foreign_ca_refused),
	};

	if (getenv("POSTCOPYGENCERTS") == NULL) {
		fprintf(stderr, "skipped: POSTCOPYGENCERTS (the path of "
		    "postcopy-gencerts) is not set\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, test_tls_setup, test_tls_teardown);
}
