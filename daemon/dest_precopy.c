/* dest_precopy.c - the destination's side of precopy (see dest.c for the
 * whole role).
 *
 * While the source runs precopy rounds (a PRECOPY frame opens each round
 * on the bulk channel), the pages of the bulk channel are precopy copies:
 * written through the alias into the page cache and made valid, never
 * mapped (the guest does not run here yet); a page sent again replaces
 * its older copy (made not valid first, written again, valid again). When
 * the source guest has paused, the source sends the final dirty list
 * (STALE frames, in order on the bulk channel): those pages are made not
 * valid; after the last one precopy is over here, every later page is an
 * ordinary postcopy page, and the Switchover (which waited for it) lets
 * the guest run. From then on the fault thread maps valid pages in batches
 * (the background mapper, dest_precopy_map) while a fault on a valid page
 * is one local UFFDIO_CONTINUE and any other is requested on the urgent
 * channel.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "chan.h"
#include "dest_int.h"
#include "log.h"
#include "util.h"
#include "wire.h"

#define DEST_MAP_BATCH	1024	/* pages the mapper looks at per step */

bool
dest_precopy_active(struct dest *d)
{
	return atomic_load(&d->precopy) && !atomic_load(&d->precopy_done);
}

/* A precopy PAGES or ZERO frame: older copies are dropped, the new one is
 * written and valid, not mapped. Bulk receiver only (nothing else writes
 * or maps while precopy runs). */
int
dest_precopy_run(struct dest *d, struct chan *c, const struct wire_hdr *h,
    uint8_t *bounce)
{
	bool zero = h->type == WIRE_ZERO;
	uint64_t k = 0;
	char err[200];
	int r;

	pagestate_count_bytes(&d->pg, WIRE_HDR_LEN + h->length);
	pagestate_invalidate(&d->pg, h->index, h->count);
	while (k < h->count) {
		uint64_t i = h->index + k;
		uint64_t n = pagestate_claim_run(&d->pg, i, h->count - k);
		uint8_t *buf = NULL;

		if (n == 0) {	/* cannot happen: invalidated above */
			return chan_set_error(c, -EPROTO, "precopy page %" PRIu64
			    " is claimed by another receiver", i);
		}
		if (!zero) {
			buf = place_store_buf(&d->pl, bounce, i, n);
			if ((r = chan_read_full(c, buf, n * d->pg.ps)) < 0)
				return r;
		}
		pagestate_hash(&d->pg, i, n, buf);
		if ((r = place_store(&d->pl, i, n, buf, err, sizeof(err))) < 0)
			return chan_set_error(c, r, "%s", err);
		pagestate_count_pages(&d->pg, n, zero, false);
		k += n;
	}
	return 0;
}

/* The first PRECOPY frame. COPY mode: the staging memory; its pages live
 * only in this process, so the page state file (which would list them as
 * the guest's) is removed: this migration cannot be picked up after a
 * restart of the daemon. */
static int
dest_precopy_begin(struct dest *d, struct chan *c)
{
	char err[200];
	int r;

	if (place_mode_id(&d->pl) == 1) {
		if ((r = place_stage_open(&d->pl, err, sizeof(err))) < 0)
			return chan_set_error(c, r, "%s", err);
		if (d->m->state_path[0] != '\0' &&
		    unlink(d->m->state_path) == 0)
			log_notice("migration %s: COPY-mode precopy keeps its "
			    "pages in this daemon's memory: page state file %s "
			    "removed, the migration cannot survive a restart",
			    d->m->id, d->m->state_path);
	}
	atomic_store(&d->precopy, true);
	log_info("migration %s: precopy: pages arrive while the guest runs on "
	    "the source (stored in the %s, not mapped)", d->m->id,
	    place_mode_id(&d->pl) == 1 ? "staging memory" : "page cache");
	return 0;
}

/* PRECOPY: a round begins. */
static int
dest_on_precopy(struct dest *d, struct chan *c, const Pcd__Wire__Precopy *p)
{
	int r;

	if (atomic_load(&d->precopy_done))
		return chan_set_error(c, -EPROTO, "bulk channel: a precopy "
		    "round after the final stale list");
	if (!place_can_store(&d->pl))
		return chan_set_error(c, -ENOTSUP, "the source runs precopy, "
		    "which needs a destination on base pages (this one is %s): "
		    "migrate with --postcopy-only", d->pl.ops->name);
	if (!atomic_load(&d->precopy) && (r = dest_precopy_begin(d, c)) < 0)
		return r;
	atomic_store(&d->round, p->round);
	log_timeline(d->m->id, "destination: precopy round %" PRIu32 " begins",
	    p->round);
	return 0;
}

/* STALE: pages written on the source after their copy was sent. */
static int
dest_on_stale(struct dest *d, struct chan *c, const Pcd__Wire__Stale *st)
{
	char why[200];
	uint64_t n = 0;
	int r;

	/* Restarted before the switchover, the daemon does not remember
	 * that precopy ran: the source, resuming, may send the stale list
	 * (again) without a round before it. */
	if (d->restored && !atomic_load(&d->switched) &&
	    !atomic_load(&d->precopy) && (r = dest_precopy_begin(d, c)) < 0)
		return r;
	if (!dest_precopy_active(d))
		return chan_set_error(c, -EPROTO, "bulk channel: a stale list "
		    "outside precopy");
	if (wire_stale_check(st, d->pg.npages, why, sizeof(why)) < 0)
		return chan_set_error(c, -EPROTO, "bulk channel: %s", why);
	for (size_t k = 0; k < st->n_pages; k++)
		n += pagestate_invalidate(&d->pg, st->pages[k]->first,
		    st->pages[k]->count);
	d->stale += n;
	if (st->last) {
		log_timeline(d->m->id, "destination: the last stale list "
		    "applied");
		atomic_store(&d->map_after, now_ns() + d->map_delay_ns);
		pthread_mutex_lock(&d->s.lock);
		atomic_store(&d->precopy_done, true);
		pthread_mutex_unlock(&d->s.lock);
		session_kick(&d->s);
		log_info("migration %s: precopy over after %" PRIu32 " rounds: %"
		    PRIu64 " pages stale, %" PRIu64 " of %" PRIu64 " valid",
		    d->m->id, atomic_load(&d->round) + 1, d->stale,
		    atomic_load(&d->pg.c->pages_valid), d->pg.npages);
	}
	return 0;
}

int
dest_precopy_msg(struct dest *d, struct chan *c, unsigned type,
    const ProtobufCMessage *msg)
{
	if (type == WIRE_PRECOPY)
		return dest_on_precopy(d, c, (const Pcd__Wire__Precopy *)msg);
	return dest_on_stale(d, c, (const Pcd__Wire__Stale *)msg);
}

static bool
dest_precopy_ready(void *arg)
{
	struct dest *d = arg;

	if (!atomic_load(&d->precopy_done))
		return false;
	return !d->wait_all || pagestate_all_valid(&d->pg);
}

/* Before a Switchover after precopy lets the guest run: the stale list is
 * applied (and, converged, every page is here). 0, or the session ended
 * meanwhile (-ECONNRESET / -ECANCELED). Urgent thread. */
int
dest_precopy_wait(struct dest *d, const Pcd__Wire__Switchover *sw)
{
	enum session_wake w;

	if (!sw->after_precopy)
		return 0;
	d->wait_all = sw->converged;
	w = session_wait(&d->s, dest_precopy_ready, d, -1);
	if (w == SESSION_DONE)
		return 0;
	return w == SESSION_STOPPED ? -ECANCELED : -ECONNRESET;
}

/* The background mapper (fault thread): maps valid, unmapped pages from
 * a cursor, at most DEST_MAP_BATCH looked at per call. Whether there is
 * more to do. */
bool
dest_precopy_map(struct dest *d)
{
	uint64_t i = d->map_cursor, end;

	if (!atomic_load(&d->precopy_done) || i >= d->pg.npages ||
	    atomic_load(&d->unregistered))
		return false;
	if (d->map_delay_ns > 0 && now_ns() < atomic_load(&d->map_after))
		return false;	/* test only: the next poll timeout looks again */
	end = i + DEST_MAP_BATCH < d->pg.npages ? i + DEST_MAP_BATCH :
	    d->pg.npages;
	while (i < end) {
		uint64_t n = 0;

		while (i + n < end && bm_test(d->pg.valid, i + n) &&
		    !bm_test(d->pg.mapped, i + n))
			n++;
		if (n > 0 && d->pl.ops->map(&d->pl, i, n) < 0)
			break;		/* a fault maps it later */
		i += n > 0 ? n : 1;
	}
	/* COPY: every valid page of the batch is in the guest now and the
	 * others come by postcopy: their staging copies are done with. */
	if (i >= end)
		place_stage_release(&d->pl, d->map_cursor, end - d->map_cursor);
	d->map_cursor = end;
	return end < d->pg.npages;
}
