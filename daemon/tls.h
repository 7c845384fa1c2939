/* tls.h - TLS 1.3 with mutual authentication for the wire protocol.
 *
 * Credentials come from a directory laid out like QEMU's tls-creds-x509:
 * ca-cert.pem, server-cert.pem, server-key.pem (the listening side),
 * client-cert.pem, client-key.pem (the connecting side). Only TLS 1.3 is
 * offered or accepted, both sides must present a certificate signed by the
 * CA, and an optional expected peer name is checked against the peer
 * certificate's SAN. There is no plaintext mode.
 */
#ifndef PCD_TLS_H
#define PCD_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

struct tls_ctx;

/* server: the listening side (uses server-*.pem). */
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

/* Appends OpenSSL's queued error reasons to buf (and clears the queue). */
void tls_errors(char *buf, size_t len);

#endif
