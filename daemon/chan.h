/* chan.h - a wire channel: one TLS connection with blocking semantics.
 *
 * Data-path threads call chan_read_full/chan_send_frame as if the socket
 * were blocking; underneath the socket is non-blocking and the channel
 * polls, so a stop eventfd can interrupt any wait and one thread may read
 * while another writes (each SSL call is serialised by a lock, never held
 * while waiting). Protocol code never sees SSL_ERROR_WANT_*.
 *
 * Errors are sticky (like QEMU's QEMUFile): the first error is recorded
 * with a message and every later call returns it without touching the
 * connection, so callers may check once after a sequence of calls.
 */
#ifndef PCD_CHAN_H
#define PCD_CHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <protobuf-c/protobuf-c.h>

#include "log.h"
#include "wire.h"

struct chan;

/* Takes ownership of ssl and fd. stopfd (not owned) aborts waits. */
int chan_new(SSL *ssl, int fd, int stopfd, const char *name, struct chan **out);
void chan_free(struct chan *c);
const char *chan_name(const struct chan *c);
void chan_set_name(struct chan *c, const char *name);

int chan_read_full(struct chan *c, void *buf, size_t len);
/* Reads and throws away len bytes. */
int chan_skip(struct chan *c, size_t len);

/* One whole frame (header + payload), atomic with respect to other writers
 * of this channel. */
int chan_send_frame(struct chan *c, const struct wire_hdr *h,
    const void *payload);
int chan_send_msg(struct chan *c, unsigned type, const ProtobufCMessage *m);
/* A small message (1 KiB at most) from a thread that must not wait long:
 * -EBUSY when another frame is being written, and each wait for the
 * socket at most ms. */
int chan_send_msg_within(struct chan *c, unsigned type,
    const ProtobufCMessage *m, int ms);
/* Whether a read would find bytes (or the end) now. */
bool chan_readable(struct chan *c);
/* Whether a read would find bytes (or the end) within ms (>= 0). */
bool chan_readable_within(struct chan *c, int ms);
/* Reads and validates the next header. */
int chan_recv_hdr(struct chan *c, const struct wire_limits *lim,
    struct wire_hdr *h);
/* Reads a message body announced by h and unpacks it. */
int chan_recv_msg(struct chan *c, const struct wire_hdr *h,
    ProtobufCMessage **out);

/* The sticky error: 0 or -errno, and its message. */
int chan_error(struct chan *c);
const char *chan_errmsg(struct chan *c);
/* Records an error (if none yet); returns the sticky error. */
int chan_set_error(struct chan *c, int err, const char *fmt, ...) PCD_PRINTF(3, 4);
/* From any thread: make blocked and later I/O fail with -ECANCELED. */
void chan_shutdown(struct chan *c);

/* Reads that must wait poll the socket for up to us microseconds before
 * sleeping (spin.h: bounded, skipped on a busy machine); 0 = never. */
void chan_set_spin(struct chan *c, unsigned us);
/* Waits (read or write) longer than ms fail with -ETIMEDOUT; 0 = never. */
void chan_set_timeout(struct chan *c, int ms);
/* Whether a channel error means the connection was lost (reconnecting may
 * help) rather than a peer that broke the protocol or a local failure. */
bool chan_err_transient(int err);
/* TCP_NODELAY, keepalive and TCP_USER_TIMEOUT so a dead path is noticed in
 * about timeout_ms (0: keepalive with the system's defaults). */
void chan_sock_setup(int fd, int timeout_ms);

#endif
