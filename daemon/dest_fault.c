/* dest_fault.c - the destination's fault thread and its page requests.
 *
 * The fault thread reads the guest's userfaultfd: a fault on a valid page
 * is mapped at once (a local fault); any other is demanded on the urgent
 * channel with a read-ahead window (a remote fault; on huge pages the
 * faulting piece first, then the rest of its huge page) and mapped when it
 * arrives. It outlives sessions and pings the source when the urgent
 * channel has been quiet. See dest.c for the whole role.
 */
#include <errno.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "dest_int.h"
#include "log.h"
#include "prio.h"
#include "spin.h"
#include "util.h"
#include "wire.h"

/* ---- the fault loop ---------------------------------------------------- */

static void
dest_send_request(struct dest *d, uint64_t i, uint32_t n, bool whole)
{
	Pcd__Wire__PageRequest rq = PCD__WIRE__PAGE_REQUEST__INIT;

	rq.index = i;
	rq.count = n;
	rq.whole = whole;
	pagestate_count_request(&d->pg);
	session_send(&d->s, SESSION_URGENT, WIRE_PAGE_REQUEST, &rq.base);
}

/* A fault on a huge page (page i of it): page i alone first, then every
 * other page of the huge page not here yet, all demanded ("whole": the
 * source sends them on the urgent channel back to back, even those its
 * bulk stream carried, ahead of anything else asked later). */
static void
dest_request_huge(struct dest *d, uint64_t i)
{
	uint64_t per = place_unit_pages(&d->pl), k = i - i % per;
	uint64_t end = k + per;

	if (!bm_test(d->pg.valid, i)) {
		bm_set(d->pg.requested, i);
		dest_send_request(d, i, 1, true);
	}
	while (k < end) {
		uint32_t n = 0;

		while (k < end && (k == i || bm_test(d->pg.valid, k)))
			k++;
		while (k + n < end && n < WIRE_MAX_REQUEST && k + n != i &&
		    !bm_test(d->pg.valid, k + n))
			bm_set(d->pg.requested, k + n++);
		if (n > 0)
			dest_send_request(d, k, n, true);
		k += n;
	}
}

static void
dest_request(struct dest *d, uint64_t i)
{
	uint32_t n = 1;

	/* Read ahead: the next pages nobody has asked for or holds yet. */
	while (n < DEST_READAHEAD && i + n < d->pg.npages &&
	    !bm_test(d->pg.valid, i + n) && !bm_test(d->pg.requested, i + n) &&
	    !bm_set(d->pg.requested, i + n))
		n++;
	dest_send_request(d, i, n, false);
}

static int
dest_fault(struct dest *d, uint64_t addr)
{
	uint64_t i, t0 = now_ns();
	int r;

	if (addr < d->pl.base || addr >= d->pl.base + d->pl.size) {
		log_warnx("migration %s: fault at 0x%" PRIx64 " outside the "
		    "guest mapping", d->m->id, addr);
		return 0;
	}
	i = (addr - d->pl.base) / d->pg.ps;
	if (place_unit_valid(&d->pl, i)) {
		/* Timed to the ioctl's return: a pagestate_wake_mark() here
		 * would put a procfs read (1.5 us here) in front of the
		 * guest's wake-up, a twentieth of a local fault. */
		pagestate_count_fault(&d->pg, true);
		r = d->pl.ops->map(&d->pl, i, 1);
		pagestate_lat_record(d->pg.c, (now_ns() - t0) / 1000);
		return r;
	}
	pagestate_count_fault(&d->pg, false);
	/* The first fault on a page demands it, even when it was asked for
	 * as read-ahead or the bulk stream carries it: those copies may sit
	 * behind megabytes of bulk data. Later faults on it just wait. */
	/* On huge pages a fault waits on its huge page (its first page
	 * stands for it): one demand per huge page. */
	bool first = pagestate_fault_add(&d->pg, i - i %
	    place_unit_pages(&d->pl), t0);
	/* The page may have become valid (and been mapped) meanwhile: the
	 * mapper may have missed our timestamp; map again (EEXIST wakes). */
	if (place_unit_valid(&d->pl, i)) {
		r = d->pl.ops->map(&d->pl, i, 1);
		if (atomic_load(&d->pg.waiting) == 0)	/* dest_yield */
			session_kick(&d->s);
		return r;
	}
	if (first && place_unit_pages(&d->pl) > 1) {
		dest_request_huge(d, i);
	} else if (first) {
		bm_set(d->pg.requested, i);
		dest_request(d, i);
	}
	return 0;
}

/* Reads and resolves the queued fault events: 0, or the error. */
static int
dest_fault_batch(struct dest *d)
{
	struct uffd_msg msgs[DEST_UFFD_BATCH];
	ssize_t n = read(d->pl.uffd, msgs, sizeof(msgs));
	int r = 0;

	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return 0;
		mig_post_fail(d->m, "fault loop: reading the userfaultfd: %s",
		    strerror(errno));
		return -errno;
	}
	for (size_t k = 0; k < (size_t)n / sizeof(msgs[0]) && r == 0; k++) {
		if (msgs[k].event == UFFD_EVENT_PAGEFAULT)
			r = dest_fault(d, msgs[k].arg.pagefault.address);
	}
	/* After the range was unregistered (every page mapped, its waiters
	 * woken by the kernel) a stale event's CONTINUE fails with ENOENT:
	 * nothing waits on it. */
	if (r < 0 && !atomic_load(&d->unregistered)) {
		if (!session_stopped(&d->s))
			mig_post_fail(d->m, "fault loop: cannot resolve a fault: "
			    "%s", strerror(-r));
		return r;
	}
	return 0;
}

/* The fault thread: outlives sessions; pings the source on the urgent
 * channel when it has been quiet; after precopy, maps valid pages in
 * batches between faults (dest_precopy_map). */
void *
dest_fault_main(void *arg)
{
	struct dest *d = arg;
	bool more = false, was, rt = prio_demand_thread("destination fault");
	for (;;) {
		struct pollfd p[2] = {
			{ .fd = d->pl.uffd, .events = POLLIN },
			{ .fd = d->m->stopfd, .events = POLLIN },
		};
		int pr, tmo = more ? 0 : MIG_PING_MS / 2;

		/* demand_spin_us: a fault about to come is read without the
		 * wake-up (bounded; off on a busy machine, spin.h). */
		if (tmo > 0 && spin_fd(d->pl.uffd, POLLIN, d->m->demand_spin_us))
			tmo = 0;
		if ((pr = poll(p, 2, tmo)) < 0) {
			if (errno == EINTR)
				continue;
			mig_post_fail(d->m, "fault loop: poll: %s", strerror(errno));
			return NULL;
		}
		if (p[1].revents & POLLIN)
			return NULL;
		session_ping_due(&d->s, SESSION_URGENT);
		if (pr > 0 && (p[0].revents & (POLLERR | POLLHUP))) {
			mig_post_fail(d->m, "fault loop: the userfaultfd reports "
			    "an error (the VMM's address space is gone?)");
			return NULL;
		}
		if (pr > 0 && dest_fault_batch(d) < 0)
			return NULL;
		/* Faults first, then a batch of the background mapper. Its
		 * batches are bulk work: at normal priority from the second. */
		was = more;
		more = dest_precopy_map(d);
		if (rt && more != was)
			prio_demand_lower(more);
	}
}

/* Asks again for every page a guest thread waits on (after a reconnect). */
void
dest_rerequest(struct dest *d)
{
	uint64_t n = 0;

	for (uint64_t i = 0; i < d->pg.npages; i++) {
		if (!bm_test(d->pg.faulted, i) || place_unit_valid(&d->pl, i))
			continue;
		if (place_unit_pages(&d->pl) > 1) {
			/* The whole huge page: pieces cut off in the session
			 * that ended were released and are asked for too. */
			dest_request_huge(d, i);
		} else {
			bm_set(d->pg.requested, i);
			dest_send_request(d, i, 1, false);
		}
		n++;
	}
	if (n > 0)
		log_info("migration %s: asked again for %" PRIu64 " pages guest "
		    "threads wait on", d->m->id, n);
}
