/* source.c - the source role of a migration.
 *
 * Threads (started when the migration is registered and the source VMM has
 * attached):
 *   main:   connects the bulk and urgent channels (TLS, Hello/Welcome),
 *           waits for the VMM to pause, sends Switchover{device state} on
 *           the urgent channel, then serves PageRequests on it until the
 *           destination reports Complete.
 *   bulk:   after the switchover streams every page not yet sent, in order
 *           from a cursor that requests move (all-zero runs as ZERO
 *           records), under the bandwidth limit; then the per-page digests.
 *           It also sends a Ping on each channel that would otherwise be
 *           silent for MIG_PING_MS, so the destination can tell a dead
 *           connection from an idle one.
 * Network loss: a channel that fails with a transient error (reset,
 * timeout, TLS record broken) ends the session: both channels are dropped,
 * the migration is PAUSED and the main thread reconnects to the
 * destination's listener with backoff, saying resume in Hello. The
 * destination's Welcome lists the pages it holds; every other page is
 * sent again (the destination drops copies it has), the Switchover is sent
 * again if it was lost, and the destination asks again for the pages its
 * guest waits on.
 * Pages are read from a read-only shared mapping of the VMM's memfd; page
 * payloads go from that mapping to SSL_write without a copy.
 */
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "chan.h"
#include "log.h"
#include "migration_int.h"
#include "tls.h"
#include "util.h"
#include "wire.h"

#define SRC_NO_HINT		UINT64_MAX
#define SRC_CONNECT_TIMEOUT_MS	15000
#define SRC_ZERO_RUN_MAX	4096	/* pages per ZERO record from bulk */

struct source {
	struct mig		*m;
	struct tls_ctx		*tls;
	struct chan		*bulk;
	struct chan		*urgent;
	pthread_t		 main_thr, bulk_thr;
	bool			 main_started, bulk_started;
	char			 addr[256];	/* [lock] destination */

	const uint8_t		*map;
	uint64_t		 npages;
	uint32_t		 ps;
	_Atomic uint64_t	*sent;		/* bitmap: page queued on a channel */
	uint64_t		*hole;		/* bitmap: page is a hole in the memfd */
	atomic_bool		 holes_ready;	/* hole is filled in (after pause) */
	uint64_t		 zero_hash;	/* XXH3-64 of an all-zero page */
	_Atomic uint64_t	 sent_count;
	_Atomic uint64_t	 cursor_hint;

	pthread_mutex_t		 lock;		/* below */
	pthread_cond_t		 cond;
	bool			 stop;
	bool			 paused;
	bool			 switched;	/* Switchover sent (dest has it) */
	bool			 broken;	/* this session's channels failed */
	bool			 kick;		/* reconnect now (Resume) */
	void			*devstate;
	size_t			 devstate_len;
	uint64_t		 paused_at_ms;
};

static bool
src_zero(struct source *s, uint64_t i)
{
	const uint64_t *q;
	uint32_t ps = s->ps;

	/* A hole reads as zeros; looking would allocate a page for it. */
	if (atomic_load_explicit(&s->holes_ready, memory_order_acquire) &&
	    ((s->hole[i >> 6] >> (i & 63)) & 1))
		return true;
	q = (const uint64_t *)(const void *)(s->map + i * ps);

	for (size_t k = 0; k < ps / 8; k += 8) {
		uint64_t acc = q[k] | q[k + 1] | q[k + 2] | q[k + 3] |
		    q[k + 4] | q[k + 5] | q[k + 6] | q[k + 7];
		if (acc != 0)
			return false;
	}
	return true;
}

/* Pages that are holes in the memfd (never written): zero without looking. */
static void
src_find_holes(struct source *s)
{
	off_t start = (off_t)s->m->g.offset, end = start + (off_t)s->m->g.size;
	off_t pos = start;
	uint64_t holes = 0;

	while (pos < end) {
		off_t h = lseek(s->m->g.memfd, pos, SEEK_HOLE), d;

		if (h < 0 || h >= end)
			break;
		d = lseek(s->m->g.memfd, h, SEEK_DATA);
		if (d < 0 || d > end)
			d = end;
		/* Whole pages inside [h, d). */
		for (uint64_t i = ((uint64_t)(h - start) + s->ps - 1) / s->ps;
		    i < (uint64_t)(d - start) / s->ps; i++) {
			s->hole[i >> 6] |= 1ull << (i & 63);
			holes++;
		}
		pos = d;
	}
	log_info("migration %s: %" PRIu64 " of %" PRIu64 " pages are holes "
	    "in the memfd (sent as zero runs without reading them)",
	    s->m->id, holes, s->npages);
}

/* Marks page i sent; counts it once. */
static bool
src_claim(struct source *s, uint64_t i)
{
	if (bm_set(s->sent, i))
		return false;
	atomic_fetch_add(&s->sent_count, 1);
	atomic_fetch_add_explicit(&s->m->c.pages_valid, 1, memory_order_relaxed);
	return true;
}

/* retry: retry refusals for a while (the first connect: the destination
 * may be a moment behind); a reconnect has its own backoff. */
static int
src_connect_tcp(struct source *s, bool retry, int *fdp, char *err,
    size_t errlen)
{
	char host[256], portstr[8];
	uint16_t port;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	uint64_t deadline = now_ns() + SRC_CONNECT_TIMEOUT_MS * 1000000ull;
	int fd = -1, r;
	char addr[256];

	pthread_mutex_lock(&s->lock);
	memcpy(addr, s->addr, sizeof(addr));
	pthread_mutex_unlock(&s->lock);
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
		fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			r = -errno;
			snprintf(err, errlen, "socket: %s", strerror(errno));
			break;
		}
		if (connect(fd, res->ai_addr, res->ai_addrlen) == 0) {
			r = 0;
			break;
		}
		r = -errno;
		close(fd);
		fd = -1;
		/* The destination may be a moment behind: retry refusals. */
		if (r != -ECONNREFUSED || !retry || now_ns() >= deadline) {
			snprintf(err, errlen, "cannot connect to %s: %s",
			    addr, strerror(-r));
			break;
		}
		struct pollfd p = { .fd = s->m->stopfd, .events = POLLIN };
		if (poll(&p, 1, 200) > 0) {
			snprintf(err, errlen, "cancelled");
			r = -ECANCELED;
			break;
		}
	}
	freeaddrinfo(res);
	if (r < 0)
		return r;
	chan_sock_setup(fd, MIG_LINK_TIMEOUT_MS);
	*fdp = fd;
	return 0;
}

/* Applies a resume Welcome: the destination holds exactly the pages it
 * lists (or more); everything else is sent again. Main thread, while no
 * sender runs. */
static int
src_apply_have(struct source *s, const Pcd__Wire__Welcome *w, char *err,
    size_t errlen)
{
	uint64_t words = (s->npages + 63) / 64, n = 0;

	for (size_t k = 0; k < w->n_have; k++) {
		const Pcd__Wire__PageRange *pr = w->have[k];

		if (pr == NULL || pr->first >= s->npages ||
		    pr->count > s->npages - pr->first) {
			snprintf(err, errlen, "resume: the destination claims "
			    "pages outside the guest (%" PRIu64 " pages)",
			    s->npages);
			return -EPROTO;
		}
	}
	for (uint64_t i = 0; i < words; i++)
		atomic_store(&s->sent[i], 0);
	for (size_t k = 0; k < w->n_have; k++)
		for (uint64_t i = w->have[k]->first;
		    i < w->have[k]->first + w->have[k]->count; i++)
			bm_set(s->sent, i);
	for (uint64_t i = 0; i < words; i++)
		n += (uint64_t)__builtin_popcountll(atomic_load(&s->sent[i]));
	atomic_store(&s->sent_count, n);
	atomic_store(&s->m->c.pages_valid, n);
	atomic_store(&s->cursor_hint, SRC_NO_HINT);
	pthread_mutex_lock(&s->lock);
	s->switched = w->switched;
	pthread_mutex_unlock(&s->lock);
	log_info("migration %s: resume: the destination holds %" PRIu64 " of %"
	    PRIu64 " pages%s", s->m->id, n, s->npages, w->switched ? "" :
	    " and lacks the device state");
	return 0;
}

/* Opens one channel: TCP, TLS, Hello -> Welcome. */
static int
src_open_channel(struct source *s, Pcd__Wire__Channel kind, bool resume,
    struct chan **out, char *err, size_t errlen)
{
	struct mig *m = s->m;
	const char *name = kind == PCD__WIRE__CHANNEL__CHANNEL_BULK ? "bulk" :
	    "urgent";
	Pcd__Wire__Hello hello = PCD__WIRE__HELLO__INIT;
	Pcd__Wire__Welcome *w = NULL;
	struct wire_limits lim = { 0, s->ps };
	struct wire_hdr h;
	struct chan *c = NULL;
	SSL *ssl = NULL;
	char why[256];
	int fd = -1, r;

	if ((r = src_connect_tcp(s, !resume, &fd, err, errlen)) < 0)
		return r;
	if ((r = tls_handshake(s->tls, fd, m->stopfd, m->tls.peer_name,
	    SRC_CONNECT_TIMEOUT_MS, &ssl, why, sizeof(why))) < 0) {
		snprintf(err, errlen, "%s channel to %s: %.300s", name, m->addr, why);
		close(fd);
		return r;
	}
	if ((r = chan_new(ssl, fd, m->stopfd, name, &c)) < 0) {
		SSL_free(ssl);
		close(fd);
		snprintf(err, errlen, "out of memory");
		return r;
	}
	hello.version = WIRE_VERSION;
	hello.migration_id = m->id;
	hello.channel = kind;
	hello.guest_size = m->g.size;
	hello.page_size = m->g.page_size;
	hello.resume = resume;
	chan_set_timeout(c, MIG_LINK_TIMEOUT_MS);
	if ((r = chan_send_msg(c, WIRE_HELLO, &hello.base)) < 0 ||
	    (r = chan_recv_hdr(c, &lim, &h)) < 0)
		goto chan_fail;
	if (h.type != WIRE_WELCOME) {
		r = chan_set_error(c, -EPROTO, "%s channel: expected WELCOME, "
		    "got %s", name, wire_type_name(h.type));
		goto chan_fail;
	}
	if ((r = chan_recv_msg(c, &h, (ProtobufCMessage **)&w)) < 0)
		goto chan_fail;
	if ((r = wire_welcome_check(w, s->npages, why, sizeof(why))) < 0) {
		if (r == -ECONNREFUSED)
			snprintf(err, errlen, "destination %s refused the %s "
			    "channel: %s", m->addr, name, why);
		else
			snprintf(err, errlen, "destination %s, %s channel: %s",
			    m->addr, name, why);
		goto fail;
	}
	if (resume && kind == PCD__WIRE__CHANNEL__CHANNEL_URGENT &&
	    (r = src_apply_have(s, w, err, errlen)) < 0)
		goto fail;
	protobuf_c_message_free_unpacked(&w->base, NULL);
	*out = c;
	return 0;
chan_fail:
	snprintf(err, errlen, "%s (destination %s)", chan_errmsg(c), m->addr);
fail:
	if (w != NULL)
		protobuf_c_message_free_unpacked(&w->base, NULL);
	chan_free(c);
	return r;
}

static bool
src_stopped(struct source *s)
{
	bool stop;

	pthread_mutex_lock(&s->lock);
	stop = s->stop;
	pthread_mutex_unlock(&s->lock);
	return stop;
}

/* Ends this session after an error on a channel: both channels fail so
 * every thread using them returns; the main thread decides what next. */
static void
src_break(struct source *s)
{
	pthread_mutex_lock(&s->lock);
	s->broken = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	chan_shutdown(s->urgent);
	chan_shutdown(s->bulk);
}

/* Sends a Ping when the channel has been quiet for MIG_PING_MS. */
static int
src_ping(struct source *s, struct chan *c, uint64_t *last_ns, uint64_t now)
{
	Pcd__Wire__Ping p = PCD__WIRE__PING__INIT;

	if (now - *last_ns < MIG_PING_MS * 1000000ull)
		return 0;
	*last_ns = now;
	p.seq = now;
	return chan_send_msg(c, WIRE_PING, &p.base);
}

/* Waits for the condition under the lock, pinging both channels. */
static int
src_wait_pinging(struct source *s, bool *flag, uint64_t *lb, uint64_t *lu)
{
	int r = 0;

	for (;;) {
		struct timespec ts;
		bool done;

		pthread_mutex_lock(&s->lock);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (MIG_PING_MS % 1000) * 1000000l;
		ts.tv_sec += MIG_PING_MS / 1000 + ts.tv_nsec / 1000000000l;
		ts.tv_nsec %= 1000000000l;
		if (!s->stop && !s->broken && (flag == NULL || !*flag))
			pthread_cond_timedwait(&s->cond, &s->lock, &ts);
		done = s->stop || s->broken || (flag != NULL && *flag);
		pthread_mutex_unlock(&s->lock);
		if (done)
			return 0;
		if ((r = src_ping(s, s->bulk, lb, now_ns())) < 0 ||
		    (r = src_ping(s, s->urgent, lu, now_ns())) < 0)
			return r;
	}
}

/* Sends pages [i, i+n) of one kind; n <= WIRE_MAX_BATCH for data. */
static int
src_send_run(struct source *s, struct chan *c, uint64_t i, uint32_t n, bool zero)
{
	struct wire_hdr h = {
		.type = zero ? WIRE_ZERO : WIRE_PAGES,
		.index = i,
		.count = n,
		.length = zero ? 0 : n * s->ps,
	};
	int r = chan_send_frame(c, &h, zero ? NULL : s->map + i * s->ps);

	if (r == 0) {
		atomic_fetch_add_explicit(&s->m->c.bytes, WIRE_HDR_LEN + h.length,
		    memory_order_relaxed);
		if (zero)
			atomic_fetch_add_explicit(&s->m->c.pages_zero, n,
			    memory_order_relaxed);
	}
	return r;
}

/* Sleeps as needed so the bulk stream stays under the limit. */
static void
src_throttle(struct source *s, uint64_t *epoch_ns, uint64_t *epoch_bytes,
    uint64_t *cur_bps, uint64_t sent)
{
	uint64_t bps = atomic_load(&s->m->bandwidth_bps);

	if (bps != *cur_bps) {
		*cur_bps = bps;
		*epoch_ns = now_ns();
		*epoch_bytes = sent;
	}
	while (bps != 0) {
		uint64_t due = (uint64_t)((double)(sent - *epoch_bytes) * 1e9 /
		    (double)bps);
		uint64_t el = now_ns() - *epoch_ns;
		struct pollfd p = { .fd = s->m->stopfd, .events = POLLIN };

		if (el >= due)
			return;
		if (poll(&p, 1, (int)((due - el) / 1000000 > 100 ? 100 :
		    (due - el) / 1000000 + 1)) > 0)
			return;
		if (atomic_load(&s->m->bandwidth_bps) != bps)
			return;		/* picked up on the next call */
	}
}

static int
src_send_digests(struct source *s)
{
	uint64_t *hash = malloc(WIRE_DIGEST_CHUNK * sizeof(uint64_t));
	int r = 0;

	if (hash == NULL)
		return chan_set_error(s->bulk, -ENOMEM, "out of memory");
	for (uint64_t first = 0; first < s->npages && r == 0;
	    first += WIRE_DIGEST_CHUNK) {
		Pcd__Wire__Digest d = PCD__WIRE__DIGEST__INIT;
		size_t n = s->npages - first < WIRE_DIGEST_CHUNK ?
		    s->npages - first : WIRE_DIGEST_CHUNK;

		for (size_t k = 0; k < n; k++) {
			uint64_t i = first + k;

			/* Reading a hole would allocate a page for it. */
			hash[k] = ((s->hole[i >> 6] >> (i & 63)) & 1) ?
			    s->zero_hash : XXH3_64bits(s->map + i * s->ps, s->ps);
		}
		d.first = first;
		d.n_hash = n;
		d.hash = hash;
		r = chan_send_msg(s->bulk, WIRE_DIGEST, &d.base);
	}
	free(hash);
	return r;
}

static bool
src_ended(struct source *s)
{
	bool end;

	pthread_mutex_lock(&s->lock);
	end = s->stop || s->broken;
	pthread_mutex_unlock(&s->lock);
	return end;
}

static void *
src_bulk_main(void *arg)
{
	struct source *s = arg;
	uint64_t pos = 0, sent_bytes = 0, epoch_ns = 0, epoch_bytes = 0, bps = 0;
	uint64_t lb = now_ns(), lu = now_ns(), t0, t1, t2, t3;
	int r;

	r = src_wait_pinging(s, &s->switched, &lb, &lu);
	if (r < 0 || src_ended(s))
		goto out;
	/* The guest is paused now: holes stay holes. (Before the pause the
	 * guest could still write to one.) Found once, by the first session's
	 * sender, before any reader looks (holes_ready). */
	t0 = now_ns();
	if (!atomic_load_explicit(&s->holes_ready, memory_order_acquire)) {
		src_find_holes(s);
		atomic_store_explicit(&s->holes_ready, true,
		    memory_order_release);
	}
	t1 = now_ns();

	while (r == 0 && atomic_load(&s->sent_count) < s->npages) {
		uint64_t hint = atomic_exchange(&s->cursor_hint, SRC_NO_HINT);
		uint32_t n, max;
		bool zero;

		if (hint != SRC_NO_HINT)
			pos = hint;
		if (pos >= s->npages)
			pos = 0;
		/* Skip whole words of sent pages. */
		if ((pos & 63) == 0 && pos + 64 <= s->npages &&
		    atomic_load_explicit(&s->sent[pos >> 6],
		    memory_order_relaxed) == UINT64_MAX) {
			pos += 64;
			continue;
		}
		if (!src_claim(s, pos)) {
			pos++;
			continue;
		}
		zero = src_zero(s, pos);
		max = zero ? SRC_ZERO_RUN_MAX : WIRE_MAX_BATCH;
		for (n = 1; n < max && pos + n < s->npages; n++) {
			if (bm_test(s->sent, pos + n) ||
			    src_zero(s, pos + n) != zero ||
			    !src_claim(s, pos + n))
				break;
		}
		r = src_send_run(s, s->bulk, pos, n, zero);
		atomic_fetch_add_explicit(&s->m->c.pages_bulk, n,
		    memory_order_relaxed);
		sent_bytes += WIRE_HDR_LEN + (zero ? 0 : (uint64_t)n * s->ps);
		pos += n;
		src_throttle(s, &epoch_ns, &epoch_bytes, &bps, sent_bytes);
		if (r == 0)
			r = src_ping(s, s->urgent, &lu, now_ns());
	}
	t2 = now_ns();
	if (r == 0)
		r = src_send_digests(s);
	t3 = now_ns();
	if (r == 0) {
		log_info("migration %s: bulk stream done: holes %" PRIu64 " ms, "
		    "%" PRIu64 " bytes of pages in %" PRIu64 " ms, digests %"
		    PRIu64 " ms", s->m->id, (t1 - t0) / 1000000, sent_bytes,
		    (t2 - t1) / 1000000, (t3 - t2) / 1000000);
		/* Keep both channels alive until the session ends. */
		r = src_wait_pinging(s, NULL, &lb, &lu);
	}
out:
	if (r < 0)
		src_break(s);
	return NULL;
}

/* Answers one PageRequest on the urgent channel. */
static int
src_serve_request(struct source *s, const Pcd__Wire__PageRequest *rq)
{
	uint64_t i = rq->index, end;
	char why[200];
	int r = 0;

	if (wire_page_request_check(rq, s->npages, why, sizeof(why)) < 0)
		return chan_set_error(s->urgent, -EPROTO, "urgent channel: %s",
		    why);
	end = i + rq->count;
	atomic_fetch_add_explicit(&s->m->c.requests, 1, memory_order_relaxed);
	/* Spatial locality: the bulk stream continues after this range. */
	atomic_store(&s->cursor_hint, end < s->npages ? end : 0);
	while (i < end && r == 0) {
		bool zero;
		uint32_t n = 1;

		/* The first page was demanded by a fault: always send it. The
		 * rest is read-ahead: skip what the bulk stream already sent. */
		if (i != rq->index && !src_claim(s, i)) {
			i++;
			continue;
		}
		zero = src_zero(s, i);
		if (i == rq->index) {
			/* The demanded page travels alone (one TLS record) so
			 * the destination maps it without waiting for the
			 * read-ahead behind it. */
			src_claim(s, i);
		} else {
			while (i + n < end && src_zero(s, i + n) == zero &&
			    src_claim(s, i + n))
				n++;
		}
		r = src_send_run(s, s->urgent, i, n, zero);
		atomic_fetch_add_explicit(&s->m->c.pages_urgent, n,
		    memory_order_relaxed);
		i += n;
	}
	return r;
}

/* Both channels of a session: urgent first (a resume Welcome on it says
 * what the destination holds), then bulk. */
static int
src_session_open(struct source *s, bool resume, char *err, size_t errlen)
{
	struct chan *u = NULL, *b = NULL;
	int r;

	if ((r = src_open_channel(s, PCD__WIRE__CHANNEL__CHANNEL_URGENT, resume,
	    &u, err, errlen)) < 0)
		return r;
	if ((r = src_open_channel(s, PCD__WIRE__CHANNEL__CHANNEL_BULK, resume,
	    &b, err, errlen)) < 0) {
		chan_free(u);
		return r;
	}
	pthread_mutex_lock(&s->lock);
	s->urgent = u;
	s->bulk = b;
	s->broken = false;
	pthread_mutex_unlock(&s->lock);
	if (pthread_create(&s->bulk_thr, NULL, src_bulk_main, s) != 0) {
		snprintf(err, errlen, "cannot start the bulk thread");
		return -EAGAIN;
	}
	s->bulk_started = true;
	return 0;
}

/* Ends a session: both channels fail, the sender is joined, the channels
 * are freed. Main thread. */
static void
src_session_close(struct source *s)
{
	struct chan *u, *b;

	src_break(s);
	if (s->bulk_started)
		pthread_join(s->bulk_thr, NULL);
	s->bulk_started = false;
	pthread_mutex_lock(&s->lock);
	u = s->urgent;
	b = s->bulk;
	s->urgent = s->bulk = NULL;
	pthread_mutex_unlock(&s->lock);
	chan_free(u);
	chan_free(b);
}

/* Runs a session: sends the Switchover once the VMM paused (unless the
 * destination has it), then serves page requests until Complete. 1 when
 * the migration is over (done or failed, posted), 0 when stopping, or the
 * error that ended the session (the channel's message in why). */
static int
src_session_run(struct source *s, char *why, size_t whylen)
{
	struct mig *m = s->m;
	struct wire_limits lim = { s->npages, s->ps };
	bool send_sw;
	int r;

	pthread_mutex_lock(&s->lock);
	while (!s->stop && !s->broken && !s->paused)
		pthread_cond_wait(&s->cond, &s->lock);
	send_sw = !s->stop && !s->broken && !s->switched;
	pthread_mutex_unlock(&s->lock);
	if (src_stopped(s))
		return 0;
	if (send_sw) {
		Pcd__Wire__Switchover sw = PCD__WIRE__SWITCHOVER__INIT;

		sw.device_state.data = s->devstate;
		sw.device_state.len = s->devstate_len;
		sw.paused_at_ms = s->paused_at_ms;
		if ((r = chan_send_msg(s->urgent, WIRE_SWITCHOVER, &sw.base)) < 0)
			goto chan_err;
		pthread_mutex_lock(&s->lock);
		s->switched = true;
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
		log_info("migration %s: switchover sent (%zu bytes of device "
		    "state)", m->id, s->devstate_len);
	}

	for (;;) {
		struct wire_hdr h;
		ProtobufCMessage *msg = NULL;

		if ((r = chan_recv_hdr(s->urgent, &lim, &h)) < 0)
			break;
		if (h.type == WIRE_PAGES || h.type == WIRE_ZERO ||
		    h.type == WIRE_HELLO || h.type == WIRE_SWITCHOVER) {
			r = chan_set_error(s->urgent, -EPROTO, "urgent channel: "
			    "unexpected %s frame from the destination",
			    wire_type_name(h.type));
			break;
		}
		if ((r = chan_recv_msg(s->urgent, &h, &msg)) < 0)
			break;
		if (h.type == WIRE_PAGE_REQUEST) {
			r = src_serve_request(s,
			    (const Pcd__Wire__PageRequest *)msg);
		} else if (h.type == WIRE_COMPLETE) {
			const Pcd__Wire__Complete *c =
			    (const Pcd__Wire__Complete *)msg;

			atomic_store(&m->c.pages_verified, c->pages_verified);
			atomic_store(&m->c.pages_mismatched, c->pages_mismatched);
			if (c->ok)
				mig_post(m, MIG_EV_DONE);
			else
				mig_post_fail(m, "destination reports failure: %s",
				    c->message ? c->message : "");
			protobuf_c_message_free_unpacked(msg, NULL);
			return 1;
		} else if (h.type == WIRE_ERROR) {
			const Pcd__Wire__Error *e = (const Pcd__Wire__Error *)msg;

			mig_post_fail(m, "destination reports an error: %s",
			    e->status && e->status->message ?
			    e->status->message : "(no message)");
			protobuf_c_message_free_unpacked(msg, NULL);
			return 1;
		}
		protobuf_c_message_free_unpacked(msg, NULL);
		if (r < 0)
			break;
	}
chan_err:
	if (src_stopped(s))
		return 0;
	/* The sender may have broken the session: its error is the cause. */
	if (chan_error(s->bulk) != 0 && chan_error(s->bulk) != -ECANCELED) {
		snprintf(why, whylen, "%s", chan_errmsg(s->bulk));
		return chan_error(s->bulk);
	}
	snprintf(why, whylen, "%s", chan_errmsg(s->urgent));
	return chan_error(s->urgent) != 0 ? chan_error(s->urgent) : r;
}

/* Waits before the next reconnect attempt; false when stopping. */
static bool
src_backoff(struct source *s, unsigned ms)
{
	struct timespec ts;
	bool stop;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += (long)(ms % 1000) * 1000000l;
	ts.tv_sec += ms / 1000 + ts.tv_nsec / 1000000000l;
	ts.tv_nsec %= 1000000000l;
	pthread_mutex_lock(&s->lock);
	while (!s->stop && !s->kick &&
	    pthread_cond_timedwait(&s->cond, &s->lock, &ts) == 0)
		;
	s->kick = false;
	stop = s->stop;
	pthread_mutex_unlock(&s->lock);
	return !stop;
}

static void *
src_main(void *arg)
{
	struct source *s = arg;
	struct mig *m = s->m;
	char err[1024], why[512];
	int r;

	if ((r = src_session_open(s, false, err, sizeof(err))) < 0) {
		if (r != -ECANCELED)
			mig_post_fail(m, "%s", err);
		return NULL;
	}
	log_info("migration %s: channels to %s up", m->id, m->addr);
	mig_post(m, MIG_EV_CONNECTED);	/* the loop pauses the VMM */

	for (;;) {
		unsigned delay = MIG_RECONNECT_MIN_MS, tries = 0;

		r = src_session_run(s, why, sizeof(why));
		if (r >= 0)
			return NULL;		/* over, or stopping */
		if (!chan_err_transient(r)) {
			mig_post_fail(m, "%s", why);
			return NULL;
		}
		src_session_close(s);
		log_warnx("migration %s: channels lost (%s); reconnecting",
		    m->id, why);
		mig_post_link(m, true, "channels lost: %s", why);
		for (;;) {
			if (!src_backoff(s, delay))
				return NULL;
			tries++;
			if ((r = src_session_open(s, true, err, sizeof(err))) == 0)
				break;
			if (src_stopped(s))
				return NULL;
			log_notice("migration %s: reconnect attempt %u failed: "
			    "%s", m->id, tries, err);
			mig_post_link(m, true, "channels lost: %s; reconnect "
			    "attempt %u failed: %s", why, tries, err);
			delay = delay * 2 > MIG_RECONNECT_MAX_MS ?
			    MIG_RECONNECT_MAX_MS : delay * 2;
		}
		atomic_fetch_add(&m->c.reconnects, 1);
		log_notice("migration %s: channels to the destination are back "
		    "(attempt %u)", m->id, tries);
		mig_post_link(m, false, "reconnected after %u attempt%s", tries,
		    tries == 1 ? "" : "s");
	}
}

int
source_start(struct mig *m, char *err, size_t errlen)
{
	struct source *s;
	int r;

	if (m->g.page_size < 512 || m->g.page_size > WIRE_MAX_PAGE_SIZE ||
	    m->g.size == 0 || m->g.size % m->g.page_size != 0) {
		snprintf(err, errlen, "unusable guest layout (size %" PRIu64
		    ", page size %" PRIu32 ")", m->g.size, m->g.page_size);
		return -EINVAL;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return -ENOMEM;
	s->m = m;
	str_copy(s->addr, m->addr, sizeof(s->addr));
	s->ps = m->g.page_size;
	s->npages = m->g.size / s->ps;
	atomic_store(&s->cursor_hint, SRC_NO_HINT);
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	m->src = s;
	s->sent = calloc((s->npages + 63) / 64, sizeof(*s->sent));
	if (s->sent == NULL) {
		r = -ENOMEM;
		snprintf(err, errlen, "out of memory for the page bitmap");
		goto fail;
	}
	{
		void *z = calloc(1, s->ps);

		if (z == NULL) {
			r = -ENOMEM;
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		s->zero_hash = XXH3_64bits(z, s->ps);
		free(z);
	}
	s->hole = calloc((s->npages + 63) / 64, sizeof(*s->hole));
	if (s->hole == NULL) {
		r = -ENOMEM;
		snprintf(err, errlen, "out of memory for the page bitmap");
		goto fail;
	}
	s->map = mmap(NULL, m->g.size, PROT_READ, MAP_SHARED,
	    m->g.memfd, (off_t)m->g.offset);
	if (s->map == MAP_FAILED) {
		r = -errno;
		s->map = NULL;
		snprintf(err, errlen, "cannot map the source memfd (%" PRIu64
		    " bytes at offset %" PRIu64 "): %s", m->g.size, m->g.offset,
		    strerror(-r));
		goto fail;
	}
	if ((r = tls_ctx_new(m->tls.dir, false, &s->tls, err, errlen)) < 0)
		goto fail;
	if (pthread_create(&s->main_thr, NULL, src_main, s) != 0) {
		r = -EAGAIN;
		snprintf(err, errlen, "cannot start the source thread");
		goto fail;
	}
	s->main_started = true;
	return 0;
fail:
	source_stop(m);
	return r;
}

void
source_paused(struct mig *m, const void *state, size_t len)
{
	struct source *s = m->src;

	if (s == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	if (!s->paused) {
		s->devstate = len ? malloc(len) : NULL;
		if (s->devstate != NULL)
			memcpy(s->devstate, state, len);
		s->devstate_len = s->devstate != NULL ? len : 0;
		s->paused_at_ms = m->pause_wall_ms;
		s->paused = true;
		pthread_cond_broadcast(&s->cond);
	}
	pthread_mutex_unlock(&s->lock);
}

int
source_resume(struct mig *m, const char *addr, char *err, size_t errlen)
{
	struct source *s = m->src;

	if (s == NULL) {
		snprintf(err, errlen, "migration '%s' has no channels yet", m->id);
		return -EINVAL;
	}
	pthread_mutex_lock(&s->lock);
	if (addr != NULL && addr[0] != '\0')
		str_copy(s->addr, addr, sizeof(s->addr));
	s->kick = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	/* Channels up: drop them; the main thread reconnects. The main
	 * thread frees channels only after taking them out under the lock. */
	pthread_mutex_lock(&s->lock);
	if (s->urgent != NULL) {
		chan_set_error(s->urgent, -ECONNRESET, "urgent channel: dropped "
		    "by a Resume request");
		chan_shutdown(s->urgent);
		chan_shutdown(s->bulk);
	}
	pthread_mutex_unlock(&s->lock);
	return 0;
}

void
source_stop(struct mig *m)
{
	struct source *s = m->src;

	if (s == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	s->stop = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	/* Channels are created by the main thread: join it first (the stop
	 * eventfd interrupts its waits), then the bulk thread. */
	if (s->main_started)
		pthread_join(s->main_thr, NULL);
	chan_shutdown(s->bulk);
	chan_shutdown(s->urgent);
	if (s->bulk_started)
		pthread_join(s->bulk_thr, NULL);
	chan_free(s->bulk);
	chan_free(s->urgent);
	tls_ctx_free(s->tls);
	if (s->map != NULL)
		munmap((void *)s->map, m->g.size);
	free(s->sent);
	free(s->hole);
	free(s->devstate);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s);
	m->src = NULL;
}
