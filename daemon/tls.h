/* tls.h - the one TLS profile of postcopyd and its tools, and the wire
 * protocol's handshake.
 *
 * Credentials come from a directory laid out like QEMU's tls-creds-x509:
 * ca-cert.pem, server-cert.pem, server-key.pem (the listening side),
 * client-cert.pem, client-key.pem (the connecting side). Only TLS 1.3 is
 * offered or accepted (suites TLS_PROFILE_SUITES), both sides must present
 * a certificate signed by the CA, no session tickets are issued and no
 * session is cached. An optional expected peer name is checked against the
 * peer certificate's SAN. There is no plaintext mode.
 *
 * tls_profile_load is the only place an SSL_CTX is made: the wire (tls_ctx
 * below), the control server's TCP listener, the control RPC client and the
 * benchmark's raw baselines all take their context from it.
 */
#ifndef PCD_TLS_H
#define PCD_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

/* OpenSSL's TLS 1.3 default, named so the daemons and the benchmark
 * cannot drift apart: two daemons negotiate the first. */
#define TLS_PROFILE_SUITES \
	"TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"

enum tls_role {
	TLS_ROLE_SERVER,	/* accepts: server-cert.pem, server-key.pem */
	TLS_ROLE_CLIENT,	/* connects: client-cert.pem, client-key.pem */
};

/* What differs between users; the security settings above never do. */
struct tls_profile_opts {
	/* TLS 1.3 suites (OpenSSL syntax); NULL: TLS_PROFILE_SUITES. */
	const char	*suites;
	/* A bulk data stream (the wire, the benchmark's baselines): read
	 * ahead into a 64 KiB buffer. Only for users that read with
	 * blocking calls or retry SSL_read before polling (chan.c), as
	 * read-ahead data is not counted by SSL_pending. */
	bool		 stream;
	/* A peer that closes without close_notify has just left (the
	 * control server: its framing already detects a cut frame). */
	bool		 eof_ok;
};

/* Makes an SSL_CTX for role from the credentials in dir. o may be NULL
 * (defaults). 0 and *out (free with SSL_CTX_free), or -errno with err
 * naming the file or setting that failed. */
int tls_profile_load(const char *dir, enum tls_role role,
    const struct tls_profile_opts *o, SSL_CTX **out, char *err,
    size_t errlen);

struct tls_ctx;

/* The wire's context: tls_profile_load with stream set. server: the
 * listening side (uses server-*.pem). */
int tls_ctx_new(const char *dir, bool server, struct tls_ctx **out,
    char *err, size_t errlen);
void tls_ctx_free(struct tls_ctx *c);

/* Runs the handshake on a connected socket (made non-blocking here), waiting
 * at most timeout_ms and giving up early when stopfd (if >= 0) becomes
 * readable. peer_name: expected DNS name or IP address in the peer's SAN,
 * NULL or "" for any name the CA vouches for. On success *out is a
 * connected SSL (the caller owns it and fd). */
int tls_handshake(struct tls_ctx *c, int fd, int stopfd, const char *peer_name,
    int timeout_ms, SSL **out, char *err, size_t errlen);
/* The same in steps, for a caller that runs several handshakes in one poll
 * loop: start makes fd non-blocking and the SSL (*out, the caller frees
 * it); each step returns 1 when done, 0 with the poll events it waits for
 * in *events, or -EPROTO with the explanation. */
int tls_handshake_start(struct tls_ctx *c, int fd, const char *peer_name,
    SSL **out, char *err, size_t errlen);
int tls_handshake_step(struct tls_ctx *c, SSL *ssl, short *events, char *err,
    size_t errlen);

/* Appends OpenSSL's queued error reasons to buf (and clears the queue). */
void tls_errors(char *buf, size_t len);

#endif
