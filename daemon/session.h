/* session.h - the TLS channels between a source and a destination daemon
 * (one urgent, 1 .. WIRE_BULK_CHANNELS_MAX bulk), for both roles: connect (source) or listen and
 * accept (destination), the Hello/Welcome handshake with its resume part,
 * pings, breaking a session after an error, closing it, and the waits of
 * the role's threads.
 *
 * A session runs from session_install (both channels up) to session_close.
 * While it runs the channel pointers do not change: the threads of the
 * session use them without a lock. Threads that outlive a session (the
 * destination's fault thread) and the loop send through session_send,
 * which holds txlock so the channel cannot be freed under them.
 *
 * Locks: `lock` (with `cond`) guards stop and broken and the role's own
 * flags (the role takes it around them and calls session_kick); `txlock`
 * serialises session_send. The channel pointers change under both (so
 * either keeps them valid). Order: txlock, then lock or the channel's
 * locks; `lock` is never held while sending (session_break only shuts the
 * channels down, which does not wait).
 */
#ifndef PCD_SESSION_H
#define PCD_SESSION_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "migration_int.h"
#include "wire.h"
#include "wire.pb-c.h"

struct chan;
struct tls_ctx;

/* Channel slots: the urgent channel, then bulk channel k at SESSION_BULK
 * + k (SESSION_BULK alone: bulk channel 0, which also carries the
 * precopy rounds and the digests). */
enum session_chan { SESSION_URGENT = 0, SESSION_BULK = 1 };
#define SESSION_CHANS	(1 + WIRE_BULK_CHANNELS_MAX)

/* What session_wait saw. */
enum session_wake {
	SESSION_TIMEOUT = 0,
	SESSION_DONE,		/* the caller's condition holds */
	SESSION_BROKEN,		/* the channels failed */
	SESSION_STOPPED,	/* the migration stops */
};

/* The resume handshake. Destination: fills w->have (an array of n_have
 * pointers into one allocation that starts at w->have[0]; the session frees
 * both) and w->switched. Source: applies the urgent channel's Welcome. */
typedef int (*session_have_fn)(void *arg, Pcd__Wire__Welcome *w);
typedef int (*session_welcome_fn)(void *arg, const Pcd__Wire__Welcome *w,
    char *err, size_t errlen);

struct session {
	struct mig		*m;		/* [const] */
	struct tls_ctx		*tls;		/* [const] once started */
	uint64_t		 npages;	/* [const] */
	uint32_t		 ps;		/* [const] */
	int			 lfd;		/* destination: the listener */

	pthread_mutex_t		 lock;		/* below, and the role's flags */
	pthread_cond_t		 cond;
	bool			 stop;
	bool			 broken;	/* this session's channels failed */

	pthread_mutex_t		 txlock;	/* sends from outside */
	struct chan		*ch[SESSION_CHANS];	/* written under txlock
						 * and lock; read freely by the
						 * session's threads */
	/* Bulk channels: source, the migration's (session_set_bulk);
	 * destination, the installed session's (its Hellos). [txlock and
	 * lock, like ch] */
	uint32_t		 nbulk;
	bool			 running;	/* [txlock and lock] installed */

	/* The migration's session token (wire.proto Hello.session_token).
	 * Source: chosen at start. Destination: the first Hello's, kept;
	 * resumable once a session ran or the migration was restored. [the
	 * role's main thread] */
	uint8_t			 token[WIRE_TOKEN_LEN];
	bool			 token_set;
	bool			 resumable;
	_Atomic uint64_t	 last_tx[SESSION_CHANS];	/* session_send:
						 * last frame */

	/* Destination, after the migration completed (dest_done.c): the
	 * verdict a resume Hello with the token is answered with
	 * (Welcome.completed; no channel is installed), and when
	 * session_accept gives up (-ETIMEDOUT; 0: never). [const] */
	const Pcd__Wire__Complete *done;
	uint64_t		 accept_until_ns;
	/* Source: the destination answered a resume with Welcome.completed
	 * (session_connect returned -EALREADY): its verdict. [main] */
	struct session_verdict {
		bool		 ok;
		uint64_t	 verified, mismatched;
		char		 message[256];
	}			 peer_done;
};

void session_init(struct session *s, struct mig *m);
void session_destroy(struct session *s);	/* frees the channels too */
/* The guest's geometry (for frame limits and the Hello). */
void session_set_guest(struct session *s, uint64_t npages, uint32_t ps);
/* Source: the number of bulk channels each session opens (1 ..
 * WIRE_BULK_CHANNELS_MAX), before the first. */
void session_set_bulk(struct session *s, uint32_t nbulk);
/* Bulk channels of the running session (its threads only). */
uint32_t session_nbulk(const struct session *s);
/* Source: picks the migration's random session token. */
int session_new_token(struct session *s, char *err, size_t errlen);
/* Loads the TLS profile (server: the destination's). */
int session_tls(struct session *s, bool server, char *err, size_t errlen);

/* Source: connects every channel (urgent first: a resume Welcome on it
 * says what the destination holds; then bulk 0, 1, ...) and installs
 * them. -EALREADY: the destination completed the migration already (a
 * resume answered with Welcome.completed; its verdict in s->peer_done). */
int session_connect(struct session *s, const char *addr, bool resume,
    session_welcome_fn fn, void *arg, char *err, size_t errlen);
/* Destination: binds the listener (m->addr; the bound address goes to
 * m->listen). */
int session_listen(struct session *s, char *err, size_t errlen);
/* Destination: accepts until the urgent channel and every bulk channel
 * the Hellos announce are there and installs them. Bad peers (a Hello
 * whose bulk channel count or index is out of range or differs from the
 * other channels') are refused (posted) and the listener keeps serving.
 * With s->done set it only answers resumes as completed, until the
 * migration stops (-ECANCELED) or s->accept_until_ns (-ETIMEDOUT). */
int session_accept(struct session *s, session_have_fn fn, void *arg);

/* The channel of a running session (its threads only): which is
 * SESSION_URGENT or SESSION_BULK + k, k < session_nbulk. */
struct chan *session_chan(struct session *s, unsigned which);
/* Sends a message from any thread. With no session nothing is sent (0);
 * a channel that failed returns its error; a send error breaks the
 * session. */
int session_send(struct session *s, unsigned which, unsigned type,
    const ProtobufCMessage *msg);
/* The loop, on Cancel before switchover: tells the peer with an Error
 * frame of code CANCELLED (why: its message) on both channels, when a
 * session runs (0: on one at least). Never waits long (a busy channel: -EBUSY; each wait for
 * the socket at most 500 ms): the peer that is not told finds the channels
 * gone and pauses as after a network loss. */
int session_tell_cancel(struct session *s, const char *why);
/* Sends a Ping when session_send sent nothing on the channel for
 * MIG_PING_MS. */
int session_ping_due(struct session *s, unsigned which);
/* Drops a running session (a Resume request): both channels fail with
 * -ECONNRESET. Whether one ran. */
bool session_drop(struct session *s);

bool session_stopped(struct session *s);
bool session_ended(struct session *s);		/* stopped or broken */
/* Ends the session after an error: every channel fails so every thread
 * using them returns. */
void session_break(struct session *s);
/* The migration stops: every wait returns. */
void session_stop(struct session *s);
/* Wakes the waiters (the role changed one of its flags under lock). */
void session_kick(struct session *s);
/* Waits until the session stops or breaks, done(arg) holds (called under
 * lock; NULL: never), or ms pass (< 0: no limit; a wake-up does not end a
 * wait with a limit). */
enum session_wake session_wait(struct session *s, bool (*done)(void *),
    void *arg, int ms);
/* After its threads were joined: the channels are freed; the next
 * session can be installed. */
void session_close(struct session *s);
/* The error that ended a session: the first channel error that is not a
 * mere consequence (-ECANCELED from session_break), and its message. */
int session_error(struct session *s, char *why, size_t whylen);

#endif
