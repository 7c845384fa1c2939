/* source_precopy.c - the source's precopy rounds (see source.c for the
 * whole role, precopy.h for the decision, dirty.h for the tracker).
 *
 * The bulk thread runs them while the guest runs on the source. Before
 * round 0 the guest mapping is write-protected (dirty_start) and the
 * memfd's holes are found (a hole written later is reported by a scan).
 * `need` holds the pages the destination lacks or holds stale: every page
 * before round 0; a round sends them in order (PRECOPY, then PAGES/ZERO
 * frames on the bulk channel; zero runs as ZERO) and clears them; the
 * scan after it sets the pages written since the previous scan (a page is
 * read after the scan that reported it). After each round the loop gets a
 * precopy-round-done event and precopy_next() decides: another round,
 * converged, or switch to postcopy (the loop then asks the VMM to pause).
 * StartPostcopy stops the rounds at any time (switch_req, looked at
 * between runs of pages).
 * Once the guest paused: the final scan; converged, the pages it found go
 * at once as one more round (so the destination has every page when the
 * stale list, then empty, ends precopy); then the final list of `need` as
 * STALE frames, in order on the bulk channel (the destination marks those
 * pages not valid; every page sent after it is newer); the postcopy part
 * (source.c) then sends every page not in the destination's hands: the
 * sent bitmap is the complement of `need`.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chan.h"
#include "dirty.h"
#include "log.h"
#include "source_int.h"
#include "util.h"
#include "wire.h"

static bool
src_need(const struct source *s, uint64_t i)
{
	return (s->need[i >> 6] >> (i & 63)) & 1;
}

static uint64_t
src_need_count(const struct source *s)
{
	uint64_t n = 0;

	for (uint64_t w = 0; w < (s->npages + 63) / 64; w++)
		n += (uint64_t)__builtin_popcountll(s->need[w]);
	return n;
}

int
src_precopy_setup(struct source *s)
{
	s->need = calloc((s->npages + 63) / 64, sizeof(*s->need));
	s->resent = calloc((s->npages + 63) / 64, sizeof(*s->resent));
	return s->need != NULL && s->resent != NULL ? 0 : -ENOMEM;
}

void
src_precopy_free(struct source *s)
{
	free(s->need);
	free(s->resent);
	s->need = NULL;
	s->resent = NULL;
}

/* Before round 0: tracking on, every page needed, the holes known. */
static int
src_precopy_begin(struct source *s, struct chan *c)
{
	int r;

	if ((r = dirty_start(s->dirty)) < 0)
		return chan_set_error(c, r, "precopy: cannot write-protect the "
		    "guest for dirty tracking: %s", strerror(-r));
	s->tracking = true;
	for (uint64_t i = 0; i < s->npages; i++)
		s->need[i >> 6] |= 1ull << (i & 63);
	if ((r = src_find_holes(s, c)) < 0)
		return r;
	atomic_store_explicit(&s->holes_ready, true, memory_order_release);
	return 0;
}

/* Scans; a page written since its copy was sent is needed again (and
 * is no hole any more). *n: the pages reported. */
static int
src_precopy_scan(struct source *s, struct chan *c, uint64_t *n)
{
	int r = dirty_scan(s->dirty, s->need, n);

	/* Pages read before the scan may have been written since. */
	atomic_fetch_add_explicit(&s->view_gen, 1, memory_order_release);
	if (r < 0)
		return chan_set_error(c, r, "precopy: PAGEMAP_SCAN failed: %s",
		    strerror(-r));
	for (uint64_t w = 0; w < (s->npages + 63) / 64; w++)
		s->hole[w] &= ~s->need[w];
	return 0;
}

/* One run of needed pages from i of one kind: sent, no longer needed. */
static int
src_precopy_send(struct source *s, struct chan *c, uint64_t i, uint32_t *np,
    uint64_t *bytes)
{
	struct src_view *v = &s->bulk[0].view;	/* rounds run on sender 0 */
	bool zero = src_zero(s, v, i);
	uint32_t n = 1, max = zero ? SRC_ZERO_RUN_MAX : WIRE_MAX_BATCH;

	while (n < max && i + n < s->npages && src_need(s, i + n) &&
	    src_zero(s, v, i + n) == zero)
		n++;
	for (uint32_t k = 0; k < n; k++) {
		s->need[(i + k) >> 6] &= ~(1ull << ((i + k) & 63));
		if (s->pc.rounds > 0)	/* an older copy went before */
			s->resent[(i + k) >> 6] |= 1ull << ((i + k) & 63);
	}
	*np = n;
	*bytes += WIRE_HDR_LEN + (zero ? 0 : (uint64_t)n * s->ps);
	atomic_fetch_add_explicit(&s->c->pages_bulk, n, memory_order_relaxed);
	return src_send_run(s, v, c, i, n, zero);
}

/* Sends every needed page, in order, unless the rounds are stopped (the
 * final round, with the guest paused, is not). */
static int
src_precopy_round(struct source *s, struct chan *c, struct precopy_round *rd,
    bool final)
{
	Pcd__Wire__Precopy msg = PCD__WIRE__PRECOPY__INIT;
	uint64_t t0 = now_ns(), epoch_ns = 0, epoch_bytes = 0, bps = 0;
	int r;

	msg.round = s->pc.rounds;
	log_timeline(s->m->id, "source: precopy round %" PRIu32 " begins",
	    msg.round);
	if ((r = chan_send_msg(c, WIRE_PRECOPY, &msg.base)) < 0)
		return r;
	for (uint64_t i = 0; i < s->npages && r == 0; ) {
		uint32_t n;

		if ((i & 63) == 0 && s->need[i >> 6] == 0) {
			i += 64;
			continue;
		}
		if (!src_need(s, i)) {
			i++;
			continue;
		}
		if ((!final && atomic_load(&s->switch_req)) ||
		    session_ended(&s->s))
			break;
		r = src_precopy_send(s, c, i, &n, &rd->bytes_sent);
		rd->pages_sent += n;
		i += n;
		/* The rounds run on bulk channel 0 alone. */
		src_throttle(s, 1, &epoch_ns, &epoch_bytes, &bps,
		    rd->bytes_sent);
		if (r == 0)
			r = session_ping_due(&s->s, SESSION_URGENT);
	}
	rd->elapsed_us = (now_ns() - t0) / 1000;
	return r;
}

/* Before a converged guest is paused: a Ping with echo on the bulk
 * channel, and its answer read back from the same channel, so every page
 * sent so far was applied by the destination (what sits in the socket
 * buffers, several MiB, would otherwise be applied during the downtime).
 * The guest runs meanwhile; the final scan catches what it writes. An
 * older destination does not answer: bounded (SRC_SYNC_MS). 0, or the
 * channel's error. */
static int
src_precopy_sync(struct source *s, struct chan *c)
{
	Pcd__Wire__Ping ping = PCD__WIRE__PING__INIT;
	struct wire_limits lim = { s->npages, s->ps };
	uint64_t t0 = now_ns(), end = t0 + SRC_SYNC_MS * 1000000ull, now;
	int r;

	ping.seq = t0;
	ping.echo = true;
	if ((r = chan_send_msg(c, WIRE_PING, &ping.base)) < 0)
		return r;
	while ((now = now_ns()) < end && !session_ended(&s->s)) {
		struct wire_hdr h;
		ProtobufCMessage *msg = NULL;
		bool done;

		if (!chan_readable_within(c, (int)((end - now) / 1000000) + 1))
			continue;
		if ((r = chan_recv_hdr(c, &lim, &h)) < 0)
			return r;
		if (h.type != WIRE_PING)
			return chan_set_error(c, -EPROTO, "bulk channel: "
			    "unexpected %s frame from the destination",
			    wire_type_name(h.type));
		if ((r = chan_recv_msg(c, &h, &msg)) < 0)
			return r;
		done = ((const Pcd__Wire__Ping *)msg)->seq == ping.seq;
		protobuf_c_message_free_unpacked(msg, NULL);
		if (done) {
			log_timeline(s->m->id, "source: the destination caught "
			    "up in %.1f ms", (double)(now_ns() - t0) / 1e6);
			return 0;
		}
	}
	log_info("migration %s: precopy: no echo from the destination within %d "
	    "ms (an older postcopyd?): pausing anyway", s->m->id, SRC_SYNC_MS);
	return 0;
}

/* After a round: the scan, the counters, the loop told, the decision. */
static int
src_precopy_decide(struct source *s, struct chan *c, struct precopy_round *rd)
{
	struct mig_counters *mc = s->c;
	uint64_t t0 = now_ns(), n, rate;
	enum precopy_decision d;
	char why[256];
	int r;

	if ((r = src_precopy_scan(s, c, &n)) < 0)
		return r;
	rd->dirty_after = src_need_count(s);
	d = precopy_next(&s->pc, rd, why, sizeof(why));
	rate = rd->elapsed_us + (now_ns() - t0) / 1000 > 0 ? n * 1000000 /
	    (rd->elapsed_us + (now_ns() - t0) / 1000 + 1) : 0;
	atomic_store(&mc->pc_rounds, s->pc.rounds);
	atomic_store(&mc->pc_pages_sent, s->pc.pages_sent);
	atomic_store(&mc->pc_last_round, rd->pages_sent);
	atomic_fetch_add(&mc->pc_redirtied, n);
	atomic_store(&mc->pc_dirty_rate, rate);
	atomic_store(&mc->pc_remaining, rd->dirty_after);
	atomic_store(&mc->pages_valid, s->npages - rd->dirty_after);
	log_info("migration %s: precopy %s (%" PRIu64 " pages sent, %" PRIu64
	    " written meanwhile): %s", s->m->id, why, rd->pages_sent, n,
	    precopy_decision_name(d));
	mig_post_text(s->m, MIG_EV_PRECOPY_ROUND_DONE, "%s", why);
	if (d == PRECOPY_CONVERGED && !atomic_load(&s->switch_req) &&
	    (r = src_precopy_sync(s, c)) < 0)
		return r;
	if (d != PRECOPY_CONTINUE && !atomic_exchange(&s->switch_req, true)) {
		atomic_store(&s->converged, d == PRECOPY_CONVERGED);
		mig_post_text(s->m, d == PRECOPY_CONVERGED ? MIG_EV_CONVERGED :
		    MIG_EV_START_POSTCOPY, "%s", why);
	}
	return 0;
}

static bool
src_precopy_paused(void *arg)
{
	struct source *s = arg;

	return s->paused;
}

/* The guest paused: the final scan and the stale list, in order. */
static int
src_precopy_final(struct source *s, struct chan *c)
{
	Pcd__Wire__Stale st = PCD__WIRE__STALE__INIT;
	Pcd__Wire__PageRange *rs = NULL, **ps = NULL;
	uint64_t n, left;
	size_t k = 0;
	int r;

	if ((r = src_precopy_scan(s, c, &n)) < 0)
		return r;
	left = src_need_count(s);
	log_timeline(s->m->id, "source: final scan: %" PRIu64 " pages written "
	    "since the last round, %" PRIu64 " to send", n, left);
	/* Converged: the rest goes now, as one more round (stored, not
	 * mapped, there), so the stale list is empty and the destination
	 * may resume the guest as soon as it has it: no hand-over to the
	 * postcopy stream, no mapping, on the downtime's path. */
	if (atomic_load(&s->converged) && left > 0) {
		struct precopy_round rd = { 0 };

		if ((r = src_precopy_round(s, c, &rd, true)) < 0)
			return r;
		if (session_ended(&s->s))
			return -ECONNRESET;
		log_timeline(s->m->id, "source: %" PRIu64 " pages sent while "
		    "paused", rd.pages_sent);
	}
	rs = calloc(WIRE_STALE_CHUNK, sizeof(*rs));
	ps = calloc(WIRE_STALE_CHUNK, sizeof(*ps));
	if (rs == NULL || ps == NULL) {
		r = chan_set_error(c, -ENOMEM, "out of memory");
		goto out;
	}
	st.pages = ps;
	for (uint64_t i = 0; i <= s->npages && r == 0; ) {
		uint64_t len = 0;

		while (i + len < s->npages && src_need(s, i + len))
			len++;
		if (len > 0) {
			pcd__wire__page_range__init(&rs[k]);
			rs[k].first = i;
			rs[k].count = len;
			ps[k] = &rs[k];
			k++;
		}
		i += len + 1;
		st.last = i > s->npages;
		if (k == WIRE_STALE_CHUNK || st.last) {
			st.n_pages = k;
			r = chan_send_msg(c, WIRE_STALE, &st.base);
			k = 0;
		}
	}
	if (r == 0) {
		atomic_store(&s->c->pc_final_dirty, left);
		log_info("migration %s: precopy over: %" PRIu64 " pages stale "
		    "or missing at the pause (%" PRIu64 " written since the "
		    "last round)%s", s->m->id, left, n,
		    atomic_load(&s->converged) ? ", sent while paused" : "");
	}
out:
	free(rs);
	free(ps);
	return r;
}

/* After the stale list: the postcopy part sends what is needed. */
static void
src_precopy_handover(struct source *s)
{
	uint64_t words = (s->npages + 63) / 64, sent = 0;

	for (uint64_t w = 0; w < words; w++) {
		uint64_t v = ~s->need[w];

		if (w == words - 1 && (s->npages & 63) != 0)
			v &= (1ull << (s->npages & 63)) - 1;
		atomic_store(&s->sent[w], v);
	}
	src_recount(s);
	sent = atomic_load(&s->sent_count);
	atomic_store(&s->c->pages_valid, sent);
	pthread_mutex_lock(&s->s.lock);
	s->final_sent = true;
	pthread_cond_broadcast(&s->s.cond);
	pthread_mutex_unlock(&s->s.lock);
}

int
src_precopy_run(struct source *s, struct chan *c)
{
	int r = 0;

	if (!s->precopy || s->final_sent)
		return 0;
	if (!s->tracking && (r = src_precopy_begin(s, c)) < 0)
		return r;
	while (r == 0 && !atomic_load(&s->switch_req) && !session_ended(&s->s)) {
		struct precopy_round rd = { 0 };

		if ((r = src_precopy_round(s, c, &rd, false)) == 0 &&
		    !session_ended(&s->s))
			r = src_precopy_decide(s, c, &rd);
	}
	if (r == 0)
		r = src_wait_pinging(s, 0, src_precopy_paused);
	if (r < 0 || session_ended(&s->s))
		return r < 0 ? r : -ECONNRESET;
	log_timeline(s->m->id, "source bulk thread: the pause seen");
	if ((r = src_precopy_final(s, c)) < 0)
		return r;
	src_precopy_handover(s);
	log_timeline(s->m->id, "source bulk thread: stale list sent");
	return 0;
}

void
src_precopy_have(struct source *s, const Pcd__Wire__Welcome *w)
{
	uint64_t lacks = 0;

	if (!s->precopy)
		return;
	pthread_mutex_lock(&s->s.lock);
	s->final_sent = w->precopy_done;
	pthread_mutex_unlock(&s->s.lock);
	if (w->precopy_done || !s->tracking)
		return;
	/* The sent bitmap was just rebuilt from the destination's list:
	 * what it lacks is needed again. So is every page sent again in the
	 * session that broke: its newer copy may have been lost on the way,
	 * while the destination holds an older one as valid (the next round
	 * or the stale list replaces it there). */
	for (uint64_t i = 0; i < s->npages; i++) {
		bool again = (s->resent[i >> 6] >> (i & 63)) & 1;

		if ((!bm_test(s->sent, i) || again) && !src_need(s, i)) {
			s->need[i >> 6] |= 1ull << (i & 63);
			lacks++;
		}
	}
	memset(s->resent, 0, (s->npages + 63) / 64 * sizeof(*s->resent));
	log_info("migration %s: resume in precopy: %" PRIu64 " more pages to "
	    "send again (lacking, or sent again in the session that broke), %"
	    PRIu64 " needed in all", s->m->id, lacks, src_need_count(s));
}
