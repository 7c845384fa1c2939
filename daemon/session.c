/* session.c - the TLS channels of a migration (urgent and 1 ..
 * WIRE_BULK_CHANNELS_MAX bulk), for both roles (see session.h). */
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "chan.h"
#include "log.h"
#include "session.h"
#include "status.h"
#include "tls.h"
#include "util.h"
#include "wire.h"

#define SESSION_CONNECT_MS	15000	/* source: TCP and TLS per channel */
#define SESSION_HANDSHAKE_MS	10000	/* destination: TLS and Hello per peer */
#define SESSION_PEERS_MAX	16	/* destination: handshakes at once */
#define SESSION_TELL_MS		500	/* the loop's Cancel note to the peer */

static const char *
session_kind_name(Pcd__Wire__Channel kind)
{
	return kind == PCD__WIRE__CHANNEL__CHANNEL_BULK ? "bulk" : "urgent";
}

/* A channel's name in messages and logs: "urgent", "bulk" (the only
 * one), "bulk 2". */
static void
session_chan_label(char *buf, size_t len, Pcd__Wire__Channel kind,
    uint32_t index, uint32_t nbulk)
{
	if (kind == PCD__WIRE__CHANNEL__CHANNEL_BULK && nbulk > 1)
		snprintf(buf, len, "bulk %" PRIu32, index);
	else
		snprintf(buf, len, "%s", session_kind_name(kind));
}

void
session_init(struct session *s, struct mig *m)
{
	memset(s, 0, sizeof(*s));
	s->m = m;
	s->lfd = -1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	pthread_mutex_init(&s->txlock, NULL);
	s->nbulk = 1;
}

void
session_set_bulk(struct session *s, uint32_t nbulk)
{
	PCD_ASSERT(nbulk >= 1 && nbulk <= WIRE_BULK_CHANNELS_MAX);
	s->nbulk = nbulk;
}

uint32_t
session_nbulk(const struct session *s)
{
	return s->nbulk;
}

void
session_set_guest(struct session *s, uint64_t npages, uint32_t ps)
{
	s->npages = npages;
	s->ps = ps;
}

void
session_destroy(struct session *s)
{
	for (int k = 0; k < SESSION_CHANS; k++) {
		chan_free(s->ch[k]);
		s->ch[k] = NULL;
	}
	tls_ctx_free(s->tls);
	s->tls = NULL;
	if (s->lfd >= 0)
		close(s->lfd);
	s->lfd = -1;
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->txlock);
}

int
session_new_token(struct session *s, char *err, size_t errlen)
{
	ssize_t n = getrandom(s->token, sizeof(s->token), 0);

	if (n != (ssize_t)sizeof(s->token)) {
		snprintf(err, errlen, "cannot draw a session token: %s",
		    n < 0 ? strerror(errno) : "short read");
		return n < 0 ? -errno : -EIO;
	}
	s->token_set = true;
	return 0;
}

int
session_tls(struct session *s, bool server, char *err, size_t errlen)
{
	return tls_ctx_new(s->m->tls.dir, server, &s->tls, err, errlen);
}

/* ---- state and waits --------------------------------------------------- */

bool
session_stopped(struct session *s)
{
	bool stop;

	pthread_mutex_lock(&s->lock);
	stop = s->stop;
	pthread_mutex_unlock(&s->lock);
	return stop;
}

bool
session_ended(struct session *s)
{
	bool end;

	pthread_mutex_lock(&s->lock);
	end = s->stop || s->broken;
	pthread_mutex_unlock(&s->lock);
	return end;
}

/* The channel pointers change under both locks, so `lock` keeps them
 * valid here without waiting for a send in progress (which the shutdown
 * ends). */
void
session_break(struct session *s)
{
	pthread_mutex_lock(&s->lock);
	s->broken = true;
	pthread_cond_broadcast(&s->cond);
	for (int k = 0; k < SESSION_CHANS; k++)
		chan_shutdown(s->ch[k]);
	pthread_mutex_unlock(&s->lock);
}

void
session_stop(struct session *s)
{
	pthread_mutex_lock(&s->lock);
	s->stop = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

void
session_kick(struct session *s)
{
	pthread_mutex_lock(&s->lock);
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static void
session_deadline(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_nsec += (long)(ms % 1000) * 1000000l;
	ts->tv_sec += ms / 1000 + ts->tv_nsec / 1000000000l;
	ts->tv_nsec %= 1000000000l;
}

static enum session_wake
session_why(struct session *s, bool (*done)(void *), void *arg)
{
	if (s->stop)
		return SESSION_STOPPED;
	if (s->broken)
		return SESSION_BROKEN;
	if (done != NULL && done(arg))
		return SESSION_DONE;
	return SESSION_TIMEOUT;
}

enum session_wake
session_wait(struct session *s, bool (*done)(void *), void *arg, int ms)
{
	enum session_wake w;
	struct timespec ts;

	if (ms >= 0)
		session_deadline(&ts, ms);
	pthread_mutex_lock(&s->lock);
	while ((w = session_why(s, done, arg)) == SESSION_TIMEOUT) {
		if (ms < 0)
			pthread_cond_wait(&s->cond, &s->lock);
		else if (pthread_cond_timedwait(&s->cond, &s->lock, &ts) != 0)
			break;
	}
	pthread_mutex_unlock(&s->lock);
	return w;
}

/* ---- a running session ------------------------------------------------- */

/* Installs cs[0] (urgent) and cs[1 .. nbulk] (bulk); takes them. */
static void
session_install(struct session *s, struct chan **cs, uint32_t nbulk)
{
	pthread_mutex_lock(&s->txlock);
	pthread_mutex_lock(&s->lock);
	PCD_ASSERT(!s->running);
	for (uint32_t k = 0; k <= nbulk; k++) {
		PCD_ASSERT(s->ch[k] == NULL && cs[k] != NULL);
		s->ch[k] = cs[k];
		atomic_store(&s->last_tx[k], now_ns());
	}
	/* The demand path: requests (source) and their answers (destination)
	 * arrive on the urgent channel. */
	chan_set_spin(cs[SESSION_URGENT], s->m->demand_spin_us);
	s->nbulk = nbulk;
	s->running = true;
	pthread_mutex_unlock(&s->lock);
	pthread_mutex_unlock(&s->txlock);
}

struct chan *
session_chan(struct session *s, unsigned which)
{
	/* Only a running session's threads ask: the pointer is stable. */
	PCD_ASSERT(which <= s->nbulk && s->ch[which] != NULL);
	return s->ch[which];
}

int
session_send(struct session *s, unsigned which, unsigned type,
    const ProtobufCMessage *msg)
{
	int r = 0;

	pthread_mutex_lock(&s->txlock);
	if (s->running && which <= s->nbulk &&
	    (r = chan_error(s->ch[which])) == 0) {
		r = chan_send_msg(s->ch[which], type, msg);
		atomic_store(&s->last_tx[which], now_ns());
	}
	pthread_mutex_unlock(&s->txlock);
	if (r < 0)
		session_break(s);
	return r;
}

int
session_tell_cancel(struct session *s, const char *why)
{
	Pcd__Wire__Error e = PCD__WIRE__ERROR__INIT;
	Pcd__Status st = PCD__STATUS__INIT;
	struct timespec ts;
	char msg[256];
	int r = -ENOTCONN;

	snprintf(msg, sizeof(msg), "%s", why);
	st.code = STATUS_CANCELLED;
	st.message = msg;
	e.status = &st;
	session_deadline(&ts, SESSION_TELL_MS);
	if (pthread_mutex_timedlock(&s->txlock, &ts) != 0)
		return -EBUSY;
	/* On every channel: the peer reads each in its own thread, and the
	 * one that sees the close first must find the note before it. */
	for (uint32_t k = 0; s->running && k <= s->nbulk; k++) {
		int rk = chan_error(s->ch[k]);

		if (rk == 0)
			rk = chan_send_msg_within(s->ch[k], WIRE_ERROR, &e.base,
			    SESSION_TELL_MS);
		if (r != 0)
			r = rk;
	}
	pthread_mutex_unlock(&s->txlock);
	return r;
}

int
session_ping_due(struct session *s, unsigned which)
{
	Pcd__Wire__Ping ping = PCD__WIRE__PING__INIT;
	uint64_t now = now_ns();

	if (now - atomic_load(&s->last_tx[which]) < MIG_PING_MS * 1000000ull)
		return 0;
	ping.seq = now;
	return session_send(s, which, WIRE_PING, &ping.base);
}

bool
session_drop(struct session *s)
{
	bool up;

	pthread_mutex_lock(&s->txlock);
	up = s->running;
	if (up)
		chan_set_error(s->ch[SESSION_URGENT], -ECONNRESET, "urgent "
		    "channel: dropped by a Resume request");
	pthread_mutex_unlock(&s->txlock);
	if (up)
		session_break(s);
	return up;
}

void
session_close(struct session *s)
{
	struct chan *cs[SESSION_CHANS];

	pthread_mutex_lock(&s->txlock);
	pthread_mutex_lock(&s->lock);
	memcpy(cs, s->ch, sizeof(cs));
	memset(s->ch, 0, sizeof(s->ch));
	s->running = false;
	s->broken = false;
	pthread_mutex_unlock(&s->lock);
	pthread_mutex_unlock(&s->txlock);
	for (int k = 0; k < SESSION_CHANS; k++)
		chan_free(cs[k]);
}

int
session_error(struct session *s, char *why, size_t whylen)
{
	/* The bulk channels first (as before: their error is usually the
	 * cause), then the urgent one. */
	for (int j = 1; j <= SESSION_CHANS; j++) {
		struct chan *c = s->ch[j % SESSION_CHANS];
		int e = c != NULL ? chan_error(c) : 0;

		if (e != 0 && e != -ECANCELED) {
			snprintf(why, whylen, "%s", chan_errmsg(c));
			return e;
		}
	}
	snprintf(why, whylen, "channels dropped");
	return -ECANCELED;
}

/* ---- source: connecting ------------------------------------------------ */

/* One TCP connect, non-blocking: 0 and the socket, or -ECANCELED (the
 * migration stops), -ETIMEDOUT (no answer by the deadline: a host that
 * drops connection attempts), or the connect's error. The loop thread
 * joins this thread on Cancel and SIGTERM: nothing here may wait on the
 * network without watching the stop eventfd. */
static int
session_connect_once(struct session *s, const struct addrinfo *ai,
    uint64_t deadline, int *fdp)
{
	int fd, r, e = 0;
	socklen_t el = sizeof(e);

	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	r = connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ? 0 :
	    errno == EINPROGRESS ? -EINPROGRESS : -errno;
	while (r == -EINPROGRESS) {
		struct pollfd p[2] = { { .fd = fd, .events = POLLOUT },
		    { .fd = s->m->stopfd, .events = POLLIN } };
		uint64_t now = now_ns();

		if (now >= deadline)
			r = -ETIMEDOUT;
		else if (poll(p, 2, (int)((deadline - now) / 1000000) + 1) < 0)
			r = errno == EINTR ? -EINPROGRESS : -errno;
		else if (p[1].revents & POLLIN)
			r = -ECANCELED;
		else if (p[0].revents != 0)
			r = getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0 ?
			    -errno : -e;
	}
	if (r < 0) {
		close(fd);
		return r;
	}
	*fdp = fd;
	return 0;
}

/* retry: retry refusals for a while (the first connect: the destination
 * may be a moment behind); a reconnect has its own backoff. The whole
 * connect has SESSION_CONNECT_MS. */
static int
session_connect_tcp(struct session *s, const char *addr, bool retry, int *fdp,
    char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	uint64_t deadline = now_ns() + SESSION_CONNECT_MS * 1000000ull;
	char host[256], portstr[8];
	uint16_t port;
	int fd = -1, r;

	if (parse_hostport(addr, host, sizeof(host), &port) < 0) {
		snprintf(err, errlen, "bad destination address '%s'", addr);
		return -EINVAL;
	}
	snprintf(portstr, sizeof(portstr), "%u", port);
	if ((r = getaddrinfo(host, portstr, &hints, &res)) != 0) {
		snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(r));
		return -EHOSTUNREACH;
	}
	for (;;) {
		struct pollfd p = { .fd = s->m->stopfd, .events = POLLIN };

		if ((r = session_connect_once(s, res, deadline, &fd)) == 0 ||
		    r != -ECONNREFUSED || !retry || now_ns() >= deadline)
			break;
		if (poll(&p, 1, 200) > 0) {
			r = -ECANCELED;
			break;
		}
	}
	freeaddrinfo(res);
	if (r == -ECANCELED)
		snprintf(err, errlen, "cancelled");
	else if (r == -ETIMEDOUT)
		snprintf(err, errlen, "cannot connect to %s: no answer within "
		    "%d s (a host or firewall that drops connection attempts?)",
		    addr, SESSION_CONNECT_MS / 1000);
	else if (r < 0)
		snprintf(err, errlen, "cannot connect to %s: %s", addr,
		    strerror(-r));
	if (r < 0)
		return r;
	chan_sock_setup(fd, MIG_LINK_TIMEOUT_MS);
	*fdp = fd;
	return 0;
}

/* TLS over a connected (or accepted) socket: a channel, or the error. */
static int
session_tls_chan(struct session *s, int fd, const char *name, int ms,
    struct chan **out, char *why, size_t whylen)
{
	SSL *ssl = NULL;
	int r;

	if ((r = tls_handshake(s->tls, fd, s->m->stopfd, s->m->tls.peer_name,
	    ms, &ssl, why, whylen)) < 0) {
		close(fd);
		return r;
	}
	if ((r = chan_new(ssl, fd, s->m->stopfd, name, out)) < 0) {
		SSL_free(ssl);
		close(fd);
		snprintf(why, whylen, "out of memory");
		return r;
	}
	chan_set_timeout(*out, MIG_LINK_TIMEOUT_MS);
	return 0;
}

/* Reads the next frame's message, which must be of type want. */
static int
session_recv_expect(struct session *s, struct chan *c, unsigned want,
    ProtobufCMessage **msg)
{
	struct wire_limits lim = { 0, s->ps };
	struct wire_hdr h;
	int r;

	if ((r = chan_recv_hdr(c, &lim, &h)) < 0)
		return r;
	if (h.type != want)
		return chan_set_error(c, -EPROTO, "%s channel: expected %s, got "
		    "%s", chan_name(c), wire_type_name(want),
		    wire_type_name(h.type));
	return chan_recv_msg(c, &h, msg);
}

static int
session_hello(struct session *s, struct chan *c, Pcd__Wire__Channel kind,
    uint32_t index, bool resume)
{
	Pcd__Wire__Hello hello = PCD__WIRE__HELLO__INIT;

	hello.version = WIRE_VERSION;
	hello.migration_id = s->m->id;
	hello.channel = kind;
	hello.guest_size = s->npages * s->ps;
	hello.page_size = s->ps;
	hello.resume = resume;
	hello.session_token.data = s->token;
	hello.session_token.len = sizeof(s->token);
	/* One bulk channel: the fields stay 0, as from a source before them. */
	hello.bulk_channels = s->nbulk > 1 ? s->nbulk : 0;
	hello.bulk_index = index;
	return chan_send_msg(c, WIRE_HELLO, &hello.base);
}

/* TLS 1.3: a server that refuses the client's certificate says so with
 * an alert after the client's handshake is done, on its first read. */
static bool
session_cert_refused(struct chan *c)
{
	const char *e = chan_errmsg(c);

	return chan_error(c) == -EIO && strstr(e, "alert") != NULL &&
	    (strstr(e, "certificate") != NULL || strstr(e, "unknown ca"));
}

/* A resume answered with Welcome.completed: the destination completed the
 * migration (its Complete was lost in a cut). Keeps its verdict. */
static int
session_peer_done(struct session *s, const Pcd__Wire__Complete *c,
    const char *addr, char *err, size_t errlen)
{
	struct session_verdict *v = &s->peer_done;

	v->ok = c->ok;
	v->verified = c->pages_verified;
	v->mismatched = c->pages_mismatched;
	snprintf(v->message, sizeof(v->message), "%s", c->message != NULL ?
	    c->message : "");
	snprintf(err, errlen, "destination %s completed the migration already "
	    "(its Complete was lost)", addr);
	return -EALREADY;
}

/* Opens one channel: TCP, TLS, Hello -> Welcome. */
static int
session_open(struct session *s, const char *addr, Pcd__Wire__Channel kind,
    uint32_t index, bool resume, session_welcome_fn fn, void *arg,
    struct chan **out, char *err, size_t errlen)
{
	Pcd__Wire__Welcome *w = NULL;
	char name[32];
	struct chan *c = NULL;
	char why[256];
	int fd = -1, r;

	session_chan_label(name, sizeof(name), kind, index, s->nbulk);
	if ((r = session_connect_tcp(s, addr, !resume, &fd, err, errlen)) < 0)
		return r;
	if ((r = session_tls_chan(s, fd, name, SESSION_CONNECT_MS, &c, why,
	    sizeof(why))) < 0) {
		snprintf(err, errlen, "%s channel to %s: %.300s", name, addr, why);
		return r;
	}
	if ((r = session_hello(s, c, kind, index, resume)) < 0 ||
	    (r = session_recv_expect(s, c, WIRE_WELCOME,
	    (ProtobufCMessage **)&w)) < 0) {
		snprintf(err, errlen, "%s (destination %s)%s", chan_errmsg(c),
		    addr, session_cert_refused(c) ? ": it refused our "
		    "certificate after the TLS handshake (is our client "
		    "certificate signed by the CA it trusts?)" : "");
		goto fail;
	}
	if ((r = wire_welcome_check(w, s->npages, why, sizeof(why))) < 0) {
		snprintf(err, errlen, r == -ECONNREFUSED ? "destination %s "
		    "refused the %s channel: %s" : "destination %s, %s channel: "
		    "%s", addr, name, why);
		goto fail;
	}
	if (resume && w->completed != NULL) {
		r = session_peer_done(s, w->completed, addr, err, errlen);
		goto fail;
	}
	if (s->nbulk > 1 && w->bulk_channels != s->nbulk) {
		snprintf(err, errlen, "destination %s does not take %" PRIu32
		    " bulk channels (it answered %" PRIu32 ": a postcopyd older "
		    "than parallel bulk channels?); migrate with one",
		    addr, s->nbulk, w->bulk_channels);
		r = -EPROTONOSUPPORT;
		goto fail;
	}
	if (resume && kind == PCD__WIRE__CHANNEL__CHANNEL_URGENT &&
	    (r = fn(arg, w, err, errlen)) < 0)
		goto fail;
	protobuf_c_message_free_unpacked(&w->base, NULL);
	*out = c;
	return 0;
fail:
	if (w != NULL)
		protobuf_c_message_free_unpacked(&w->base, NULL);
	chan_free(c);
	return r;
}

int
session_connect(struct session *s, const char *addr, bool resume,
    session_welcome_fn fn, void *arg, char *err, size_t errlen)
{
	struct chan *cs[SESSION_CHANS] = { NULL };
	int r;

	if ((r = session_open(s, addr, PCD__WIRE__CHANNEL__CHANNEL_URGENT, 0,
	    resume, fn, arg, &cs[SESSION_URGENT], err, errlen)) < 0)
		return r;
	for (uint32_t k = 0; k < s->nbulk && r == 0; k++)
		r = session_open(s, addr, PCD__WIRE__CHANNEL__CHANNEL_BULK, k,
		    resume, fn, arg, &cs[SESSION_BULK + k], err, errlen);
	if (r < 0) {
		for (int k = 0; k < SESSION_CHANS; k++)
			chan_free(cs[k]);
		return r;
	}
	session_install(s, cs, s->nbulk);
	return 0;
}

/* ---- destination: listening and accepting ------------------------------ */

int
session_listen(struct session *s, char *err, size_t errlen)
{
	struct mig *m = s->m;
	char host[256], portstr[8], bhost[128], bport[16];
	uint16_t port;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
	    .ai_flags = AI_PASSIVE | AI_NUMERICSERV }, *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd = -1, r, one = 1;

	if (parse_hostport(m->addr, host, sizeof(host), &port) < 0) {
		snprintf(err, errlen, "invalid listen address '%s'", m->addr);
		return -EINVAL;
	}
	snprintf(portstr, sizeof(portstr), "%u", port);
	if ((r = getaddrinfo(host[0] ? host : NULL, portstr, &hints, &res)) != 0) {
		snprintf(err, errlen, "cannot resolve listen address %s: %s",
		    host, gai_strerror(r));
		return -EINVAL;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 8) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot listen on %s: %s", m->addr,
		    strerror(-r));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(res);
		return r;
	}
	freeaddrinfo(res);
	getnameinfo((struct sockaddr *)&ss, sl, bhost, sizeof(bhost), bport,
	    sizeof(bport), NI_NUMERICHOST | NI_NUMERICSERV);
	snprintf(m->listen, sizeof(m->listen), strchr(bhost, ':') ? "[%s]:%s" :
	    "%s:%s", bhost, bport);
	if (s->lfd >= 0)
		close(s->lfd);
	s->lfd = fd;
	return 0;
}

static void
session_refuse(struct chan *c, uint32_t code, const char *why)
{
	Pcd__Wire__Welcome w = PCD__WIRE__WELCOME__INIT;
	Pcd__Status st = PCD__STATUS__INIT;

	st.code = code;
	st.message = (char *)why;
	w.status = &st;
	w.version = WIRE_VERSION;
	chan_send_msg(c, WIRE_WELCOME, &w.base);
}

/* Answers an accepted Hello: Welcome (with the pages held, on a resume). */
static int
session_welcome(struct session *s, struct chan *c, const Pcd__Wire__Hello *hello,
    session_have_fn fn, void *arg)
{
	Pcd__Wire__Welcome w = PCD__WIRE__WELCOME__INIT;
	Pcd__Status ok = PCD__STATUS__INIT;
	int r;

	w.status = &ok;
	w.version = WIRE_VERSION;
	w.bulk_channels = wire_hello_bulk(hello);
	/* The source reads the pages held from the urgent Welcome only. */
	if (hello->resume && hello->channel ==
	    PCD__WIRE__CHANNEL__CHANNEL_URGENT && (r = fn(arg, &w)) < 0)
		return chan_set_error(c, r, "out of memory for the page list");
	r = chan_send_msg(c, WIRE_WELCOME, &w.base);
	if (w.have != NULL) {
		free(w.have[0]);
		free(w.have);
	}
	return r;
}

/* After the migration completed: a resume Hello from its source (token
 * checked) is told so, with the verdict, and the connection closed. */
static void
session_answer_done(struct session *s, struct chan *c, const char *peer)
{
	Pcd__Wire__Welcome w = PCD__WIRE__WELCOME__INIT;
	Pcd__Status ok = PCD__STATUS__INIT;
	int r;

	w.status = &ok;
	w.version = WIRE_VERSION;
	w.completed = (Pcd__Wire__Complete *)s->done;
	r = chan_send_msg(c, WIRE_WELCOME, &w.base);
	if (r == 0)
		log_notice("migration %s: told the source reconnecting from %s "
		    "that this migration completed", s->m->id, peer);
	else
		log_warnx("migration %s: could not tell the source at %s that "
		    "the migration completed: %s", s->m->id, peer,
		    chan_errmsg(c));
}

/* A connection whose TLS handshake runs (destination). Several run at
 * once, each with its own deadline, so peers that connect and stay silent
 * delay nobody; none becomes a channel before its handshake and Hello
 * passed. */
struct session_peer {
	int		 fd;
	SSL		*ssl;
	uint64_t	 deadline;
	short		 events;
	char		 name[160];
};

/* Destination: is this Hello from the migration's own source? The first
 * Hello's token is kept; any other token is refused, and so is a fresh
 * (non-resume) Hello once a session ran: both before any state changes,
 * so a second source that reuses the id is told and its guest runs on. */
static int
session_token_check(struct session *s, const Pcd__Wire__Hello *h, char *why,
    size_t whylen)
{
	if (s->token_set && memcmp(s->token, h->session_token.data,
	    sizeof(s->token)) != 0) {
		snprintf(why, whylen, "migration '%s' belongs to another source "
		    "(its session token differs): refused; start a new "
		    "migration under a new id", s->m->id);
		return -EPERM;
	}
	if (s->resumable && !h->resume) {
		snprintf(why, whylen, "migration '%s' has run and waits for its "
		    "source to resume it: a new migration cannot take it over "
		    "(use a new id)", s->m->id);
		return -EPERM;
	}
	if (!s->token_set) {
		memcpy(s->token, h->session_token.data, sizeof(s->token));
		s->token_set = true;
	}
	return 0;
}

/* The channels accepted so far (destination): cs[0] urgent, cs[1 + k]
 * bulk k; nbulk: the bulk channel count their Hellos announce (0: none
 * accepted yet). */
struct session_acc {
	struct chan	*cs[SESSION_CHANS];
	uint32_t	 nbulk;
	int		 slot;		/* the last Hello's */
};

/* A bulk Hello's channel count must be the one the urgent channel of
 * its attempt announced (a source opens every channel of a session with
 * the same one, the urgent channel first). */
static int
session_bulk_check(const struct session_acc *acc, const Pcd__Wire__Hello *h,
    char *why, size_t whylen)
{
	uint32_t n = wire_hello_bulk(h);

	if (h->channel == PCD__WIRE__CHANNEL__CHANNEL_URGENT ||
	    acc->nbulk == 0 || acc->nbulk == n)
		return 0;
	snprintf(why, whylen, "Hello announces %" PRIu32 " bulk channels, the "
	    "channels already accepted for this session announced %" PRIu32,
	    n, acc->nbulk);
	return -EPROTO;
}

/* After the TLS handshake: Hello, Welcome (the Hello must come within
 * SESSION_HANDSHAKE_MS too). 0 and the channel (its slot and the bulk
 * count in acc), or an error already posted as a refused peer. Takes the
 * peer's SSL and fd. */
static int
session_accept_hello(struct session *s, struct session_peer *p,
    session_have_fn fn, void *arg, struct session_acc *acc, struct chan **out)
{
	struct mig *m = s->m;
	Pcd__Wire__Hello *hello = NULL;
	struct chan *c = NULL;
	char why[384], name[32];
	int r;

	if ((r = chan_new(p->ssl, p->fd, m->stopfd, "handshake", &c)) < 0) {
		SSL_free(p->ssl);
		close(p->fd);
		mig_post_refused(m, "peer %s: out of memory", p->name);
		return r;
	}
	chan_set_timeout(c, SESSION_HANDSHAKE_MS);
	if ((r = session_recv_expect(s, c, WIRE_HELLO,
	    (ProtobufCMessage **)&hello)) < 0)
		goto fail;
	if ((r = wire_hello_check(hello, m->id, s->npages * s->ps, s->ps, why,
	    sizeof(why))) < 0 ||
	    (r = session_bulk_check(acc, hello, why, sizeof(why))) < 0) {
		session_refuse(c, r == -EPROTONOSUPPORT ?
		    STATUS_FAILED_PRECONDITION : STATUS_INVALID_ARGUMENT, why);
		chan_set_error(c, r, "%s", why);
		goto fail;
	}
	if ((r = session_token_check(s, hello, why, sizeof(why))) < 0) {
		session_refuse(c, STATUS_FAILED_PRECONDITION, why);
		chan_set_error(c, r, "%s", why);
		goto fail;
	}
	if (s->done != NULL) {
		session_answer_done(s, c, p->name);
		r = -EALREADY;
		goto fail;
	}
	if ((r = session_welcome(s, c, hello, fn, arg)) < 0)
		goto fail;
	acc->nbulk = wire_hello_bulk(hello);
	acc->slot = hello->channel == PCD__WIRE__CHANNEL__CHANNEL_BULK ?
	    SESSION_BULK + (int)hello->bulk_index : SESSION_URGENT;
	session_chan_label(name, sizeof(name), hello->channel,
	    hello->bulk_index, acc->nbulk);
	protobuf_c_message_free_unpacked(&hello->base, NULL);
	chan_set_name(c, name);
	chan_set_timeout(c, MIG_LINK_TIMEOUT_MS);
	*out = c;
	return 0;
fail:
	if (r != -ECANCELED && r != -EALREADY)
		mig_post_refused(m, "peer %s: %s", p->name, chan_errmsg(c));
	if (hello != NULL)
		protobuf_c_message_free_unpacked(&hello->base, NULL);
	chan_free(c);
	return r;
}

/* Takes the next connection into peers[n] and starts its handshake: the
 * new count, or an error of the listener. */
static int
session_peer_add(struct session *s, struct session_peer *peers, size_t *n)
{
	struct session_peer *p = &peers[*n];
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[128] = "?", serv[16] = "?", why[384];
	int fd;

	fd = accept4(s->lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN)
			return 0;
		if (errno == EMFILE || errno == ENFILE) {
			struct pollfd q = { .fd = s->m->stopfd, .events = POLLIN };

			log_warn("migration %s: accept", s->m->id);
			poll(&q, 1, 200);	/* back off */
			return 0;
		}
		return -errno;
	}
	getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), serv,
	    sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV);
	snprintf(p->name, sizeof(p->name), "%s:%s", host, serv);
	chan_sock_setup(fd, MIG_LINK_TIMEOUT_MS);
	if (tls_handshake_start(s->tls, fd, s->m->tls.peer_name, &p->ssl, why,
	    sizeof(why)) < 0) {
		close(fd);
		mig_post_refused(s->m, "peer %s: %s", p->name, why);
		return 0;
	}
	p->fd = fd;
	p->deadline = now_ns() + SESSION_HANDSHAKE_MS * 1000000ull;
	p->events = POLLIN;
	(*n)++;
	return 0;
}

/* Installs an accepted channel in its slot (one already there is
 * replaced: the source gave up that attempt, e.g. another of its channels
 * failed to open, and tries again). */
static void
session_peer_channel(struct session *s, struct chan *c, const char *peer,
    struct session_acc *acc)
{
	struct chan **cs = acc->cs;
	int k = acc->slot;

	log_info("migration %s: %s channel from %s accepted", s->m->id,
	    chan_name(c), peer);
	/* The source opens the urgent channel first: bulk channels already
	 * here are from an attempt it gave up. */
	for (int j = SESSION_BULK; k == SESSION_URGENT && j < SESSION_CHANS;
	    j++) {
		if (cs[j] == NULL)
			continue;
		log_info("migration %s: %s channel of an abandoned attempt "
		    "dropped", s->m->id, chan_name(cs[j]));
		chan_free(cs[j]);
		cs[j] = NULL;
	}
	if (cs[k] != NULL) {
		log_info("migration %s: the new %s channel replaces one from an "
		    "abandoned attempt", s->m->id, chan_name(c));
		chan_free(cs[k]);
	}
	cs[k] = c;
}

/* Moves every handshake that poll found ready (pf[k] for peers[k]) or
 * whose deadline passed; a finished one goes on to its Hello. The peers
 * still pending stay, in order; their count is returned. */
static size_t
session_peers_step(struct session *s, struct session_peer *peers, size_t n,
    const struct pollfd *pf, session_have_fn fn, void *arg,
    struct session_acc *acc)
{
	uint64_t now = now_ns();
	size_t kept = 0;

	for (size_t k = 0; k < n; k++) {
		struct session_peer p = peers[k];
		struct chan *c = NULL;
		char why[384];
		int r = 0;

		if (pf[k].revents != 0)
			r = tls_handshake_step(s->tls, p.ssl, &p.events, why,
			    sizeof(why));
		if (r == 0 && now >= p.deadline) {
			snprintf(why, sizeof(why), "TLS handshake timed out "
			    "after %d ms", SESSION_HANDSHAKE_MS);
			r = -ETIMEDOUT;
		}
		if (r == 0) {
			peers[kept++] = p;
			continue;
		}
		if (r < 0) {
			mig_post_refused(s->m, "peer %s: %s", p.name, why);
			SSL_free(p.ssl);
			close(p.fd);
		} else if (session_accept_hello(s, &p, fn, arg, acc, &c) == 0)
			session_peer_channel(s, c, p.name, acc);
	}
	return kept;
}

/* The poll set: the listener (while there is room for one more
 * handshake), the stop eventfd, each pending handshake. The timeout: the
 * nearest deadline. */
static int
session_peers_poll(struct session *s, const struct session_peer *peers,
    size_t n, struct pollfd *pf)
{
	uint64_t now = now_ns(), next = UINT64_MAX;

	pf[0] = (struct pollfd){ .fd = n < SESSION_PEERS_MAX ? s->lfd : -1,
	    .events = POLLIN };
	pf[1] = (struct pollfd){ .fd = s->m->stopfd, .events = POLLIN };
	for (size_t k = 0; k < n; k++) {
		pf[2 + k] = (struct pollfd){ .fd = peers[k].fd,
		    .events = peers[k].events };
		if (peers[k].deadline < next)
			next = peers[k].deadline;
	}
	if (s->accept_until_ns != 0 && s->accept_until_ns < next)
		next = s->accept_until_ns;
	if (next == UINT64_MAX)
		return -1;
	return next <= now ? 0 : (int)((next - now) / 1000000) + 1;
}

/* The urgent channel and every bulk channel announced are here. */
static bool
session_acc_full(const struct session_acc *acc)
{
	if (acc->nbulk == 0)
		return false;
	for (uint32_t k = 0; k <= acc->nbulk; k++)
		if (acc->cs[k] == NULL)
			return false;
	return true;
}

int
session_accept(struct session *s, session_have_fn fn, void *arg)
{
	struct session_peer peers[SESSION_PEERS_MAX];
	struct pollfd pf[2 + SESSION_PEERS_MAX];
	struct session_acc acc = { .nbulk = 0 };
	size_t n = 0;
	int r = 0;

	while (r == 0 && !session_acc_full(&acc)) {
		int ms = session_peers_poll(s, peers, n, pf);

		if (s->accept_until_ns != 0 && now_ns() >= s->accept_until_ns) {
			r = -ETIMEDOUT;
			break;
		}
		if (poll(pf, 2 + n, ms) < 0) {
			if (errno != EINTR)
				r = -errno;
			continue;
		}
		if (pf[1].revents & POLLIN) {
			r = -ECANCELED;
			break;
		}
		n = session_peers_step(s, peers, n, pf + 2, fn, arg, &acc);
		if (pf[0].revents & POLLIN)
			r = session_peer_add(s, peers, &n);
	}
	for (size_t k = 0; k < n; k++) {
		if (r == 0)
			log_info("migration %s: peer %s dropped before its "
			    "handshake ended: the source's channels are up",
			    s->m->id, peers[k].name);
		SSL_free(peers[k].ssl);
		close(peers[k].fd);
	}
	if (r < 0) {
		for (int k = 0; k < SESSION_CHANS; k++)
			chan_free(acc.cs[k]);
		return r;
	}
	/* Slots past the count (a count never changes within a session:
	 * session_bulk_check) stay empty. */
	s->resumable = true;
	session_install(s, acc.cs, acc.nbulk);
	return 0;
}
