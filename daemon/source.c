/* source.c - the source role of a migration.
 *
 * Threads (started when the migration is registered and the source VMM has
 * attached):
 *   main:   connects the bulk and urgent channels (TLS, Hello/Welcome),
 *           waits for the VMM to pause, sends Switchover{device state} on
 *           the urgent channel, then serves PageRequests on it until the
 *           destination reports Complete.
 *   bulk:   one per bulk channel (Migrate bulk_channels, 1 .. 16). The
 *           guest is cut into stripes of SRC_STRIPE_PAGES pages, stripe j
 *           sent by bulk sender j % nbulk. After the switchover each
 *           streams every page of its stripes not yet sent, in order from
 *           a cursor that requests move (all-zero runs as ZERO records),
 *           under its share of the bandwidth limit; once every sender is
 *           done, sender 0 sends the per-page digests. Sender 0 also runs
 *           the precopy rounds. Each sends a Ping on its channel (sender
 *           0: and on the urgent one) when it would otherwise be silent
 *           for MIG_PING_MS, so the destination can tell a dead
 *           connection from an idle one.
 * Network loss: a channel that fails with a transient error (reset,
 * timeout, TLS record broken) ends the session: every channel is dropped,
 * the migration is PAUSED and the main thread reconnects to the
 * destination's listener with backoff, saying resume in Hello. The
 * destination's Welcome lists the pages it holds; every other page is
 * sent again (the destination drops copies it has), the Switchover is sent
 * again if it was lost, and the destination asks again for the pages its
 * guest waits on.
 * Pages are read from a read-only shared mapping of the VMM's memfd; bulk
 * frames go from that mapping to SSL_write without a copy (a frame of 16
 * KiB or less, such as a demanded page, is copied into one TLS record,
 * chan.c). The channels, their handshake and pings are session.c's.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "chan.h"
#include "dirty.h"
#include "log.h"
#include "prio.h"
#include "migration_int.h"
#include "session.h"
#include "source_int.h"
#include "status.h"
#include "util.h"
#include "wire.h"

/* Applies a resume Welcome: the destination holds exactly the pages it
 * lists (or more); everything else is sent again. Main thread, while no
 * sender runs. */
static int
src_apply_have(void *arg, const Pcd__Wire__Welcome *w, char *err,
    size_t errlen)
{
	struct source *s = arg;
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
	src_recount(s);
	n = atomic_load(&s->sent_count);
	src_valid_raise(s, n);
	pthread_mutex_lock(&s->s.lock);
	s->switched = w->switched;
	pthread_mutex_unlock(&s->s.lock);
	log_info("migration %s: resume: the destination holds %" PRIu64 " of %"
	    PRIu64 " pages%s", s->m->id, n, s->npages, w->switched ? "" :
	    " and lacks the device state");
	src_precopy_have(s, w);
	return 0;
}

static bool
src_switched(void *arg)
{
	struct source *s = arg;

	return s->switched;
}

int
src_wait_pinging(struct source *s, uint32_t k, bool (*done)(void *))
{
	int r;

	while (session_wait(&s->s, done, s, MIG_PING_MS) == SESSION_TIMEOUT) {
		if ((r = session_ping_due(&s->s, SESSION_BULK + k)) < 0 ||
		    (k == 0 && (r = session_ping_due(&s->s,
		    SESSION_URGENT)) < 0))
			return r;
	}
	return 0;
}

static bool
src_urgent_idle(void *arg)
{
	struct source *s = arg;

	return !atomic_load(&s->urgent_busy);
}

/* Huge pages: while the main thread sends demanded huge pages, each bulk
 * sender waits (at most SRC_YIELD_MS) instead of encrypting and sending bulk data on the
 * same CPUs and path. Counted: how often, and how often the wait ran out. */
static void
src_yield(struct source *s)
{
	if (!atomic_load_explicit(&s->urgent_busy, memory_order_relaxed))
		return;
	atomic_fetch_add_explicit(&s->yields, 1, memory_order_relaxed);
	if (session_wait(&s->s, src_urgent_idle, s, SRC_YIELD_MS) ==
	    SESSION_TIMEOUT)
		atomic_fetch_add_explicit(&s->yields_capped, 1,
		    memory_order_relaxed);
}

/* The first page of the next stripe of sender k after page pos (wrapping
 * to the guest's start past its end). */
static uint64_t
src_next_stripe(const struct source *s, uint32_t k, uint64_t pos)
{
	uint64_t j = pos / s->stripe, step = (k + s->nbulk - j % s->nbulk) %
	    s->nbulk;

	j += step == 0 ? s->nbulk : step;
	return j * s->stripe < s->npages ? j * s->stripe : 0;
}

/* Streams every page of sender b's stripes not sent yet, from a cursor
 * that page requests move; sender 0 pings the urgent channel when it is
 * quiet. */
static int
src_stream(struct src_bulk *b, struct chan *c, uint64_t *sent_bytes)
{
	struct source *s = b->s;
	uint64_t pos = 0, epoch_ns = 0, epoch_bytes = 0, bps = 0;
	int r = 0;

	while (r == 0 && atomic_load(&b->sent) < b->total) {
		uint64_t hint, lim;
		uint32_t n;
		bool zero;

		/* Before the hint: the demand just served moves it. */
		src_yield(s);
		hint = atomic_exchange(&b->hint, SRC_NO_HINT);
		if (hint != SRC_NO_HINT)
			pos = hint;
		if (pos >= s->npages)
			pos = 0;
		if (src_owner(s, pos) != b->k) {
			pos = src_next_stripe(s, b->k, pos);
			continue;
		}
		lim = (pos / s->stripe + 1) * s->stripe;
		if (lim > s->npages)
			lim = s->npages;
		/* Skip whole words of sent pages (stripes are whole words). */
		if ((pos & 63) == 0 && pos + 64 <= lim &&
		    atomic_load_explicit(&s->sent[pos >> 6],
		    memory_order_relaxed) == UINT64_MAX) {
			pos += 64;
			continue;
		}
		if ((n = src_bulk_run(s, &b->view, pos, lim, &zero)) == 0) {
			pos++;
			continue;
		}
		r = src_send_run(s, &b->view, c, pos, n, zero);
		atomic_fetch_add_explicit(&s->c->pages_bulk, n,
		    memory_order_relaxed);
		*sent_bytes += WIRE_HDR_LEN + (zero ? 0 : (uint64_t)n * s->ps);
		pos += n;
		src_throttle(s, s->nbulk, &epoch_ns, &epoch_bytes, &bps,
		    *sent_bytes);
		if (r == 0 && b->k == 0)
			r = session_ping_due(&s->s, SESSION_URGENT);
	}
	return r;
}

/* Senders after the first stream once the switchover is out and the
 * first sender found the holes. */
static bool
src_stream_ready(void *arg)
{
	struct source *s = arg;

	return s->switched && atomic_load_explicit(&s->holes_ready,
	    memory_order_acquire);
}

/* Every sender's stripes are sent: the digests may go. */
static bool
src_streams_done(void *arg)
{
	struct source *s = arg;

	return atomic_load(&s->streams_done) == s->nbulk;
}

/* Sender 0 before its stream: the precopy rounds and the stale list,
 * the switchover, the holes (once: the guest is paused now, so holes stay
 * holes; before any reader looks, holes_ready). 1 when the session ended. */
static int
src_bulk_first(struct src_bulk *b, struct chan *c)
{
	struct source *s = b->s;
	int r;

	if ((r = src_precopy_run(s, c)) < 0)
		return r;
	r = src_wait_pinging(s, 0, src_switched);
	if (r < 0 || session_ended(&s->s))
		return r < 0 ? r : 1;
	if (!atomic_load_explicit(&s->holes_ready, memory_order_acquire)) {
		if ((r = src_find_holes(s, c)) < 0)
			return r;
		atomic_store_explicit(&s->holes_ready, true,
		    memory_order_release);
		session_kick(&s->s);
	}
	return 0;
}

static void src_session_close(struct source *s);

static void *
src_bulk_main(void *arg)
{
	struct src_bulk *b = arg;
	struct source *s = b->s;
	struct chan *c = session_chan(&s->s, SESSION_BULK + b->k);
	uint64_t sent_bytes = 0, t0, t1, t2;
	int r;

	prio_normal_thread();	/* started by the (real-time) urgent thread */

	t0 = now_ns();
	if (b->k == 0)
		r = src_bulk_first(b, c);
	else if ((r = src_wait_pinging(s, b->k, src_stream_ready)) == 0 &&
	    session_ended(&s->s))
		r = 1;
	if (r != 0)
		goto out;
	t1 = now_ns();
	r = src_stream(b, c, &sent_bytes);
	t2 = now_ns();
	if (r == 0)
		log_info("migration %s: bulk stream %" PRIu32 " of %" PRIu32
		    " done: %" PRIu64 " bytes of pages in %" PRIu64 " ms (after "
		    "%" PRIu64 " ms of precopy, switchover and holes)", s->m->id,
		    b->k, s->nbulk, sent_bytes, (t2 - t1) / 1000000,
		    (t1 - t0) / 1000000);
	atomic_fetch_add(&s->streams_done, 1);
	session_kick(&s->s);
	if (r == 0 && b->k == 0 &&
	    (r = src_wait_pinging(s, 0, src_streams_done)) == 0 &&
	    !session_ended(&s->s)) {
		t1 = now_ns();
		r = src_send_digests(s, &b->view, c);
		log_info("migration %s: digests sent in %" PRIu64 " ms, %"
		    PRIu64 " ms after this stream", s->m->id,
		    (now_ns() - t1) / 1000000, (t1 - t2) / 1000000);
		if (s->upp > 1)
			log_info("migration %s: the bulk stream yielded %" PRIu64
			    " times to demanded huge pages (%" PRIu64 " waits "
			    "ran out after %d ms)", s->m->id,
			    atomic_load(&s->yields),
			    atomic_load(&s->yields_capped), SRC_YIELD_MS);
	}
	/* Keep the channels alive until the session ends. */
	if (r == 0)
		r = src_wait_pinging(s, b->k, NULL);
out:
	if (r < 0)
		session_break(&s->s);
	return NULL;
}

/* A whole request (huge pages) in an all-zero huge page: the huge page
 * goes as one ZERO run, the first time it is asked for in this session;
 * the rest of its pieces, asked for after it, went with it. 1 when done
 * (or r < 0), 0 when the huge page is not all zero. Main thread. */
static int
src_serve_zero_unit(struct source *s, struct chan *c, uint64_t i, int *r)
{
	uint64_t first = i - i % s->upp;

	if (first != s->urg_unit) {
		s->urg_unit = first;
		s->urg_view.ahead = SRC_VIEW_PAGES;
		s->urg_zero = src_zero_unit(s, &s->urg_view, first);
		s->urg_sent = false;
	}
	if (!s->urg_zero)
		return 0;
	if (s->urg_sent)
		return 1;
	for (uint64_t k = 0; k < s->upp; k++)
		src_claim(s, first + k);
	/* The bulk stream continues after it (not inside it). */
	src_hint(s, first + s->upp);
	*r = src_send_run(s, &s->urg_view, c, first, s->upp, true);
	atomic_fetch_add_explicit(&s->c->pages_urgent, s->upp,
	    memory_order_relaxed);
	atomic_fetch_add_explicit(&s->zero_units, 1, memory_order_relaxed);
	s->urg_sent = true;
	return 1;
}

/* Answers one PageRequest on the urgent channel. */
static int
src_serve_request(struct source *s, struct chan *c,
    const Pcd__Wire__PageRequest *rq)
{
	uint64_t i = rq->index, end, hint;
	char why[200];
	int r = 0;

	if (wire_page_request_check(rq, s->npages, why, sizeof(why)) < 0)
		return chan_set_error(c, -EPROTO, "urgent channel: %s", why);
	hint = i + rq->count;
	end = i + rq->count;
	atomic_fetch_add_explicit(&s->c->requests, 1, memory_order_relaxed);
	if (rq->whole && s->upp > 1) {
		/* A demanded huge page: the bulk stream waits, and continues
		 * after this huge page (not inside it: its pieces go here). */
		atomic_store(&s->urgent_busy, true);
		hint = i - i % s->upp + s->upp;
		if (src_serve_zero_unit(s, c, i, &r))
			return r;
	}
	/* Spatial locality: the bulk stream continues after this range. */
	src_hint(s, hint);
	/* Read what is asked for (the demanded page, its read-ahead), not
	 * more: the first page is on the guest's critical path. */
	s->urg_view.ahead = (uint32_t)(end - i < SRC_VIEW_PAGES ? end - i :
	    SRC_VIEW_PAGES);
	while (i < end && r == 0) {
		bool zero;
		uint32_t n = 1;

		/* The first page was demanded by a fault: always send it. The
		 * rest is read-ahead: skip what the bulk stream already sent;
		 * unless the whole range is demanded (a huge page). */
		if (i != rq->index && !src_claim(s, i) && !rq->whole) {
			i++;
			continue;
		}
		zero = src_zero(s, &s->urg_view, i);
		if (i == rq->index) {
			/* The demanded page travels alone (one TLS record) so
			 * the destination maps it without waiting for the
			 * read-ahead behind it. */
			src_claim(s, i);
		} else {
			while (i + n < end && src_zero(s, &s->urg_view, i + n) ==
			    zero &&
			    (src_claim(s, i + n) || rq->whole))
				n++;
		}
		r = src_send_run(s, &s->urg_view, c, i, n, zero);
		atomic_fetch_add_explicit(&s->c->pages_urgent, n,
		    memory_order_relaxed);
		i += n;
	}
	return r;
}

/* The channels of a session (session.c), then the bulk senders. */
static int
src_session_open(struct source *s, bool resume, char *err, size_t errlen)
{
	char addr[sizeof(s->addr)];
	int r;

	pthread_mutex_lock(&s->s.lock);
	memcpy(addr, s->addr, sizeof(addr));
	pthread_mutex_unlock(&s->s.lock);
	s->urg_sent = false;	/* a new channel: send it again if asked */
	atomic_store(&s->urgent_busy, false);
	if ((r = session_connect(&s->s, addr, resume, src_apply_have, s, err,
	    errlen)) < 0)
		return r;
	atomic_store(&s->streams_done, 0);
	for (uint32_t k = 0; k < s->nbulk; k++) {
		struct src_bulk *b = &s->bulk[k];
		char name[32];	/* k < 16: 15 bytes at most */

		if (pthread_create(&b->thr, NULL, src_bulk_main, b) != 0) {
			src_session_close(s);
			snprintf(err, errlen, "cannot start bulk thread %" PRIu32,
			    k);
			return -EAGAIN;
		}
		/* pcd-src-bulk, as before, when there is one. */
		snprintf(name, sizeof(name), k == 0 ? "pcd-src-bulk" :
		    "pcd-src-bulk%" PRIu32, k);
		pthread_setname_np(b->thr, name);
		b->started = true;
	}
	return 0;
}

/* Joins the bulk senders (their session broken or stopped). */
static void
src_join_bulk(struct source *s)
{
	for (uint32_t k = 0; k < s->nbulk; k++) {
		if (s->bulk[k].started)
			pthread_join(s->bulk[k].thr, NULL);
		s->bulk[k].started = false;
	}
}

/* Ends a session: every channel fails, the senders are joined, the
 * channels are freed. Main thread. */
static void
src_session_close(struct source *s)
{
	session_break(&s->s);
	src_join_bulk(s);
	session_close(&s->s);
}

/* The VMM paused, and after precopy the stale list is out. */
static bool
src_paused(void *arg)
{
	struct source *s = arg;

	return s->paused && (!s->precopy || s->final_sent);
}

static int src_serve_frame(struct source *s, struct chan *c);

/* Waits for the VMM's pause (0), reading the urgent channel meanwhile: the
 * destination may cancel (1: over) before it has the Switchover. 0 too
 * when the session ends, or the error of the channel. */
static int
src_wait_paused(struct source *s, struct chan *c)
{
	enum session_wake w;
	int r = 0;

	while ((w = session_wait(&s->s, src_paused, s, SRC_PEEK_MS)) ==
	    SESSION_TIMEOUT && r == 0) {
		if (chan_readable(c))
			r = src_serve_frame(s, c);
	}
	return r != 0 ? r : w == SESSION_DONE ? 0 : 2;
}

/* Sends the Switchover once the VMM paused, unless the destination has it
 * (a resume Welcome says so). 1: the migration is over (the destination
 * cancelled). */
static int
src_switchover(struct source *s, struct chan *c)
{
	Pcd__Wire__Switchover sw = PCD__WIRE__SWITCHOVER__INIT;
	bool send_sw;
	int r;

	if ((r = src_wait_paused(s, c)) != 0)
		return r == 2 ? 0 : r;
	pthread_mutex_lock(&s->s.lock);
	send_sw = !s->switched;
	pthread_mutex_unlock(&s->s.lock);
	if (!send_sw)
		return 0;
	sw.device_state.data = s->devstate;
	sw.device_state.len = s->devstate_len;
	sw.paused_at_ms = s->paused_at_ms;
	sw.after_precopy = s->precopy;
	sw.converged = atomic_load(&s->converged);
	if ((r = chan_send_msg(c, WIRE_SWITCHOVER, &sw.base)) < 0)
		return r;
	pthread_mutex_lock(&s->s.lock);
	s->switched = true;
	pthread_cond_broadcast(&s->s.cond);
	pthread_mutex_unlock(&s->s.lock);
	log_info("migration %s: switchover sent (%zu bytes of device state)",
	    s->m->id, s->devstate_len);
	log_timeline(s->m->id, "source urgent thread: Switchover sent");
	return 0;
}

/* The destination cancelled before it had the Switchover (it refuses a
 * Cancel once it has it): the guest has not left. Not paused yet: this
 * side is cancelled too. Paused already (the Switchover was on its way):
 * the migration fails and the VMM resumes the guest here, which the
 * destination never ran. */
static void
src_on_cancel(struct source *s, const char *why)
{
	bool paused;

	pthread_mutex_lock(&s->s.lock);
	paused = s->paused;
	pthread_mutex_unlock(&s->s.lock);
	if (paused)
		mig_post_fail(s->m, "the destination cancelled the migration "
		    "before the switchover reached it (%s): the guest resumes "
		    "on the source", why);
	else
		mig_post_cancel(s->m, "the destination cancelled the "
		    "migration: %s", why);
}

/* The destination's verdict (Complete) or Error: posted; the migration is
 * over. */
static void
src_on_end(struct source *s, unsigned type, const ProtobufCMessage *msg)
{
	struct mig *m = s->m;
	const Pcd__Wire__Complete *c = (const Pcd__Wire__Complete *)msg;
	const Pcd__Wire__Error *e = (const Pcd__Wire__Error *)msg;

	if (type == WIRE_ERROR && e->status != NULL &&
	    e->status->code == STATUS_CANCELLED) {
		src_on_cancel(s, e->status->message ? e->status->message : "");
		return;
	}
	if (type == WIRE_ERROR) {
		mig_post_fail(m, "destination reports an error: %s",
		    e->status && e->status->message ? e->status->message :
		    "(no message)");
		return;
	}
	atomic_store(&s->c->pages_verified, c->pages_verified);
	atomic_store(&s->c->pages_mismatched, c->pages_mismatched);
	if (s->upp > 1)
		log_info("migration %s: %" PRIu64 " all-zero huge pages sent "
		    "whole in ZERO runs (no page bytes)", m->id,
		    atomic_load(&s->zero_units));
	if (c->ok)
		mig_post(m, MIG_EV_DONE);
	else
		mig_post_fail(m, "destination reports failure: %s",
		    c->message ? c->message : "");
}

/* One frame of the urgent channel: a page request served (0), Complete or
 * Error (1: over), or the error. */
static int
src_serve_frame(struct source *s, struct chan *c)
{
	struct wire_limits lim = { s->npages, s->ps };
	struct wire_hdr h;
	ProtobufCMessage *msg = NULL;
	int r;

	if ((r = chan_recv_hdr(c, &lim, &h)) < 0)
		return r;
	if (h.type == WIRE_PAGES || h.type == WIRE_ZERO ||
	    h.type == WIRE_HELLO || h.type == WIRE_SWITCHOVER)
		return chan_set_error(c, -EPROTO, "urgent channel: unexpected "
		    "%s frame from the destination", wire_type_name(h.type));
	if ((r = chan_recv_msg(c, &h, &msg)) < 0)
		return r;
	if (h.type == WIRE_PAGE_REQUEST) {
		r = src_serve_request(s, c, (const Pcd__Wire__PageRequest *)msg);
	} else if (h.type == WIRE_COMPLETE || h.type == WIRE_ERROR) {
		src_on_end(s, h.type, msg);
		r = 1;
	}
	protobuf_c_message_free_unpacked(msg, NULL);
	return r;
}

/* Serves the urgent channel: page requests until Complete or Error (1),
 * or the error that ended the session. */
static int
src_serve(struct source *s, struct chan *c)
{
	int r = 0;

	while (r == 0) {
		r = src_serve_frame(s, c);
		/* No request left to read: the demanded huge pages are out,
		 * the bulk stream goes on. */
		if (atomic_load(&s->urgent_busy) && (r != 0 ||
		    !chan_readable(c))) {
			atomic_store(&s->urgent_busy, false);
			session_kick(&s->s);
		}
	}
	return r;
}

/* Runs a session: the Switchover, then page requests until Complete. 1
 * when the migration is over (done or failed, posted), 0 when stopping, or
 * the error that ended the session (the channel's message in why). */
static int
src_session_run(struct source *s, char *why, size_t whylen)
{
	struct chan *c = session_chan(&s->s, SESSION_URGENT);
	int r;

	if ((r = src_switchover(s, c)) > 0)
		return 1;
	if (r == 0 && !session_ended(&s->s) && (r = src_serve(s, c)) > 0)
		return 1;
	if (session_stopped(&s->s))
		return 0;
	/* The sender may have broken the session: its error is the cause. */
	return session_error(&s->s, why, whylen);
}

static bool
src_kicked(void *arg)
{
	struct source *s = arg;

	return s->kick;
}

/* Waits before the next reconnect attempt (a Resume request cuts it
 * short); false when stopping. */
static bool
src_backoff(struct source *s, unsigned ms)
{
	enum session_wake w = session_wait(&s->s, src_kicked, s, (int)ms);

	pthread_mutex_lock(&s->s.lock);
	s->kick = false;
	pthread_mutex_unlock(&s->s.lock);
	return w != SESSION_STOPPED;
}

/* A reconnect found the destination completed (its Complete was lost in
 * a cut): its verdict ends the migration as Complete would have. */
static void
src_on_peer_done(struct source *s, const char *err)
{
	const struct session_verdict *v = &s->s.peer_done;
	Pcd__Wire__Complete c = PCD__WIRE__COMPLETE__INIT;

	log_notice("migration %s: %s: %" PRIu64 " pages verified, %" PRIu64
	    " mismatched", s->m->id, err, v->verified, v->mismatched);
	c.ok = v->ok;
	c.pages_verified = v->verified;
	c.pages_mismatched = v->mismatched;
	c.message = (char *)v->message;
	src_on_end(s, WIRE_COMPLETE, &c.base);
}

/* After a session was lost: reconnects with backoff until it is back (0),
 * the destination says it completed (1: over, posted) or the migration
 * stops (-ECANCELED). */
static int
src_reconnect(struct source *s, const char *why)
{
	struct mig *m = s->m;
	unsigned delay = MIG_RECONNECT_MIN_MS, tries = 0;
	char err[1024];
	int r;

	for (;;) {
		if (!src_backoff(s, delay))
			return -ECANCELED;
		tries++;
		if ((r = src_session_open(s, true, err, sizeof(err))) == 0)
			break;
		if (r == -EALREADY) {
			src_on_peer_done(s, err);
			return 1;
		}
		if (session_stopped(&s->s))
			return -ECANCELED;
		log_notice("migration %s: reconnect attempt %u failed: %s",
		    m->id, tries, err);
		mig_post_link(m, true, "channels lost: %s; reconnect attempt "
		    "%u failed: %s", why, tries, err);
		delay = delay * 2 > MIG_RECONNECT_MAX_MS ? MIG_RECONNECT_MAX_MS :
		    delay * 2;
	}
	atomic_fetch_add(&s->c->reconnects, 1);
	log_notice("migration %s: channels to the destination are back "
	    "(attempt %u)", m->id, tries);
	mig_post_link(m, false, "reconnected after %u attempt%s", tries,
	    tries == 1 ? "" : "s");
	return 0;
}

static void *
src_main(void *arg)
{
	struct source *s = arg;
	struct mig *m = s->m;
	char err[1024], why[512];
	int r;

	prio_demand_thread("source urgent");
	if (s->restored) {
		/* Picked up after a restart: switched over, paused, the
		 * channels gone; a resume as after a loss. */
		mig_post(m, MIG_EV_RESTORED);
		mig_post_link(m, true, "picked up after a restart of this "
		    "daemon: reconnecting to %s", m->addr);
		if (src_reconnect(s, "picked up after a restart") != 0)
			return NULL;
	} else if ((r = src_session_open(s, false, err, sizeof(err))) < 0) {
		if (r != -ECANCELED)
			mig_post_fail(m, "%s", err);
		return NULL;
	} else {
		log_info("migration %s: channels to %s up", m->id, m->addr);
		mig_post(m, MIG_EV_CONNECTED);	/* the loop pauses the VMM */
	}
	for (;;) {
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
		if (src_reconnect(s, why) != 0)
			return NULL;
	}
}

/* The source's view of the guest: the bitmaps and a read-only mapping. */
static int
src_setup(struct source *s, char *err, size_t errlen)
{
	struct mig *m = s->m;
	void *z;
	int r;

	s->sent = calloc((s->npages + 63) / 64, sizeof(*s->sent));
	s->hole = calloc((s->npages + 63) / 64, sizeof(*s->hole));
	s->hashed = calloc((s->npages + 63) / 64, sizeof(*s->hashed));
	s->hash = calloc(s->npages, sizeof(*s->hash));
	z = calloc(1, s->ps);
	if (s->sent == NULL || s->hole == NULL || s->hashed == NULL ||
	    s->hash == NULL || z == NULL) {
		free(z);
		snprintf(err, errlen, "out of memory for the page bitmaps");
		return -ENOMEM;
	}
	s->zero_hash = XXH3_64bits(z, s->ps);
	free(z);
	/* A bulk sender reads a frame ahead; a page request, what it asks. */
	for (uint32_t k = 0; k < s->nbulk; k++)
		if (src_view_init(s, &s->bulk[k].view, SRC_VIEW_PAGES) < 0) {
			snprintf(err, errlen, "out of memory for the page "
			    "buffers");
			return -ENOMEM;
		}
	if (src_view_init(s, &s->urg_view, 1) < 0) {
		snprintf(err, errlen, "out of memory for the page buffers");
		return -ENOMEM;
	}
	s->map = mmap(NULL, m->g.size, PROT_READ, MAP_SHARED, m->g.memfd,
	    (off_t)m->g.offset);
	if (s->map == MAP_FAILED) {
		r = -errno;
		s->map = NULL;
		snprintf(err, errlen, "cannot map the source memfd (%" PRIu64
		    " bytes at offset %" PRIu64 "): %s", m->g.size, m->g.offset,
		    strerror(-r));
		return r;
	}
	return 0;
}

/* The bulk senders and their stripes: whole huge pages, whole bitmap
 * words. */
static void
src_stripes(struct source *s, uint32_t nbulk)
{
	s->nbulk = nbulk >= 1 && nbulk <= WIRE_BULK_CHANNELS_MAX ? nbulk : 1;
	s->stripe = s->upp > SRC_STRIPE_PAGES ? s->upp : SRC_STRIPE_PAGES;
	session_set_bulk(&s->s, s->nbulk);
	for (uint32_t k = 0; k < s->nbulk; k++) {
		s->bulk[k].s = s;
		s->bulk[k].k = k;
		atomic_store(&s->bulk[k].hint, SRC_NO_HINT);
	}
	for (uint64_t j = 0; j * s->stripe < s->npages; j++) {
		uint64_t end = (j + 1) * s->stripe;

		s->bulk[j % s->nbulk].total += (end < s->npages ? end :
		    s->npages) - j * s->stripe;
	}
}

int
source_start(struct mig *m, char *err, size_t errlen)
{
	struct source *s;
	/* A huge-page guest is moved in 4 KiB pieces, in huge-page order. */
	uint32_t ps = vmm_piece_size(m->g.page_size);
	int r;

	if (ps < 512 || ps > WIRE_MAX_PAGE_SIZE || m->g.size == 0 ||
	    m->g.size % m->g.page_size != 0) {
		snprintf(err, errlen, "unusable guest layout (size %" PRIu64
		    ", page size %" PRIu32 ")", m->g.size, m->g.page_size);
		return -EINVAL;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return -ENOMEM;
	s->m = m;
	s->c = &m->c;
	str_copy(s->addr, m->addr, sizeof(s->addr));
	s->ps = ps;
	s->npages = m->g.size / s->ps;
	s->upp = m->g.page_size > ps ? m->g.page_size / ps : 1;
	s->urg_unit = UINT64_MAX;
	session_init(&s->s, m);
	session_set_guest(&s->s, s->npages, s->ps);
	src_stripes(s, m->bulk_channels);
	m->src = s;
	s->precopy = m->precopy;
	s->dirty = m->precopy ? vmm_session_dirty(m->vmm) : NULL;
	if (s->precopy)
		precopy_init(&s->pc, &m->pol, s->npages);
	if (s->precopy && src_precopy_setup(s) < 0) {
		r = -ENOMEM;
		snprintf(err, errlen, "out of memory for the precopy bitmap");
		goto fail;
	}
	if ((r = src_setup(s, err, errlen)) < 0 ||
	    (r = m->g.reattach ? src_state_load(s, err, errlen) :
	    session_new_token(&s->s, err, errlen)) < 0 ||
	    (r = session_tls(&s->s, false, err, errlen)) < 0)
		goto fail;
	if (pthread_create(&s->main_thr, NULL, src_main, s) != 0) {
		r = -EAGAIN;
		snprintf(err, errlen, "cannot start the source thread");
		goto fail;
	}
	pthread_setname_np(s->main_thr, "pcd-src-urgent");
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
	pthread_mutex_lock(&s->s.lock);
	if (!s->paused) {
		s->devstate = len ? malloc(len) : NULL;
		if (s->devstate != NULL)
			memcpy(s->devstate, state, len);
		s->devstate_len = s->devstate != NULL ? len : 0;
		s->paused_at_ms = m->pause_wall_ms;
		s->paused = true;
		pthread_cond_broadcast(&s->s.cond);
	}
	pthread_mutex_unlock(&s->s.lock);
}

bool
source_stop_rounds(struct mig *m)
{
	struct source *s = m->src;

	if (s == NULL || !s->precopy)
		return false;
	return !atomic_exchange(&s->switch_req, true);
}

bool
source_rounds_stopped(struct mig *m, bool *converged)
{
	struct source *s = m->src;

	*converged = s != NULL && atomic_load(&s->converged);
	return s != NULL && s->precopy && atomic_load(&s->switch_req);
}

int
source_resume(struct mig *m, const char *addr, char *err, size_t errlen)
{
	struct source *s = m->src;

	if (s == NULL) {
		snprintf(err, errlen, "migration '%s' has no channels yet", m->id);
		return -EINVAL;
	}
	pthread_mutex_lock(&s->s.lock);
	if (addr != NULL && addr[0] != '\0')
		str_copy(s->addr, addr, sizeof(s->addr));
	s->kick = true;
	pthread_cond_broadcast(&s->s.cond);
	pthread_mutex_unlock(&s->s.lock);
	/* Channels up: drop them; the main thread reconnects. */
	session_drop(&s->s);
	return 0;
}

int
source_tell_cancel(struct mig *m, const char *why)
{
	return m->src != NULL ? session_tell_cancel(&m->src->s, why) :
	    -ENOTCONN;
}

void
source_stop(struct mig *m)
{
	struct source *s = m->src;

	if (s == NULL)
		return;
	session_stop(&s->s);
	/* Channels are created by the main thread: join it first (the stop
	 * eventfd interrupts its waits), then the bulk thread. */
	if (s->main_started)
		pthread_join(s->main_thr, NULL);
	session_break(&s->s);
	src_join_bulk(s);
	session_destroy(&s->s);
	/* Precopy ends here (over, cancelled, failed): the guest's write
	 * protection goes, whatever runs it now. */
	if (s->tracking && dirty_stop(s->dirty) < 0)
		log_warnx("migration %s: could not remove the write protection "
		    "from the source guest", m->id);
	src_precopy_free(s);
	if (s->map != NULL)
		munmap((void *)s->map, m->g.size);
	for (uint32_t k = 0; k < WIRE_BULK_CHANNELS_MAX; k++)
		src_view_free(&s->bulk[k].view);
	src_view_free(&s->urg_view);
	free(s->sent);
	free(s->hole);
	free(s->hash);
	free(s->hashed);
	free(s->devstate);
	free(s);
	m->src = NULL;
}
