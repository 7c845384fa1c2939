/* pcd-wirepeer - a hostile (or just wrong) peer for postcopyd's wire
 * protocol, used by the data-path tests. It connects to a destination like a
 * source daemon would and breaks one rule; it exits 0 when the destination
 * refused it the way the case expects and prints what the destination said.
 *
 *   pcd-wirepeer --dest H:P --id ID --size BYTES --case CASE
 *                [--ca F --cert F --key F | --no-cert] [--timeout S]
 *
 * Cases:
 *   plaintext     speak the protocol without TLS
 *   tls-refused   TLS with the given credentials; expect the handshake (or
 *                 the first read) to fail (other CA, no certificate)
 *   bad-version   Hello with protocol version 99: expect a Welcome refusal
 *   bad-size      Hello with a guest size one page larger: expect refusal
 *   bad-index     both channels, then a PAGES frame beyond the guest
 *   bad-length    both channels, then a PAGES frame whose length does not
 *                 match its page count
 *   bad-type      both channels, then a frame of unknown type
 *   bad-digest    both channels, every page as zero runs, then digests
 *                 with page 5's wrong: expect Complete{ok=false} naming it
 *   bad-bulk-count  urgent Hello announcing 17 bulk channels (over
 *                 WIRE_BULK_CHANNELS_MAX): expect a Welcome refusal
 *   bad-bulk-index  urgent Hello with 2 bulk channels (accepted), then a
 *                 bulk Hello naming bulk channel 2 of 2: expect refusal
 *   bulk-count-differs  urgent Hello with 2 bulk channels (accepted), then
 *                 a bulk Hello announcing 3: expect refusal
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <xxhash.h>

#include "util.h"
#include "wire.h"

static const char *o_dest, *o_id = "m", *o_case, *o_ca, *o_cert, *o_key;
static uint64_t o_size;
/* Hello.bulk_channels and bulk_index of the next hello(). */
static uint32_t g_bulk_n, g_bulk_i;
static int o_timeout = 10;
static bool o_nocert;

/* Everything open, freed before any exit (the tool runs under ASan too). */
static SSL *g_ssl[2];
static SSL_CTX *g_ctx[2];
static int g_n;

static void
peer_cleanup(void)
{
	for (int i = 0; i < g_n; i++) {
		SSL_free(g_ssl[i]);
		SSL_CTX_free(g_ctx[i]);
	}
	g_n = 0;
}

static _Noreturn void __attribute__((format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("pcd-wirepeer: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	peer_cleanup();
	exit(1);
}

static void __attribute__((format(printf, 1, 2)))
ok(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("pcd-wirepeer: refused as expected: ", stdout);
	vfprintf(stdout, fmt, ap);
	fputc('\n', stdout);
	va_end(ap);
	peer_cleanup();
	exit(0);
}

static int
tcp_connect(void)
{
	char host[256], ps[8];
	uint16_t port;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
	struct timeval tv = { o_timeout, 0 };
	int fd;

	if (parse_hostport(o_dest, host, sizeof(host), &port) < 0)
		die("bad --dest %s", o_dest);
	snprintf(ps, sizeof(ps), "%u", port);
	if (getaddrinfo(host, ps, &hints, &res) != 0)
		die("cannot resolve %s", host);
	fd = socket(res->ai_family, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) < 0)
		die("connect %s: %s", o_dest, strerror(errno));
	freeaddrinfo(res);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

static void
ssl_why(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();

	if (e == 0)
		snprintf(buf, len, "connection closed (%s)", strerror(errno));
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
}

static SSL *
tls_connect(int fd, bool expect_fail)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl;
	char why[256];

	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (o_ca == NULL || SSL_CTX_load_verify_locations(ctx, o_ca, NULL) != 1)
		die("--ca: cannot load %s", o_ca ? o_ca : "(none)");
	if (!o_nocert &&
	    (SSL_CTX_use_certificate_chain_file(ctx, o_cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, o_key, SSL_FILETYPE_PEM) != 1))
		die("cannot load --cert/--key");
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	g_ctx[g_n] = ctx;
	g_ssl[g_n++] = ssl;
	if (SSL_connect(ssl) != 1) {
		ssl_why(why, sizeof(why));
		if (expect_fail)
			ok("TLS handshake failed: %s", why);
		die("TLS handshake failed: %s", why);
	}
	return ssl;
}

static void
ssl_write(SSL *ssl, const void *buf, size_t len)
{
	char why[256];

	if (len == 0)
		return;
	if (SSL_write(ssl, buf, (int)len) != (int)len) {
		ssl_why(why, sizeof(why));
		die("write: %s", why);
	}
}

/* Reads exactly len bytes; false on EOF/error (why filled). */
static bool
ssl_read_full(SSL *ssl, void *buf, size_t len, char *why, size_t wlen)
{
	uint8_t *p = buf;

	while (len > 0) {
		int n = SSL_read(ssl, p, (int)len);

		if (n <= 0) {
			ssl_why(why, wlen);
			return false;
		}
		p += n;
		len -= (size_t)n;
	}
	return true;
}

static void
send_msg(SSL *ssl, unsigned type, const ProtobufCMessage *m)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(WIRE_HDR_LEN + len);
	struct wire_hdr h = { .type = (uint8_t)type, .length = (uint32_t)len };

	wire_hdr_encode(buf, &h);
	protobuf_c_message_pack(m, buf + WIRE_HDR_LEN);
	ssl_write(ssl, buf, WIRE_HDR_LEN + len);
	free(buf);
}

/* Sends Hello; returns the Welcome status code and message. */
static uint32_t
hello(SSL *ssl, Pcd__Wire__Channel ch, uint32_t version, uint64_t size,
    char *msg, size_t msglen)
{
	Pcd__Wire__Hello h = PCD__WIRE__HELLO__INIT;
	Pcd__Wire__Welcome *w;
	struct wire_limits lim = { 0, 4096 };
	struct wire_hdr wh;
	uint8_t hdr[WIRE_HDR_LEN], *body;
	char why[256];
	uint32_t code;

	h.version = version;
	h.migration_id = (char *)o_id;
	h.channel = ch;
	h.guest_size = size;
	h.page_size = 4096;
	h.session_token.data = (uint8_t *)"pcd-wirepeer-tok";
	h.session_token.len = WIRE_TOKEN_LEN;
	h.bulk_channels = g_bulk_n;
	h.bulk_index = g_bulk_i;
	send_msg(ssl, WIRE_HELLO, &h.base);
	if (!ssl_read_full(ssl, hdr, sizeof(hdr), why, sizeof(why))) {
		snprintf(msg, msglen, "connection closed before Welcome: %s", why);
		return 1000;
	}
	if (wire_hdr_decode(hdr, &lim, &wh, why, sizeof(why)) < 0 ||
	    wh.type != WIRE_WELCOME)
		die("bad Welcome header: %s", why);
	body = malloc(wh.length + 1);
	if (!ssl_read_full(ssl, body, wh.length, why, sizeof(why)))
		die("reading Welcome: %s", why);
	w = (Pcd__Wire__Welcome *)protobuf_c_message_unpack(
	    &pcd__wire__welcome__descriptor, NULL, wh.length, body);
	if (w == NULL)
		die("malformed Welcome");
	code = w->status ? w->status->code : 0;
	snprintf(msg, msglen, "%s", w->status && w->status->message ?
	    w->status->message : "");
	protobuf_c_message_free_unpacked(&w->base, NULL);
	free(body);
	return code;
}

/* After a bad frame the destination must close the connection. */
static void
expect_close(SSL *ssl, const char *what)
{
	uint8_t b[64];
	char why[256];

	if (!ssl_read_full(ssl, b, sizeof(b), why, sizeof(why)))
		ok("destination closed the connection after %s", what);
	die("destination kept talking after %s", what);
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "dest", required_argument, NULL, 'd' },
		{ "id", required_argument, NULL, 'i' },
		{ "size", required_argument, NULL, 's' },
		{ "case", required_argument, NULL, 'c' },
		{ "ca", required_argument, NULL, 'A' },
		{ "cert", required_argument, NULL, 'C' },
		{ "key", required_argument, NULL, 'K' },
		{ "no-cert", no_argument, NULL, 'N' },
		{ "timeout", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 }
	};
	char msg[512];
	uint32_t code;
	int c, fd;
	SSL *urgent, *bulk;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'd': o_dest = optarg; break;
		case 'i': o_id = optarg; break;
		case 's':
			if (parse_size(optarg, &o_size) < 0)
				die("bad --size");
			break;
		case 'c': o_case = optarg; break;
		case 'A': o_ca = optarg; break;
		case 'C': o_cert = optarg; break;
		case 'K': o_key = optarg; break;
		case 'N': o_nocert = true; break;
		case 't': o_timeout = atoi(optarg); break;
		default: exit(2);
		}
	}
	if (o_dest == NULL || o_case == NULL || o_size == 0)
		die("usage: pcd-wirepeer --dest H:P --id ID --size BYTES --case CASE ...");
	fd = tcp_connect();

	if (strcmp(o_case, "plaintext") == 0) {
		uint8_t hdr[WIRE_HDR_LEN], b[64];
		struct wire_hdr h = { .type = WIRE_HELLO, .length = 0 };
		ssize_t n;

		wire_hdr_encode(hdr, &h);
		if (write(fd, hdr, sizeof(hdr)) < 0)
			ok("write refused: %s", strerror(errno));
		n = read(fd, b, sizeof(b));
		if (n <= 0)
			ok("destination closed the plaintext connection");
		/* A TLS alert record (type 21) is a refusal too. */
		if (b[0] == 21)
			ok("destination answered with a TLS alert and closed");
		die("destination answered plaintext with %zd bytes", n);
	}
	if (strcmp(o_case, "tls-refused") == 0) {
		uint8_t b[1];
		char why[256];

		urgent = tls_connect(fd, true);
		/* TLS 1.3: the server checks our certificate after our side
		 * finished; its verdict arrives as an alert on the first read. */
		code = hello(urgent, PCD__WIRE__CHANNEL__CHANNEL_URGENT,
		    WIRE_VERSION, o_size, msg, sizeof(msg));
		if (code == 1000)
			ok("%s", msg);
		if (!ssl_read_full(urgent, b, 1, why, sizeof(why)))
			ok("%s", why);
		die("destination accepted credentials it should refuse");
	}

	urgent = tls_connect(fd, false);
	if (strcmp(o_case, "bad-version") == 0 || strcmp(o_case, "bad-size") == 0) {
		bool v = strcmp(o_case, "bad-version") == 0;

		code = hello(urgent, PCD__WIRE__CHANNEL__CHANNEL_URGENT,
		    v ? 99 : WIRE_VERSION, v ? o_size : o_size + 4096, msg,
		    sizeof(msg));
		if (code != 0)
			ok("Welcome status %u: %s", code, msg);
		die("destination accepted a Hello it should refuse");
	}
	if (strcmp(o_case, "bad-bulk-count") == 0) {
		g_bulk_n = WIRE_BULK_CHANNELS_MAX + 1;
		code = hello(urgent, PCD__WIRE__CHANNEL__CHANNEL_URGENT,
		    WIRE_VERSION, o_size, msg, sizeof(msg));
		if (code != 0)
			ok("Welcome status %u: %s", code, msg);
		die("destination accepted %u bulk channels", g_bulk_n);
	}
	if (strcmp(o_case, "bad-bulk-index") == 0 ||
	    strcmp(o_case, "bulk-count-differs") == 0)
		g_bulk_n = 2;
	code = hello(urgent, PCD__WIRE__CHANNEL__CHANNEL_URGENT, WIRE_VERSION,
	    o_size, msg, sizeof(msg));
	if (code != 0)
		die("urgent channel refused: %s", msg);
	if (g_bulk_n == 2) {
		bool idx = strcmp(o_case, "bad-bulk-index") == 0;

		g_bulk_n = idx ? 2 : 3;
		g_bulk_i = idx ? 2 : 0;
		bulk = tls_connect(tcp_connect(), false);
		code = hello(bulk, PCD__WIRE__CHANNEL__CHANNEL_BULK,
		    WIRE_VERSION, o_size, msg, sizeof(msg));
		if (code != 0)
			ok("Welcome status %u: %s", code, msg);
		die("destination accepted bulk channel %u of %u", g_bulk_i,
		    g_bulk_n);
	}
	bulk = tls_connect(tcp_connect(), false);
	code = hello(bulk, PCD__WIRE__CHANNEL__CHANNEL_BULK, WIRE_VERSION,
	    o_size, msg, sizeof(msg));
	if (code != 0)
		die("bulk channel refused: %s", msg);
	if (strcmp(o_case, "bad-digest") == 0) {
		uint64_t npages = o_size / 4096, zh, first;
		uint8_t zero[4096] = { 0 }, hdr[WIRE_HDR_LEN], *body;
		struct wire_hdr h = { .type = WIRE_ZERO, .index = 0 };
		struct wire_limits lim = { npages, 4096 };
		uint64_t *hash = calloc(WIRE_DIGEST_CHUNK, sizeof(uint64_t));
		Pcd__Wire__Complete *cm;
		char why[256];

		zh = XXH3_64bits(zero, sizeof(zero));
		for (first = 0; first < npages; first += h.count) {
			h.index = first;
			h.count = (uint32_t)(npages - first < WIRE_MAX_ZERO_RUN ?
			    npages - first : WIRE_MAX_ZERO_RUN);
			wire_hdr_encode(hdr, &h);
			ssl_write(bulk, hdr, sizeof(hdr));
		}
		for (first = 0; first < npages; first += WIRE_DIGEST_CHUNK) {
			Pcd__Wire__Digest d = PCD__WIRE__DIGEST__INIT;

			d.first = first;
			d.n_hash = npages - first < WIRE_DIGEST_CHUNK ?
			    npages - first : WIRE_DIGEST_CHUNK;
			for (size_t k = 0; k < d.n_hash; k++)
				hash[k] = first + k == 5 ? zh ^ 1 : zh;
			d.hash = hash;
			send_msg(bulk, WIRE_DIGEST, &d.base);
		}
		free(hash);
		if (!ssl_read_full(urgent, hdr, sizeof(hdr), why, sizeof(why)))
			die("no Complete from the destination: %s", why);
		if (wire_hdr_decode(hdr, &lim, &h, why, sizeof(why)) < 0 ||
		    h.type != WIRE_COMPLETE)
			die("expected COMPLETE, got %s", why);
		body = malloc(h.length + 1);
		if (!ssl_read_full(urgent, body, h.length, why, sizeof(why)))
			die("reading Complete: %s", why);
		cm = (Pcd__Wire__Complete *)protobuf_c_message_unpack(
		    &pcd__wire__complete__descriptor, NULL, h.length, body);
		free(body);
		if (cm == NULL)
			die("malformed Complete");
		if (cm->ok || cm->pages_mismatched != 1 ||
		    cm->pages_verified != npages - 1)
			die("Complete{ok=%d verified=%" PRIu64 " mismatched=%" PRIu64
			    "}: the wrong digest went unnoticed", cm->ok,
			    cm->pages_verified, cm->pages_mismatched);
		snprintf(msg, sizeof(msg), "Complete{ok=false, %" PRIu64
		    " verified, %" PRIu64 " mismatched}: %s", cm->pages_verified,
		    cm->pages_mismatched, cm->message);
		protobuf_c_message_free_unpacked(&cm->base, NULL);
		ok("%s", msg);
	}
	{
		uint8_t buf[WIRE_HDR_LEN + 2 * 4096] = { 0 };
		struct wire_hdr h = { .type = WIRE_PAGES, .count = 1,
		    .length = 4096 };
		size_t len = WIRE_HDR_LEN + 4096;

		memset(buf + WIRE_HDR_LEN, 0xA5, sizeof(buf) - WIRE_HDR_LEN);
		if (strcmp(o_case, "bad-index") == 0)
			h.index = o_size / 4096;
		else if (strcmp(o_case, "bad-length") == 0) {
			h.length = 2 * 4096;
			len = sizeof(buf);
		} else if (strcmp(o_case, "bad-type") == 0)
			h.type = 200;
		else
			die("unknown --case %s", o_case);
		wire_hdr_encode(buf, &h);
		ssl_write(bulk, buf, len);
		expect_close(bulk, o_case);
	}
	peer_cleanup();
	return 1;
}
