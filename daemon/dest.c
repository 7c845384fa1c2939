/* dest.c - the destination role of a migration, and its fault loop.
 *
 * On prepare the destination binds its listening socket (port 0: the
 * kernel picks one; the bound address is reported). When the destination
 * VMM has attached too, MISSING (and, MINOR mode, MINOR) faults are
 * registered on the VMM's guest mapping through the VMM's userfaultfd,
 * and three threads run:
 *   - main thread: accepts the source's TLS channels (session.c: bad
 *     peers are refused and the listener keeps serving), then receives
 *     bulk channel 0 (with the precopy rounds and the digests); after the
 *     source's digests it waits until every page is valid, maps what is
 *     left, compares digests and reports Complete;
 *   - one receiver per further bulk channel (Migrate bulk_channels > 1,
 *     announced in the Hellos): pages only, placed once precopy is over
 *     here (the rounds' final stale list, which travels on bulk 0, is
 *     applied) or the Switchover says no rounds ran;
 *   - urgent thread: receives Switchover (the loop resumes the VMM) and the
 *     answers to page requests (one receive loop, dest_recv, serves both
 *     channels);
 *   - fault thread (dest_fault.c): reads uffd events; a valid page is mapped at once (a
 *     local fault), otherwise it is requested on the urgent channel with a
 *     read-ahead window (a remote fault) and mapped when it arrives.
 * Pages are placed by place.c (MINOR: written into the page cache, with
 * pwrite or through the alias, and mapped with UFFDIO_CONTINUE; COPY:
 * UFFDIO_COPY from a bounce buffer). A page is
 * claimed by exactly one receiver (pagestate.c) before any byte is written;
 * a second copy (bulk and urgent race) is dropped, so a page the guest
 * already owns is never overwritten. A page is valid only after all its
 * bytes are in.
 *
 * Network loss: a transient error on any channel (reset, timeout, broken
 * TLS record) ends the session: every channel is dropped, pages whose
 * bytes were cut off are released (claimed but never valid), the migration
 * is PAUSED, and the listener (kept open) waits for the source to come
 * back. Faulting guest threads stay blocked: their pages are never mapped
 * before they are valid. The resume Welcome lists the valid pages (and
 * whether the Switchover arrived); once the channels are back every page a
 * guest thread waits on is requested again. The fault thread pings the
 * source on the urgent channel when it has been quiet for MIG_PING_MS.
 * Digests are compared per session (the source sends all of them again).
 *
 * Restart: with a state directory, the valid bitmap and the page hashes
 * live in the page state file (pagestate.c). A VMM that attaches again
 * (reattach) after a restart finds the migration picked up from it: valid
 * pages are kept, everything else is received again, and every guest
 * thread that waited on the dead daemon is woken to fault again.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "chan.h"
#include "dest_int.h"
#include "log.h"
#include "prio.h"
#include "migration_int.h"
#include "pagestate.h"
#include "place.h"
#include "probe.h"
#include "session.h"
#include "status.h"
#include "util.h"
#include "wire.h"

/* ---- receiving (the main thread: bulk; the urgent thread) -------------- */

/* A PAGES or ZERO frame: claimed runs go to guest memory, the rest (a
 * second copy of a page) is dropped. Pages count the copies written (once,
 * on the channel that delivered them first); bytes count every frame. */
static int
dest_recv_run(struct dest *d, struct chan *c, const struct wire_hdr *h,
    uint8_t *bounce, bool urgent)
{
	const struct place_ops *ops = d->pl.ops;
	bool zero = h->type == WIRE_ZERO, waited;
	uint64_t k = 0;
	char err[200];
	int r;

	if (!urgent && dest_precopy_active(d))
		return dest_precopy_run(d, c, h, bounce);
	pagestate_count_bytes(&d->pg, WIRE_HDR_LEN + h->length);
	while (k < h->count) {
		uint64_t i = h->index + k;
		uint64_t n = pagestate_claim_run(&d->pg, i,
		    place_run_max(&d->pl, i, h->count - k));
		uint8_t *buf = NULL;

		if (n == 0) {
			if (!zero && (r = chan_skip(c, d->pg.ps)) < 0)
				return r;
			k++;
			continue;
		}
		if (!zero) {
			if ((buf = ops->buf(&d->pl, bounce, i, n)) == NULL)
				return chan_set_error(c, -ENOMEM, "no bounce "
				    "buffer for the huge page of page %" PRIu64
				    " (out of memory, or %u huge pages partly "
				    "received at once)", i, PLACE_ASM_MAX);
			if ((r = chan_read_full(c, buf, n * d->pg.ps)) < 0)
				return r;
		}
		pagestate_hash(&d->pg, i, n, buf);
		waited = atomic_load(&d->pg.waiting) > 0;
		if ((r = ops->place(&d->pl, i, n, buf, err, sizeof(err))) < 0)
			return chan_set_error(c, r, "%s", err);
		/* Every page is valid (the main thread waits), or the last
		 * waiting fault is over (the bulk receiver may yield). */
		if (r > 0 || (waited && atomic_load(&d->pg.waiting) == 0))
			session_kick(&d->s);
		pagestate_count_pages(&d->pg, n, zero, urgent);
		k += n;
	}
	return 0;
}

static void
dest_compare(struct dest *d, uint64_t i, uint64_t src_hash)
{
	if (d->pg.hash[i] == src_hash)
		d->verified++;
	else if (d->mismatched++ == 0)
		d->first_bad = i;
}

/* The source's digest of page i: compare now if the page is here. */
static int
dest_digest(struct dest *d, struct chan *c, uint64_t i, uint64_t src_hash)
{
	if (bm_test(d->pg.valid, i)) {
		dest_compare(d, i, src_hash);
		return 0;
	}
	if (d->ndeferred == d->deferred_cap) {
		size_t cap = d->deferred_cap ? d->deferred_cap * 2 : 256;
		struct dest_digest *n = realloc(d->deferred, cap * sizeof(*n));

		if (n == NULL)
			return chan_set_error(c, -ENOMEM, "out of memory for "
			    "digests");
		d->deferred = n;
		d->deferred_cap = cap;
	}
	d->deferred[d->ndeferred++] = (struct dest_digest){ i, src_hash };
	return 0;
}

/* Bulk: digests of every page, in order; 1 after the last one. */
static int
dest_on_digest(struct dest *d, struct chan *c, const ProtobufCMessage *msg)
{
	const Pcd__Wire__Digest *dg = (const Pcd__Wire__Digest *)msg;
	char why[200];
	int r = 0;

	if (wire_digest_check(dg, d->digests, d->pg.npages, why,
	    sizeof(why)) < 0)
		return chan_set_error(c, -EPROTO, "bulk channel: %s", why);
	for (size_t k = 0; k < dg->n_hash && r == 0; k++)
		r = dest_digest(d, c, d->digests + k, dg->hash[k]);
	d->digests += dg->n_hash;
	return r < 0 ? r : d->digests >= d->pg.npages;
}

/* Urgent: the device state; the loop resumes the VMM. */
static int
dest_on_switchover(struct dest *d, struct chan *c, const ProtobufCMessage *msg)
{
	const Pcd__Wire__Switchover *sw = (const Pcd__Wire__Switchover *)msg;
	void *state = NULL;
	int r;

	if (atomic_load(&d->switched))
		return chan_set_error(c, -EPROTO, "urgent channel: a second "
		    "Switchover");
	atomic_store(&d->sw_after_precopy, sw->after_precopy);
	atomic_store(&d->sw_in, true);
	session_kick(&d->s);	/* the further bulk receivers wait for it */
	/* After precopy the stale pages must be not valid before the guest
	 * runs (and, converged, every page here). */
	log_timeline(d->m->id, "destination urgent thread: Switchover in "
	    "(source asked its VMM to pause @%" PRIu64 " ms)", sw->paused_at_ms);
	if ((r = dest_precopy_wait(d, sw)) < 0)
		return chan_set_error(c, r, "urgent channel: the session ended "
		    "before the final stale list arrived");
	if (sw->device_state.len > 0) {
		if ((state = malloc(sw->device_state.len)) == NULL)
			return chan_set_error(c, -ENOMEM, "out of memory for "
			    "the device state");
		memcpy(state, sw->device_state.data, sw->device_state.len);
	}
	log_info("migration %s: switchover (%zu bytes of device state)",
	    d->m->id, sw->device_state.len);
	log_timeline(d->m->id, "destination urgent thread: the guest may run");
	atomic_store(&d->switched, true);
	mig_post_switchover(d->m, state, sw->device_state.len,
	    sw->paused_at_ms);
	return 0;
}

/* The frames a channel carries besides pages, Ping and Error. */
struct dest_rx {
	unsigned		 ch;		/* session slot */
	bool			 urgent;	/* pages count as urgent */
	unsigned		 type;		/* its own message kind (0: none) */
	int			(*fn)(struct dest *d, struct chan *c,
				    const ProtobufCMessage *msg);
};

static const struct dest_rx dest_rx_bulk = {
	SESSION_BULK, false, WIRE_DIGEST, dest_on_digest,
};
static const struct dest_rx dest_rx_urgent = {
	SESSION_URGENT, true, WIRE_SWITCHOVER, dest_on_switchover,
};

/* A bulk Ping with echo: every frame before it was applied (this is the
 * bulk receiver): answered on the bulk channel, where the source's bulk
 * thread waits for it before it pauses a converged guest. */
static int
dest_echo(struct dest *d, const Pcd__Wire__Ping *p)
{
	Pcd__Wire__Ping back = PCD__WIRE__PING__INIT;

	if (!p->echo)
		return 0;
	back.seq = p->seq;
	log_timeline(d->m->id, "destination: caught up with the bulk stream "
	    "(echo %" PRIu64 ")", p->seq);
	return session_send(&d->s, SESSION_BULK, WIRE_PING, &back.base);
}

/* Postcopy pages may be placed: precopy is over here (its final stale
 * list applied), or the Switchover came and says no rounds ran. */
static bool
dest_postcopy_open(void *arg)
{
	struct dest *d = arg;

	return atomic_load(&d->switched) || atomic_load(&d->precopy_done) ||
	    (atomic_load(&d->sw_in) && !atomic_load(&d->sw_after_precopy));
}

/* A further bulk channel's pages are postcopy pages (the source sends
 * them only after the Switchover, so after the precopy rounds and their
 * stale list on bulk 0): they wait until precopy is over here too, which
 * bulk 0 may not have read yet. Not for the Switchover itself: after a
 * converged precopy the destination takes it only once every page is
 * here, some of them on these channels. */
static int
dest_wait_postcopy(struct dest *d, struct chan *c)
{
	enum session_wake w = session_wait(&d->s, dest_postcopy_open, d, -1);

	if (w == SESSION_DONE)
		return 0;
	return chan_set_error(c, w == SESSION_STOPPED ? -ECANCELED :
	    -ECONNRESET, "%s channel: the session ended before the "
	    "switchover", chan_name(c));
}

/* A message frame: the channel's own kind, a Ping (dropped; on the bulk
 * channel echoed when asked), an Error from the source; anything else is
 * refused. */
static int
dest_recv_msg(struct dest *d, struct chan *c, const struct dest_rx *rx,
    const struct wire_hdr *h)
{
	ProtobufCMessage *msg = NULL;
	const Pcd__Wire__Error *e;
	int r;

	bool pre = rx->ch == SESSION_BULK && (h->type == WIRE_PRECOPY ||
	    h->type == WIRE_STALE);

	if (h->type != rx->type && h->type != WIRE_PING &&
	    h->type != WIRE_ERROR && !pre)
		return chan_set_error(c, -EPROTO, "%s channel: unexpected %s "
		    "frame from the source", chan_name(c),
		    wire_type_name(h->type));
	if ((r = chan_recv_msg(c, h, &msg)) < 0)
		return r;
	if (h->type == rx->type) {
		r = rx->fn(d, c, msg);
	} else if (h->type == WIRE_PING && rx->ch == SESSION_BULK) {
		r = dest_echo(d, (const Pcd__Wire__Ping *)msg);
	} else if (pre) {
		r = dest_precopy_msg(d, c, h->type, msg);
	} else if (h->type == WIRE_ERROR) {
		e = (const Pcd__Wire__Error *)msg;
		/* Cancelled before switchover (the source refuses a Cancel
		 * after it): cancelled here too; the fail that follows the
		 * channel error finds it over. */
		if (e->status != NULL && e->status->code == STATUS_CANCELLED)
			mig_post_cancel(d->m, "the source cancelled the "
			    "migration: %s", e->status->message ?
			    e->status->message : "");
		r = chan_set_error(c, -ECONNABORTED, "source reports an error: "
		    "%s", e->status && e->status->message ?
		    e->status->message : "");
	}
	protobuf_c_message_free_unpacked(msg, NULL);
	return r;
}

static bool
dest_none_waiting(void *arg)
{
	struct dest *d = arg;

	return atomic_load(&d->pg.waiting) == 0;
}

/* Huge pages, bulk receiver: while guest threads wait for demanded huge
 * pages (sent whole on the urgent channel), waits (at most DEST_YIELD_MS)
 * before the next frame instead of decrypting bulk data on the CPUs the
 * urgent receiver needs; the source's bulk stream waits too, or fills the
 * socket and stops. Between frames, so every piece this receiver claimed
 * is in: a demanded huge page never waits for it. */
static void
dest_yield(struct dest *d, const struct dest_rx *rx)
{
	if (rx->urgent || place_unit_pages(&d->pl) == 1 ||
	    atomic_load_explicit(&d->pg.waiting, memory_order_relaxed) == 0)
		return;
	atomic_fetch_add_explicit(&d->yields, 1, memory_order_relaxed);
	if (session_wait(&d->s, dest_none_waiting, d, DEST_YIELD_MS) ==
	    SESSION_TIMEOUT)
		atomic_fetch_add_explicit(&d->yields_capped, 1,
		    memory_order_relaxed);
}

/* One channel's receive loop: until its handler says done (0), or the
 * error. */
static int
dest_recv(struct dest *d, const struct dest_rx *rx)
{
	struct chan *c = session_chan(&d->s, rx->ch);
	struct wire_limits lim = { d->pg.npages, d->pg.ps };
	uint8_t *bounce = NULL;
	bool wait = rx->ch > SESSION_BULK;	/* for the Switchover */
	int r;

	if ((r = place_rx_new(&d->pl, &bounce)) < 0)
		return chan_set_error(c, r, "out of memory");
	for (r = 0; r == 0; ) {
		struct wire_hdr h;

		dest_yield(d, rx);
		if ((r = chan_recv_hdr(c, &lim, &h)) < 0)
			break;
		if (h.type != WIRE_PAGES && h.type != WIRE_ZERO) {
			r = dest_recv_msg(d, c, rx, &h);
			continue;
		}
		if (wait && (r = dest_wait_postcopy(d, c)) < 0)
			break;
		wait = false;
		r = dest_recv_run(d, c, &h, bounce, rx->urgent);
	}
	free(bounce);
	return r > 0 ? 0 : r;
}

static void *
dest_urgent_main(void *arg)
{
	struct dest *d = arg;

	prio_demand_thread("destination urgent");
	dest_recv(d, &dest_rx_urgent);
	session_break(&d->s);
	return NULL;
}

/* Bulk channel k >= 1: pages only (no message kind of its own). */
static void *
dest_bulk_main(void *arg)
{
	struct dest_bulk *b = arg;
	const struct dest_rx rx = { SESSION_BULK + b->k, false, 0, NULL };

	dest_recv(b->d, &rx);
	session_break(&b->d->s);
	return NULL;
}

/* ---- accepting the source ---------------------------------------------- */

/* The valid pages as ranges, for a resume Welcome. Fewer ranges than the
 * pages held is safe (the source sends the rest again and the copies are
 * dropped); more never happens: only valid pages are listed. */
static int
dest_have(void *arg, Pcd__Wire__Welcome *w)
{
	struct dest *d = arg;
	Pcd__Wire__PageRange *rs = NULL;
	size_t n = 0, cap = 0;

	for (uint64_t i = 0; i < d->pg.npages && n < DEST_HAVE_MAX; ) {
		uint64_t k = 0;

		for (; i < d->pg.npages && !bm_test(d->pg.valid, i); i++)
			;
		while (i + k < d->pg.npages && bm_test(d->pg.valid, i + k))
			k++;
		if (k == 0)
			break;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 256;
			void *nr = realloc(rs, nc * sizeof(*rs));

			if (nr == NULL) {
				free(rs);
				return -ENOMEM;
			}
			rs = nr;
			cap = nc;
		}
		pcd__wire__page_range__init(&rs[n]);
		rs[n].first = i;
		rs[n].count = k;
		n++;
		i += k;
	}
	w->switched = atomic_load(&d->switched);
	/* A guest that runs here ran only after the final stale list was
	 * applied (a daemon restarted since does not remember precopy). */
	w->precopy_done = atomic_load(&d->precopy_done) || w->switched;
	if (n == 0) {
		free(rs);
		return 0;
	}
	if ((w->have = calloc(n, sizeof(*w->have))) == NULL) {
		free(rs);
		return -ENOMEM;
	}
	for (size_t k = 0; k < n; k++)
		w->have[k] = &rs[k];
	w->n_have = n;
	return 0;
}

/* ---- completion -------------------------------------------------------- */

static bool
dest_all_valid(void *arg)
{
	struct dest *d = arg;

	return pagestate_all_valid(&d->pg);
}

/* Every page is valid: maps whatever is not mapped yet, then stops
 * catching faults (later faults, if the kernel ever drops a mapping, are
 * ordinary page-cache faults). */
static int
dest_settle(struct dest *d)
{
	struct pagestate *pg = &d->pg;
	int r;

	for (uint64_t i = 0; i < pg->npages; ) {
		uint64_t n = 0;

		while (i + n < pg->npages && !bm_test(pg->mapped, i + n))
			n++;
		if (n > 0 && (r = d->pl.ops->map(&d->pl, i, n)) < 0)
			return chan_set_error(session_chan(&d->s, SESSION_BULK),
			    r, "mapping pages %" PRIu64 "+%" PRIu64 " failed: "
			    "%s", i, n, strerror(-r));
		i += n > 0 ? n : 1;
	}
	place_stage_release(&d->pl, 0, pg->npages);	/* COPY precopy */
	if (d->registered) {
		struct uffdio_range rg = { .start = d->pl.base,
		    .len = d->pl.size };

		/* Fault events still queued are stale from here on. */
		atomic_store(&d->unregistered, true);
		if (ioctl(d->pl.uffd, UFFDIO_UNREGISTER, &rg) < 0)
			log_warn("migration %s: UFFDIO_UNREGISTER", d->m->id);
		else
			d->registered = false;
	}
	return 0;
}

/* Compares the digests still deferred and fills Complete. */
static void
dest_verdict(struct dest *d, Pcd__Wire__Complete *done, char *msg,
    size_t msglen)
{
	for (size_t k = 0; k < d->ndeferred; k++)
		dest_compare(d, d->deferred[k].index, d->deferred[k].hash);
	atomic_store(&d->pg.c->pages_verified, d->verified);
	atomic_store(&d->pg.c->pages_mismatched, d->mismatched);
	msg[0] = '\0';
	if (d->mismatched)
		snprintf(msg, msglen, "%" PRIu64 " pages differ from the "
		    "source's digests (first: page %" PRIu64 ")",
		    d->mismatched, d->first_bad);
	done->ok = d->mismatched == 0;
	done->pages_verified = d->verified;
	done->pages_mismatched = d->mismatched;
	done->message = msg;
}

static int
dest_finish(struct dest *d)
{
	Pcd__Wire__Complete done = PCD__WIRE__COMPLETE__INIT;
	enum session_wake w;
	char msg[160];
	int r;

	if ((w = session_wait(&d->s, dest_all_valid, d, -1)) != SESSION_DONE)
		/* stopping, or the session's error says why */
		return w == SESSION_STOPPED ? -ECANCELED : -ECONNRESET;
	if ((r = dest_settle(d)) < 0)
		return r;
	dest_verdict(d, &done, msg, sizeof(msg));
	if ((r = session_send(&d->s, SESSION_URGENT, WIRE_COMPLETE,
	    &done.base)) < 0)
		return r;	/* sent again after a reconnect */
	d->completed = true;
	d->verdict.ok = done.ok;
	d->verdict.verified = done.pages_verified;
	d->verdict.mismatched = done.pages_mismatched;
	snprintf(d->verdict.message, sizeof(d->verdict.message), "%s", msg);
	log_info("migration %s: all %" PRIu64 " pages received and mapped; %"
	    PRIu64 " verified, %" PRIu64 " mismatched", d->m->id, d->pg.npages,
	    d->verified, d->mismatched);
	if (place_unit_pages(&d->pl) > 1)
		log_info("migration %s: the bulk receiver yielded %" PRIu64
		    " times to demanded huge pages (%" PRIu64 " waits ran out "
		    "after %d ms)", d->m->id, atomic_load(&d->yields),
		    atomic_load(&d->yields_capped), DEST_YIELD_MS);
	/* Let the source close first (bounded): closing here at once could
	 * reset its connections (a Ping it sends meanwhile meets a closed
	 * socket) before it has read Complete, and it would reconnect to a
	 * destination that is done. The urgent thread sees its close. */
	session_wait(&d->s, NULL, NULL, DEST_LINGER_MS);
	mig_post(d->m, MIG_EV_DONE);
	return 0;
}

/* ---- sessions (the main thread) ---------------------------------------- */

/* Starts the threads of a session that was just accepted. */
static int
dest_session_start(struct dest *d)
{
	struct mig *m = d->m;

	if (d->sessions++ == 0) {
		if (pthread_create(&d->fault_thr, NULL, dest_fault_main, d) != 0) {
			mig_post_fail(m, "cannot start the fault thread");
			return -EAGAIN;
		}
		d->fault_started = true;
		pthread_setname_np(d->fault_thr, "pcd-dst-fault");
	}
	if (pthread_create(&d->urgent_thr, NULL, dest_urgent_main, d) != 0) {
		mig_post_fail(m, "cannot start the urgent thread");
		return -EAGAIN;
	}
	d->urgent_started = true;
	pthread_setname_np(d->urgent_thr, "pcd-dst-urgent");
	for (uint32_t k = 1; k < session_nbulk(&d->s); k++) {
		struct dest_bulk *b = &d->bulk[k];
		char name[32];	/* k < 16: 15 bytes at most */

		b->d = d;
		b->k = k;
		if (pthread_create(&b->thr, NULL, dest_bulk_main, b) != 0) {
			mig_post_fail(m, "cannot start bulk thread %" PRIu32, k);
			return -EAGAIN;
		}
		b->started = true;
		snprintf(name, sizeof(name), "pcd-dst-bulk%" PRIu32, k);
		pthread_setname_np(b->thr, name);
	}
	if (d->sessions == 1) {
		mig_post(m, d->restored && atomic_load(&d->switched) ?
		    MIG_EV_RESTORED : MIG_EV_CONNECTED);
	} else {
		atomic_fetch_add(&d->pg.c->reconnects, 1);
		mig_post_link(m, false, "the source reconnected (session %u)",
		    d->sessions);
		dest_rerequest(d);
	}
	return 0;
}

/* Huge pages: how many are partly here (some pieces valid, or in COPY
 * mode in the huge page's bounce buffer, not all: they stay unmapped until
 * the rest arrives in a later session), and how many of those a guest
 * thread waits on. */
static void
dest_partial_huge(struct dest *d, uint64_t *partial, uint64_t *waited)
{
	uint64_t per = place_unit_pages(&d->pl);

	*partial = *waited = 0;
	for (uint64_t k = 0; per > 1 && k < d->pg.npages; k += per) {
		uint64_t have = place_unit_have(&d->pl, k);

		if (have == 0 || have == per)
			continue;
		(*partial)++;
		if (bm_test(d->pg.faulted, k))
			(*waited)++;
	}
}

/* Joins the receivers of the further bulk channels. */
static void
dest_join_bulk(struct dest *d)
{
	for (uint32_t k = 1; k < WIRE_BULK_CHANNELS_MAX; k++) {
		if (d->bulk[k].started)
			pthread_join(d->bulk[k].thr, NULL);
		d->bulk[k].started = false;
	}
}

/* Ends a session: channels dropped, the urgent thread and the further
 * bulk receivers joined, pages whose bytes were cut off released. */
static void
dest_session_close(struct dest *d)
{
	uint64_t released, partial, waited;

	session_break(&d->s);
	if (d->urgent_started)
		pthread_join(d->urgent_thr, NULL);
	d->urgent_started = false;
	dest_join_bulk(d);
	session_close(&d->s);
	dest_partial_huge(d, &partial, &waited);
	released = pagestate_release_cut(&d->pg);
	log_info("migration %s: session closed; %" PRIu64 " pages cut off in "
	    "transfer will be received again", d->m->id, released);
	if (partial > 0)
		log_info("migration %s: %" PRIu64 " huge pages partly here "
		    "(unmapped until whole%s), %" PRIu64 " of them with a guest "
		    "thread waiting", d->m->id, partial, d->pl.ops->cut != NULL ?
		    "; their pieces are received again" : "", waited);
	/* What the receivers held of pages not valid went with the cut. */
	if (d->pl.ops->cut != NULL)
		d->pl.ops->cut(&d->pl);
}

static bool
dest_stopped(void *arg)
{
	struct dest *d = arg;

	return session_stopped(&d->s);
}

static void *
dest_main(void *arg)
{
	struct dest *d = arg;
	struct mig *m = d->m;
	char why[300];
	int r;

	if (d->pl.ops->prealloc != NULL)
		d->pl.ops->prealloc(&d->pl, dest_stopped, d);
	for (;;) {
		if ((r = session_accept(&d->s, dest_have, d)) < 0) {
			if (r != -ECANCELED)
				mig_post_fail(m, "accepting the source: %s",
				    strerror(-r));
			return NULL;
		}
		/* The token, for a restarted daemon to check. */
		if (d->sessions == 0)
			pagestate_token_save(&d->pg, d->s.token,
			    sizeof(d->s.token));
		if (dest_session_start(d) < 0)
			return NULL;
		/* Every session brings every digest again. */
		d->digests = d->verified = d->mismatched = d->ndeferred = 0;
		d->first_bad = UINT64_MAX;
		if ((r = dest_recv(d, &dest_rx_bulk)) == 0)
			r = dest_finish(d);
		if (r == 0 || session_stopped(&d->s))
			return NULL;
		r = session_error(&d->s, why, sizeof(why));
		if (!chan_err_transient(r)) {
			mig_post_fail(m, "%s", why);
			return NULL;
		}
		log_warnx("migration %s: channels lost (%s); waiting for the "
		    "source to reconnect on %s", m->id, why, m->listen);
		mig_post_link(m, true, "channels lost: %s; waiting for the "
		    "source on %s", why, m->listen);
		dest_session_close(d);
	}
}

/* ---- setup and teardown (loop thread) ---------------------------------- */

/* The page state: in the state file when there is a state directory (a
 * restart finds it there), in memory otherwise. A full directory refuses
 * the migration (ENOSPC); a fresh migration whose file cannot be created
 * for another reason runs without it: it cannot survive a restart. */
static int
dest_pagestate(struct dest *d, char *err, size_t errlen)
{
	struct mig *m = d->m;
	int r;

	if (m->state_path[0] != '\0' && (r = pagestate_file_open(&d->pg, m->id,
	    m->state_path, m->g.reattach, place_mode_id(&d->pl), d->pl.base,
	    err, errlen)) < 0) {
		if (m->g.reattach || r == -ENOSPC || r == -EDQUOT)
			return r;
		log_warnx("%s; this migration cannot survive a restart", err);
		err[0] = '\0';
		m->state_path[0] = '\0';
	}
	if (m->state_path[0] == '\0' && m->g.reattach) {
		snprintf(err, errlen, "cannot pick up migration '%s' after a "
		    "restart: this daemon keeps no page state (state_dir off)",
		    m->id);
		return -ENOENT;
	}
	return pagestate_alloc(&d->pg, err, errlen);
}

/* Registers the guest range through the VMM's userfaultfd and checks the
 * kernel grants what the placement needs (CONTINUE or COPY, and WAKE). */
static int
dest_register(struct dest *d, char *err, size_t errlen)
{
	int fl = fcntl(d->pl.uffd, F_GETFL), r;

	if (fl >= 0 && !(fl & O_NONBLOCK))
		fcntl(d->pl.uffd, F_SETFL, fl | O_NONBLOCK);
	/* -ENOTSUP: registered, but an ioctl is missing. */
	r = probe_uffd(d->pl.uffd, d->pl.base, d->pl.size, d->pl.ops->reg_mode,
	    NULL, err, errlen);
	if (r == 0 || r == -ENOTSUP)
		d->registered = true;
	return r;
}

/* Huge pages some but not all of whose pieces are valid. */
static uint64_t
dest_partial_units(const struct dest *d)
{
	uint64_t per = place_unit_pages(&d->pl), n = 0;

	for (uint64_t u = 0; per > 1 && u + per <= d->pg.npages; u += per) {
		uint64_t k = 0;

		for (uint64_t i = u; i < u + per; i++)
			k += bm_test(d->pg.valid, i);
		n += k > 0 && k < per;
	}
	return n;
}

/* After a restart: what the file says is here stays (claimed, counted);
 * the guest threads that waited on the dead daemon are woken to fault
 * again (their fault messages went with it). */
static void
dest_restore(struct dest *d)
{
	struct mig *m = d->m;
	uint64_t n = pagestate_restore(&d->pg);

	atomic_store(&d->switched, m->g.resumed);
	d->restored = true;
	/* A fresh Hello cannot take it over, nor one with another token
	 * than the file holds (a file from an older daemon holds none: the
	 * first resuming source's is kept). */
	d->s.resumable = true;
	d->s.token_set = pagestate_token_load(&d->pg, d->s.token,
	    sizeof(d->s.token));
	if (place_wake(&d->pl, d->pl.base, d->pl.size) < 0)
		log_warn("migration %s: UFFDIO_WAKE of the guest range", m->id);
	log_notice("migration %s: picked up after a restart: %" PRIu64 " of %"
	    PRIu64 " pages already here (%s), the guest %s", m->id, n,
	    d->pg.npages, m->state_path, m->g.resumed ? "runs" :
	    "waits for the switchover");
	if (place_unit_pages(&d->pl) > 1)
		log_notice("migration %s: %" PRIu64 " huge pages were partial at "
		    "the restart: unmapped until their missing pieces, asked "
		    "for again, are here", m->id, dest_partial_units(d));
}

/* PCD_TEST_MAPPER_DELAY_MS: for tests only (datapath.precopy-switch), the
 * background mapper waits this long after precopy, so the guest's first
 * touches of valid pages are local faults rather than pages the mapper
 * got to first. Not a tunable: unset in any real deployment. */
static uint64_t
dest_test_map_delay(void)
{
	const char *e = getenv("PCD_TEST_MAPPER_DELAY_MS");
	unsigned long ms;
	char *end;

	if (e == NULL || *e == '\0')
		return 0;
	ms = strtoul(e, &end, 10);
	if (*end != '\0' || ms > 60000) {
		log_warnx("PCD_TEST_MAPPER_DELAY_MS='%s' ignored (test only: "
		    "milliseconds, at most 60000)", e);
		return 0;
	}
	log_warnx("PCD_TEST_MAPPER_DELAY_MS=%lu: the background mapper waits "
	    "%lu ms after precopy (a test setting)", ms, ms);
	return (uint64_t)ms * 1000000;
}

static struct dest *
dest_get(struct mig *m)
{
	struct dest *d = m->dst;

	if (d != NULL)
		return d;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	d->m = m;
	d->map_delay_ns = dest_test_map_delay();
	session_init(&d->s, m);
	d->pl.uffd = d->pl.memfd = -1;
	m->dst = d;
	return d;
}

int
dest_listen(struct mig *m, char *err, size_t errlen)
{
	struct dest *d = dest_get(m);

	if (d == NULL)
		return -ENOMEM;
	return session_listen(&d->s, err, errlen);
}

static int
dest_check_guest(const struct mig *m, char *err, size_t errlen)
{
	uint32_t ps = vmm_piece_size(m->g.page_size);

	if (m->g.uffd < 0 || ps < 512 || ps > WIRE_MAX_PAGE_SIZE ||
	    m->g.size == 0 || m->g.size % m->g.page_size != 0) {
		snprintf(err, errlen, "unusable destination guest (uffd %d, size "
		    "%" PRIu64 ", page size %" PRIu32 ")", m->g.uffd, m->g.size,
		    m->g.page_size);
		return -EINVAL;
	}
	return 0;
}

int
dest_start(struct mig *m, char *err, size_t errlen)
{
	struct dest *d = dest_get(m);
	uint64_t npages;
	uint32_t ps;
	int r;

	if (d == NULL)
		return -ENOMEM;
	if (d->s.lfd < 0) {
		snprintf(err, errlen, "destination is not listening");
		return -EINVAL;
	}
	if ((r = dest_check_guest(m, err, errlen)) < 0)
		return r;
	/* A huge-page guest moves 4 KiB pieces, mapped a huge page at a
	 * time. */
	ps = vmm_piece_size(m->g.page_size);
	npages = m->g.size / ps;
	place_init(&d->pl, m->g.mode == VMM_MODE_COPY, &d->pg, m->id, m->g.uffd,
	    m->g.memfd, m->g.base, m->g.offset, m->g.size, ps);
	if (ps != m->g.page_size)
		place_set_huge(&d->pl, m->g.page_size);
	else if (m->g.mode != VMM_MODE_COPY)
		log_info("migration %s: received pages go into the page cache "
		    "%s", m->id, m->page_write_alias ? "through the alias" :
		    "with pwrite");
	if (!m->page_write_alias)
		place_set_pwrite(&d->pl);
	pagestate_init(&d->pg, npages, ps, &m->c);
	session_set_guest(&d->s, npages, ps);
	if ((r = dest_pagestate(d, err, errlen)) < 0 ||
	    (r = d->pl.ops->open(&d->pl, err, errlen)) < 0 ||
	    (r = dest_register(d, err, errlen)) < 0)
		return r;
	if (m->g.reattach)
		dest_restore(d);
	if ((r = session_tls(&d->s, true, err, errlen)) < 0)
		return r;
	if (pthread_create(&d->main_thr, NULL, dest_main, d) != 0) {
		snprintf(err, errlen, "cannot start the destination thread");
		return -EAGAIN;
	}
	d->main_started = true;
	pthread_setname_np(d->main_thr, "pcd-dst-bulk");
	log_info("migration %s: destination ready: %" PRIu64 " pages of %"
	    PRIu32 " bytes (mapped %" PRIu32 " bytes at a time) at 0x%" PRIx64
	    " in %s mode, waiting for the source on %s", m->id, npages, ps,
	    m->g.page_size, m->g.base, d->pl.ops->name, m->listen);
	return 0;
}

void
dest_stop(struct mig *m)
{
	struct dest *d = m->dst;

	if (d == NULL)
		return;
	session_stop(&d->s);
	/* The stop eventfd (written by the caller) interrupts every wait. */
	if (d->main_started)
		pthread_join(d->main_thr, NULL);
	session_break(&d->s);
	if (d->urgent_started)
		pthread_join(d->urgent_thr, NULL);
	dest_join_bulk(d);
	if (d->fault_started)
		pthread_join(d->fault_thr, NULL);
	/* A registration left after a failure stays: the guest must not see
	 * zero pages where its memory never arrived (the VMM is told). */
	if (d->completed)
		dest_done_keep(m, &d->s, &d->verdict);
	session_destroy(&d->s);
	if (d->pl.ops != NULL)
		d->pl.ops->close(&d->pl);
	pagestate_free(&d->pg);
	free(d->deferred);
	free(d);
	m->dst = NULL;
}

int
dest_tell_cancel(struct mig *m, const char *why)
{
	return m->dst != NULL ? session_tell_cancel(&m->dst->s, why) :
	    -ENOTCONN;
}

int
dest_resume(struct mig *m, char *err, size_t errlen)
{
	struct dest *d = m->dst;

	if (d == NULL) {
		snprintf(err, errlen, "migration '%s' has no channels yet", m->id);
		return -EINVAL;
	}
	/* Channels up: drop them (the source reconnects); otherwise the
	 * listener already waits for the source. */
	session_drop(&d->s);
	return 0;
}
