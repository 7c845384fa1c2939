/* place.c - page placement: MINOR (CONTINUE through the alias) and COPY,
 * each on base pages or huge pages (see place.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "place.h"
#include "probe.h"
#include "sigbus.h"
#include "util.h"
#include "wire.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

int
place_wake(struct place *pl, uint64_t addr, uint64_t len)
{
	struct uffdio_range r = { .start = addr, .len = len };

	if (ioctl(pl->uffd, UFFDIO_WAKE, &r) < 0)
		return -errno;
	return 0;
}

int
place_rx_new(struct place *pl, uint8_t **bounce)
{
	*bounce = NULL;
	if (!pl->ops->bounce)
		return 0;
	*bounce = malloc((size_t)WIRE_MAX_BATCH * pl->ps);
	return *bounce != NULL ? 0 : -ENOMEM;
}

/* One step of a uffd ioctl over [*addr, end): 1 done, 0 go on, -errno.
 * done is what the kernel reports it did (or a negative errno). */
static int
place_step(struct place *pl, int r, int64_t done, uint64_t *addr)
{
	if (r == 0)
		return 1;
	if (errno == EAGAIN && done > 0) {
		*addr += (uint64_t)done;
		return 0;
	}
	if (errno == EEXIST) {
		/* Already mapped: nothing to place, but a waiter may still
		 * sleep on it. (For a claimed COPY page this only happens if
		 * the guest mapping changed under us.) */
		if (done > 0)
			*addr += (uint64_t)done;
		place_wake(pl, *addr, pl->ps);
		*addr += pl->ps;
		return 0;
	}
	if (errno == EINTR)
		return 0;
	return -errno;
}

/* ---- MINOR ------------------------------------------------------------- */

/* Base pages only: UFFDIO_CONTINUE maps what the alias wrote page by page. */
static int
place_minor_open(struct place *pl, char *err, size_t errlen)
{
	char thp[32];
	bool forced = false;
	int r;

	pl->alias = mmap(NULL, pl->size, PROT_READ | PROT_WRITE, MAP_SHARED,
	    pl->memfd, (off_t)pl->off);
	if (pl->alias == MAP_FAILED) {
		r = -errno;
		pl->alias = NULL;
		snprintf(err, errlen, "cannot map the destination memfd (the "
		    "alias, %" PRIu64 " bytes at offset %" PRIu64 "): %s",
		    pl->size, pl->off, strerror(-r));
		return r;
	}
	if ((r = sigbus_guard(pl->alias, pl->size, pl->hps, &pl->cut)) < 0)
		log_warnx("migration %s: the alias is not guarded against the "
		    "VMM cutting its memfd short (%s): such a cut would kill "
		    "the daemon", pl->id, strerror(-r));
	if (probe_thp_guard(pl->alias, pl->size, thp, sizeof(thp), &forced) < 0)
		log_warn("migration %s: madvise(MADV_NOHUGEPAGE) on the alias",
		    pl->id);
	else if (forced)
		log_warnx("migration %s: shmem_enabled is 'force': huge pages "
		    "may back guest memory despite MADV_NOHUGEPAGE", pl->id);
	return 0;
}

static void
place_minor_close(struct place *pl)
{
	if (pl->alias != NULL) {
		sigbus_unguard(pl->alias);
		munmap(pl->alias, pl->size);
	}
	pl->alias = NULL;
}

static uint8_t *
place_minor_buf(struct place *pl, uint8_t *bounce, uint64_t first, uint64_t n)
{
	uint8_t *p = pl->alias + first * pl->ps;

	/* Mapping a run in one call beats a fault per page, unless the whole
	 * alias is mapped already. */
	if (n > 1 && !atomic_load_explicit(&pl->populated,
	    memory_order_relaxed))
		madvise(p, n * pl->ps, MADV_POPULATE_WRITE);
	return p;
}

/* Maps valid pages with UFFDIO_CONTINUE, which wakes their waiters. Pages
 * already mapped are fine. */
static int
place_minor_map(struct place *pl, uint64_t first, uint64_t n)
{
	uint64_t addr = pl->base + first * pl->ps, end = addr + n * pl->ps;
	uint64_t mark = pagestate_wake_mark(pl->pg, first, n);
	int r = 0;

	for (uint64_t i = first; i < first + n; i++)
		PCD_ASSERT(bm_test(pl->pg->valid, i));	/* mapped only valid */
	while (addr < end && r == 0) {
		struct uffdio_continue uc = {
			.range = { .start = addr, .len = end - addr },
		};

		r = ioctl(pl->uffd, UFFDIO_CONTINUE, &uc);
		r = place_step(pl, r, uc.mapped, &addr);
	}
	if (r < 0)
		return r;
	pagestate_mapped(pl->pg, first, n, mark);
	return 0;
}

/* Zero pages cost no bytes: fallocate puts zeroed pages in the page cache
 * (whole huge pages on hugetlbfs, leaving those already there alone). */
static int
place_zero_alloc(struct place *pl, uint64_t first, uint64_t n,
    const char *what, char *err, size_t errlen)
{
	int r;

	if (fallocate(pl->memfd, 0, (off_t)(pl->off + first * pl->ps),
	    (off_t)(n * pl->ps)) == 0)
		return 0;
	r = -errno;
	snprintf(err, errlen, "fallocate of zero pages %" PRIu64 "+%" PRIu64
	    " in the %s failed: %s", first, n, what, strerror(-r));
	return r;
}

/* Precopy: a zero page may replace an older copy that was not zero:
 * drop whatever is there, then allocate zeroed pages. */
static int
place_zero_replace(struct place *pl, uint64_t first, uint64_t n, char *err,
    size_t errlen)
{
	int r;

	if (fallocate(pl->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
	    (off_t)(pl->off + first * pl->ps), (off_t)(n * pl->ps)) < 0) {
		r = -errno;
		snprintf(err, errlen, "punching zero pages %" PRIu64 "+%" PRIu64
		    " in the memfd failed: %s", first, n, strerror(-r));
		return r;
	}
	return place_zero_alloc(pl, first, n, "memfd", err, errlen);
}

/* Pages written through the alias, up to first + n: whether the VMM cut
 * its memfd short under them (sigbus.h); then they went nowhere. */
static int
place_alias_cut(struct place *pl, uint64_t first, uint64_t n, char *err,
    size_t errlen)
{
	struct stat st;

	if (!atomic_load_explicit(&pl->cut, memory_order_relaxed))
		return 0;
	snprintf(err, errlen, "the destination VMM cut its memfd short while "
	    "the guest's pages were written into it (it is %lld bytes now; "
	    "pages %" PRIu64 "+%" PRIu64 " were past its end)",
	    fstat(pl->memfd, &st) == 0 ? (long long)st.st_size : -1LL, first,
	    n);
	return -EFAULT;
}

static int
place_minor_place(struct place *pl, uint64_t first, uint64_t n,
    const uint8_t *buf, char *err, size_t errlen)
{
	bool all;
	int r;

	if ((r = place_alias_cut(pl, first, n, err, errlen)) < 0)
		return r;
	/* A zero page needs to be in the page cache for a MINOR fault:
	 * allocate zeroed pages without writing each. A wholly preallocated
	 * alias has them already: a page that was never written is zero. */
	if (buf == NULL && atomic_load(&pl->rewrites)) {
		/* After precopy the page may hold an older copy. */
		if ((r = place_zero_replace(pl, first, n, err, errlen)) < 0)
			return r;
	} else if (buf == NULL && !atomic_load_explicit(&pl->populated,
	    memory_order_relaxed) && (r = place_zero_alloc(pl, first, n,
	    "memfd", err, errlen)) < 0)
		return r;
	all = pagestate_set_valid(pl->pg, first, n);
	if ((r = place_minor_map(pl, first, n)) < 0) {
		snprintf(err, errlen, "UFFDIO_CONTINUE of pages %" PRIu64 "+%"
		    PRIu64 " failed: %s", first, n, strerror(-r));
		return r;
	}
	return all;
}

/*
 * Allocates the guest's whole page cache and maps the alias before the
 * source connects, while the guest still runs on the source: the receivers
 * then write into present, mapped pages (no shmem allocation and no alias
 * fault per page after switchover), zero pages are already zero, and a
 * guest fault on a page not yet received is a MINOR fault like any other.
 * Pages already in the page cache (a restarted daemon) are left as they are.
 * Only an optimisation: a kernel without MADV_POPULATE_WRITE (< 5.14), or
 * too little memory, just leaves allocation to the receivers.
 */
/* The preallocation loop: [off, +n) of guest memory at a time (so that
 * a stop is seen soon) through alloc, which says -errno (named as how). */
static void
place_prealloc_chunks(struct place *pl, bool (*stopped)(void *), void *arg,
    int (*alloc)(struct place *pl, uint64_t off, uint64_t n),
    const char *how, const char *done)
{
	const uint64_t chunk = 64ull << 20;
	uint64_t t0 = now_ns();

	for (uint64_t off = 0; off < pl->size; off += chunk) {
		uint64_t n = pl->size - off < chunk ? pl->size - off : chunk;

		if (stopped(arg))
			return;
		if (alloc(pl, off, n) < 0) {
			log_warn("migration %s: preallocating the guest memory "
			    "at +%" PRIu64 " (%s); pages will be allocated as "
			    "they arrive", pl->id, off, how);
			return;
		}
	}
	atomic_store_explicit(&pl->populated, true, memory_order_relaxed);
	log_info("migration %s: %" PRIu64 " MiB of guest memory %s in %" PRIu64
	    " ms", pl->id, pl->size >> 20, done, (now_ns() - t0) / 1000000);
}

static int
place_alias_populate(struct place *pl, uint64_t off, uint64_t n)
{
	return madvise(pl->alias + off, n, MADV_POPULATE_WRITE);
}

static void
place_minor_prealloc(struct place *pl, bool (*stopped)(void *), void *arg)
{
	place_prealloc_chunks(pl, stopped, arg, place_alias_populate,
	    "MADV_POPULATE_WRITE", "allocated and mapped");
}

static const struct place_ops place_minor_ops = {
	.name = "MINOR",
	.reg_mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR,
	.bounce = false,
	.open = place_minor_open,
	.close = place_minor_close,
	.buf = place_minor_buf,
	.place = place_minor_place,
	.map = place_minor_map,
	.prealloc = place_minor_prealloc,
};

/* ---- MINOR, written with pwrite ----------------------------------------- */

/*
 * MINOR on base pages, but a receiver reads a run into its bounce buffer
 * (small, always warm) and writes it into the page cache with one pwrite:
 * the daemon never touches guest memory through a user mapping. The first
 * touch of each page of a writable shared mapping is what costs on a
 * nested-virtualised host (12-16 us per 4 KiB page measured on the
 * development VM, the shadow page tables being filled, against 0.5 us per
 * page for pwrite); on bare metal the two cost about the same, a 4 KiB
 * copy against a TLB miss. postcopyd.conf page_write picks it (the
 * default) or the alias.
 */
static int
place_pwrite_open(struct place *pl, char *err, size_t errlen)
{
	return 0;
}

static void
place_pwrite_close(struct place *pl)
{
}

static int
place_pwrite(struct place *pl, uint64_t first, uint64_t n, const uint8_t *buf,
    char *err, size_t errlen)
{
	size_t len = n * pl->ps, done = 0;
	off_t off = (off_t)(pl->off + first * pl->ps);
	ssize_t w;

	while (done < len) {
		if ((w = pwrite(pl->memfd, buf + done, len - done,
		    off + (off_t)done)) > 0) {
			done += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		snprintf(err, errlen, "writing pages %" PRIu64 "+%" PRIu64 " "
		    "into the memfd failed: %s", first, n,
		    w < 0 ? strerror(errno) : "no progress");
		return w < 0 ? -errno : -EIO;
	}
	return 0;
}

static int
place_pwrite_place(struct place *pl, uint64_t first, uint64_t n,
    const uint8_t *buf, char *err, size_t errlen)
{
	int r;

	if (buf != NULL && (r = place_pwrite(pl, first, n, buf, err,
	    errlen)) < 0)
		return r;
	return place_minor_place(pl, first, n, buf, err, errlen);
}

/* The page cache allocated before the source connects, as MINOR's
 * prealloc does, but without mapping anything (fallocate leaves pages
 * already there, a restarted daemon's, as they are). */
static int
place_memfd_allocate(struct place *pl, uint64_t off, uint64_t n)
{
	return fallocate(pl->memfd, 0, (off_t)(pl->off + off), (off_t)n);
}

static void
place_pwrite_prealloc(struct place *pl, bool (*stopped)(void *), void *arg)
{
	place_prealloc_chunks(pl, stopped, arg, place_memfd_allocate,
	    "fallocate", "allocated");
}

static uint8_t *place_bounce_buf(struct place *pl, uint8_t *bounce,
    uint64_t first, uint64_t n);

static const struct place_ops place_pwrite_ops = {
	.name = "MINOR",
	.reg_mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR,
	.bounce = true,
	.open = place_pwrite_open,
	.close = place_pwrite_close,
	.buf = place_bounce_buf,
	.place = place_pwrite_place,
	.map = place_minor_map,
	.prealloc = place_pwrite_prealloc,
};

/* ---- HUGE (MINOR on hugetlbfs) ------------------------------------------ */

uint64_t
place_unit_pages(const struct place *pl)
{
	return pl->hps > pl->ps ? pl->hps / pl->ps : 1;
}

bool
place_unit_valid(const struct place *pl, uint64_t i)
{
	uint64_t per = place_unit_pages(pl), k = i - i % per, end = k + per;

	while (k < end) {
		if (k % 64 == 0 && end - k >= 64) {	/* a whole word */
			if (atomic_load(&pl->pg->valid[k / 64]) != UINT64_MAX)
				return false;
			k += 64;
			continue;
		}
		if (!bm_test(pl->pg->valid, k++))
			return false;
	}
	return true;
}

/* Maps the huge pages among pages [first, +n) whose pieces are all valid
 * (one UFFDIO_CONTINUE each, which wakes their waiters); the others wait
 * for their last piece. Huge pages already mapped are fine. */
static int
place_huge_map(struct place *pl, uint64_t first, uint64_t n)
{
	uint64_t per = place_unit_pages(pl);

	for (uint64_t hp = first / per; hp <= (first + n - 1) / per; hp++) {
		uint64_t addr = pl->base + hp * pl->hps;
		struct uffdio_continue uc = {
			.range = { .start = addr, .len = pl->hps },
		};
		uint64_t mark;
		int r;

		if (!place_unit_valid(pl, hp * per))
			continue;
		mark = pagestate_wake_mark(pl->pg, hp * per, per);
		/* EAGAIN: the mm changed under us; again (EEXIST if the
		 * huge page got mapped after all). */
		while ((r = ioctl(pl->uffd, UFFDIO_CONTINUE, &uc)) < 0 &&
		    (errno == EINTR || errno == EAGAIN))
			;
		if (r < 0 && errno == EEXIST)	/* a waiter may still sleep */
			r = place_wake(pl, addr, pl->hps);
		else if (r < 0)
			return -errno;
		pagestate_mapped(pl->pg, hp * per, per, mark);
	}
	return 0;
}

static int
place_huge_place(struct place *pl, uint64_t first, uint64_t n,
    const uint8_t *buf, char *err, size_t errlen)
{
	bool all;
	int r;

	if ((r = place_alias_cut(pl, first, n, err, errlen)) < 0)
		return r;
	/* Zero pieces: fallocate allocates (zeroed) the huge pages not yet
	 * in the page cache and leaves the others, whose pieces may already
	 * hold data, alone. */
	if (buf == NULL && (r = place_zero_alloc(pl, first, n,
	    "hugetlbfs memfd", err, errlen)) < 0)
		return r;
	all = pagestate_set_valid(pl->pg, first, n);
	if ((r = place_huge_map(pl, first, n)) < 0) {
		snprintf(err, errlen, "UFFDIO_CONTINUE of the huge pages of "
		    "pages %" PRIu64 "+%" PRIu64 " failed: %s", first, n,
		    strerror(-r));
		return r;
	}
	return all;
}

static const struct place_ops place_huge_ops = {
	.name = "MINOR (huge pages)",
	.reg_mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR,
	.bounce = false,
	.open = place_minor_open,
	.close = place_minor_close,
	.buf = place_minor_buf,
	.place = place_huge_place,
	.map = place_huge_map,
	.prealloc = place_minor_prealloc,
};

/* ---- HUGE COPY (UFFDIO_COPY of whole huge pages) ----------------------- */

/* A huge page being assembled: its pieces are written here by whichever
 * receiver claimed them; the one that brings `have` to the last piece
 * places it. */
struct place_hbuf {
	uint8_t			*mem;		/* hps bytes */
	_Atomic uint64_t	 have;		/* pieces written */
	struct place_hbuf	*next;		/* on the free list */
};

struct place_asm {
	/* One slot per huge page: its buffer while partly received. */
	struct place_hbuf * _Atomic *slot;
	uint64_t		 nunits;
	atomic_uint		 live;		/* buffers in slots */
	pthread_mutex_t		 lock;		/* the free list (a leaf) */
	struct place_hbuf	*free;
	unsigned		 nfree;
	uint8_t			*zero;		/* hps bytes of zeros */
};

#define PLACE_ASM_KEEP	4	/* free buffers kept for reuse */

static void
place_hbuf_free(struct place *pl, struct place_hbuf *hb)
{
	if (hb == NULL)
		return;
	munmap(hb->mem, pl->hps);
	free(hb);
}

/* A buffer off the free list, or a new one (prefaulted: receivers then
 * write into present memory). */
static struct place_hbuf *
place_hbuf_new(struct place *pl)
{
	struct place_asm *as = pl->as;
	struct place_hbuf *hb;

	pthread_mutex_lock(&as->lock);
	if ((hb = as->free) != NULL) {
		as->free = hb->next;
		as->nfree--;
	}
	pthread_mutex_unlock(&as->lock);
	if (hb == NULL) {
		if ((hb = calloc(1, sizeof(*hb))) == NULL)
			return NULL;
		hb->mem = mmap(NULL, pl->hps, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		if (hb->mem == MAP_FAILED) {
			free(hb);
			return NULL;
		}
	}
	atomic_store(&hb->have, 0);
	hb->next = NULL;
	return hb;
}

static void
place_hbuf_put(struct place *pl, struct place_hbuf *hb)
{
	struct place_asm *as = pl->as;

	pthread_mutex_lock(&as->lock);
	if (as->nfree < PLACE_ASM_KEEP) {
		hb->next = as->free;
		as->free = hb;
		as->nfree++;
		hb = NULL;
	}
	pthread_mutex_unlock(&as->lock);
	place_hbuf_free(pl, hb);
}

/* The buffer of huge page u, made if it has none; NULL when none can be
 * had (out of memory, or PLACE_ASM_MAX huge pages partly here). */
static struct place_hbuf *
place_hbuf_get(struct place *pl, uint64_t u)
{
	struct place_asm *as = pl->as;
	struct place_hbuf *hb = atomic_load(&as->slot[u]), *none = NULL;

	if (hb != NULL)
		return hb;
	if (atomic_fetch_add(&as->live, 1) >= PLACE_ASM_MAX) {
		atomic_fetch_sub(&as->live, 1);
		return NULL;
	}
	if ((hb = place_hbuf_new(pl)) == NULL) {
		atomic_fetch_sub(&as->live, 1);
		return NULL;
	}
	if (atomic_compare_exchange_strong(&as->slot[u], &none, hb))
		return hb;
	/* The other receiver made it first. */
	atomic_fetch_sub(&as->live, 1);
	place_hbuf_put(pl, hb);
	return none;
}

static int
place_hcopy_open(struct place *pl, char *err, size_t errlen)
{
	struct place_asm *as;
	int r;

	if ((as = calloc(1, sizeof(*as))) == NULL)
		goto nomem;
	as->nunits = pl->size / pl->hps;
	if ((as->slot = calloc(as->nunits, sizeof(*as->slot))) == NULL) {
		free(as);
		goto nomem;
	}
	/* Read-only private anonymous memory: the kernel's zero page. */
	as->zero = mmap(NULL, pl->hps, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS |
	    MAP_NORESERVE, -1, 0);
	if (as->zero == MAP_FAILED) {
		r = -errno;
		free(as->slot);
		free(as);
		snprintf(err, errlen, "cannot map a zero huge page to copy "
		    "from: %s", strerror(-r));
		return r;
	}
	pthread_mutex_init(&as->lock, NULL);
	pl->as = as;
	return 0;
nomem:
	snprintf(err, errlen, "out of memory for the huge page table");
	return -ENOMEM;
}

static void
place_hcopy_cut(struct place *pl)
{
	struct place_asm *as = pl->as;

	for (uint64_t u = 0; as != NULL && u < as->nunits; u++) {
		struct place_hbuf *hb = atomic_exchange(&as->slot[u], NULL);

		if (hb != NULL) {
			atomic_fetch_sub(&as->live, 1);
			place_hbuf_put(pl, hb);
		}
	}
}

static void
place_hcopy_close(struct place *pl)
{
	struct place_asm *as = pl->as;
	struct place_hbuf *hb;

	if (as == NULL)
		return;
	place_hcopy_cut(pl);
	while ((hb = as->free) != NULL) {
		as->free = hb->next;
		place_hbuf_free(pl, hb);
	}
	munmap(as->zero, pl->hps);
	pthread_mutex_destroy(&as->lock);
	free(as->slot);
	free(as);
	pl->as = NULL;
}

/* Claimed pages [first, +n) of one huge page: read into its buffer. */
static uint8_t *
place_hcopy_buf(struct place *pl, uint8_t *bounce, uint64_t first, uint64_t n)
{
	uint64_t per = place_unit_pages(pl);
	struct place_hbuf *hb = place_hbuf_get(pl, first / per);

	return hb == NULL ? NULL : hb->mem + (first % per) * pl->ps;
}

/* Places huge page u from src with one UFFDIO_COPY (which wakes its
 * waiters); its pieces are then mapped and valid. 1 when every page of
 * the guest is valid now, 0, or -errno. */
static int
place_hcopy_unit(struct place *pl, uint64_t u, const uint8_t *src)
{
	uint64_t per = place_unit_pages(pl), addr = pl->base + u * pl->hps;
	struct uffdio_copy c = {
		.dst = addr, .src = (uint64_t)(uintptr_t)src, .len = pl->hps,
	};
	uint64_t mark = pagestate_wake_mark(pl->pg, u * per, per);
	int r;

	/* EAGAIN: the mm changed under us; again. */
	while ((r = ioctl(pl->uffd, UFFDIO_COPY, &c)) < 0 &&
	    (errno == EINTR || errno == EAGAIN))
		c.copy = 0;
	if (r < 0 && errno == EEXIST)	/* a waiter may still sleep */
		r = place_wake(pl, addr, pl->hps);
	else if (r < 0)
		return -errno;
	pagestate_mapped(pl->pg, u * per, per, mark);
	/* Valid after the copy: the state file never lists a page the
	 * guest lacks. */
	return pagestate_set_valid(pl->pg, u * per, per);
}

/* Claimed pages [first, +n) of one huge page (place_run_max), their bytes
 * in its buffer (buf, from place_hcopy_buf) or zero (buf NULL). The
 * receiver that brings the last piece copies the huge page in. */
static int
place_hcopy_place(struct place *pl, uint64_t first, uint64_t n,
    const uint8_t *buf, char *err, size_t errlen)
{
	uint64_t per = place_unit_pages(pl), u = first / per;
	struct place_hbuf *hb;
	int r;

	if (buf == NULL && n == per) {
		/* A whole zero huge page: nothing of it was here. */
		r = place_hcopy_unit(pl, u, pl->as->zero);
	} else {
		if ((hb = place_hbuf_get(pl, u)) == NULL) {
			snprintf(err, errlen, "no bounce buffer for huge page %"
			    PRIu64 " (out of memory, or %u huge pages partly "
			    "received at once)", u, PLACE_ASM_MAX);
			return -ENOMEM;
		}
		if (buf == NULL)
			memset(hb->mem + (first % per) * pl->ps, 0, n * pl->ps);
		/* The last piece sees every other receiver's bytes. */
		if (atomic_fetch_add(&hb->have, n) + n < per)
			return 0;
		r = place_hcopy_unit(pl, u, hb->mem);
		atomic_store(&pl->as->slot[u], NULL);
		atomic_fetch_sub(&pl->as->live, 1);
		place_hbuf_put(pl, hb);
	}
	if (r < 0)
		snprintf(err, errlen, "UFFDIO_COPY of huge page %" PRIu64
		    " (pages %" PRIu64 "+%" PRIu64 ") failed: %s", u, u * per,
		    per, strerror(-r));
	return r;
}

/* Valid huge pages among [first, +n) were placed (and mapped) by their
 * UFFDIO_COPY: just wake. */
static int
place_hcopy_map(struct place *pl, uint64_t first, uint64_t n)
{
	uint64_t per = place_unit_pages(pl);
	int r = 0, w;

	for (uint64_t u = first / per; u <= (first + n - 1) / per; u++) {
		uint64_t mark = pagestate_wake_mark(pl->pg, u * per, per);

		PCD_ASSERT(place_unit_valid(pl, u * per));
		if ((w = place_wake(pl, pl->base + u * pl->hps, pl->hps)) < 0)
			r = w;
		pagestate_mapped(pl->pg, u * per, per, mark);
	}
	return r;
}

static const struct place_ops place_hcopy_ops = {
	.name = "COPY (huge pages)",
	.reg_mode = UFFDIO_REGISTER_MODE_MISSING,
	.bounce = false,
	.open = place_hcopy_open,
	.close = place_hcopy_close,
	.buf = place_hcopy_buf,
	.place = place_hcopy_place,
	.map = place_hcopy_map,
	.prealloc = NULL,
	.cut = place_hcopy_cut,
	.unit_runs = true,
};

/* ---- COPY -------------------------------------------------------------- */

static int
place_copy_open(struct place *pl, char *err, size_t errlen)
{
	return 0;
}

static void
place_copy_close(struct place *pl)
{
	uint8_t *st = atomic_exchange(&pl->stage, NULL);

	if (st != NULL)
		munmap(st, pl->size);
}

static uint8_t *
place_bounce_buf(struct place *pl, uint8_t *bounce, uint64_t first, uint64_t n)
{
	return bounce;
}

/* UFFDIO_COPY (UFFDIO_ZEROPAGE when buf is NULL), which maps at once. */
static int
place_copy_ioctl(struct place *pl, uint64_t first, uint64_t n,
    const uint8_t *buf)
{
	uint64_t start = pl->base + first * pl->ps, addr = start;
	uint64_t end = start + n * pl->ps;
	int r = 0;

	while (addr < end && r == 0) {
		if (buf == NULL) {
			struct uffdio_zeropage z = {
				.range = { .start = addr, .len = end - addr },
			};

			r = ioctl(pl->uffd, UFFDIO_ZEROPAGE, &z);
			r = place_step(pl, r, z.zeropage, &addr);
		} else {
			struct uffdio_copy c = {
				.dst = addr, .len = end - addr,
				.src = (uint64_t)(uintptr_t)(buf + (addr - start)),
			};

			r = ioctl(pl->uffd, UFFDIO_COPY, &c);
			r = place_step(pl, r, c.copy, &addr);
		}
	}
	return r < 0 ? r : 0;
}

static int
place_copy_place(struct place *pl, uint64_t first, uint64_t n,
    const uint8_t *buf, char *err, size_t errlen)
{
	uint64_t mark = pagestate_wake_mark(pl->pg, first, n);
	int r;

	if ((r = place_copy_ioctl(pl, first, n, buf)) < 0) {
		snprintf(err, errlen, "%s of pages %" PRIu64 "+%" PRIu64 " "
		    "failed: %s", buf == NULL ? "UFFDIO_ZEROPAGE" : "UFFDIO_COPY",
		    first, n, strerror(-r));
		return r;
	}
	pagestate_mapped(pl->pg, first, n, mark);
	/* Valid after the page is in place: the state file (restart) never
	 * lists a page the guest lacks. */
	return pagestate_set_valid(pl->pg, first, n);
}

/* Valid pages [first, +n): one placed by UFFDIO_COPY is mapped already
 * (just wake its waiters); one precopy left in the staging memory (valid,
 * not mapped) is placed from there with UFFDIO_COPY, which wakes. Two
 * threads placing the same page are fine: the second gets EEXIST, and the
 * kernel never lets a copy overwrite a page the guest has. */
static int
place_copy_map(struct place *pl, uint64_t first, uint64_t n)
{
	uint8_t *st = atomic_load(&pl->stage);
	uint64_t i = first, end = first + n;
	uint64_t mark = pagestate_wake_mark(pl->pg, first, n);
	int r = 0;

	while (i < end && r == 0) {
		bool m = st == NULL || bm_test(pl->pg->mapped, i);
		uint64_t k = 1;

		while (i + k < end && (st == NULL ||
		    bm_test(pl->pg->mapped, i + k)) == m)
			k++;
		if (m)
			r = place_wake(pl, pl->base + i * pl->ps, k * pl->ps);
		else
			r = place_copy_ioctl(pl, i, k, st + i * pl->ps);
		i += k;
	}
	if (r < 0)
		return r;
	pagestate_mapped(pl->pg, first, n, mark);
	return 0;
}

static const struct place_ops place_copy_ops = {
	.name = "COPY",
	.reg_mode = UFFDIO_REGISTER_MODE_MISSING,
	.bounce = true,
	.open = place_copy_open,
	.close = place_copy_close,
	.buf = place_bounce_buf,
	.place = place_copy_place,
	.map = place_copy_map,
	.prealloc = NULL,
};

void
place_init(struct place *pl, bool copy, struct pagestate *pg, const char *id,
    int uffd, int memfd, uint64_t base, uint64_t off, uint64_t size,
    uint32_t ps)
{
	*pl = (struct place){
		.ops = copy ? &place_copy_ops : &place_minor_ops,
		.pg = pg, .id = id, .uffd = uffd, .memfd = memfd, .base = base,
		.off = off, .size = size, .ps = ps, .hps = ps,
	};
}

void
place_set_pwrite(struct place *pl)
{
	if (pl->ops == &place_minor_ops)
		pl->ops = &place_pwrite_ops;
}

void
place_set_huge(struct place *pl, uint64_t hps)
{
	pl->ops = pl->ops == &place_copy_ops ? &place_hcopy_ops :
	    &place_huge_ops;
	pl->hps = hps;
}

uint32_t
place_mode_id(const struct place *pl)
{
	/* MINOR either way: the same page cache, written two ways. */
	return pl->ops == &place_copy_ops ? 1 : pl->ops == &place_huge_ops ?
	    2 : pl->ops == &place_hcopy_ops ? 3 : 0;
}

uint64_t
place_run_max(const struct place *pl, uint64_t first, uint64_t n)
{
	uint64_t per = place_unit_pages(pl), left = per - first % per;

	return pl->ops->unit_runs && n > left ? left : n;
}

uint64_t
place_unit_have(const struct place *pl, uint64_t k)
{
	uint64_t per = place_unit_pages(pl), n = 0;
	struct place_hbuf *hb;

	k -= k % per;
	for (uint64_t i = k; i < k + per; i++)
		n += bm_test(pl->pg->valid, i);
	if (n == 0 && pl->as != NULL &&
	    (hb = atomic_load(&pl->as->slot[k / per])) != NULL)
		n = atomic_load(&hb->have);
	return n;
}

/* ---- precopy: stored, not mapped --------------------------------------- */

bool
place_can_store(const struct place *pl)
{
	return pl->ops == &place_minor_ops || pl->ops == &place_pwrite_ops ||
	    pl->ops == &place_copy_ops;
}

int
place_stage_open(struct place *pl, char *err, size_t errlen)
{
	uint8_t *st;
	int r;

	if (pl->ops != &place_copy_ops || atomic_load(&pl->stage) != NULL)
		return 0;
	/* Reserved, not allocated: a page costs memory once precopy sent it
	 * (and again nothing once the guest has it, place_stage_release). */
	st = mmap(NULL, pl->size, PROT_READ | PROT_WRITE, MAP_PRIVATE |
	    MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (st == MAP_FAILED) {
		r = -errno;
		snprintf(err, errlen, "cannot map %" PRIu64 " bytes of staging "
		    "memory for COPY-mode precopy: %s", pl->size, strerror(-r));
		return r;
	}
	/* 4 KiB pages: a staged page is written, copied and dropped alone. */
	if (madvise(st, pl->size, MADV_NOHUGEPAGE) < 0)
		log_warn("migration %s: madvise(MADV_NOHUGEPAGE) on the "
		    "staging memory", pl->id);
	atomic_store(&pl->stage, st);
	return 0;
}

void
place_stage_release(struct place *pl, uint64_t first, uint64_t n)
{
	uint8_t *st = atomic_load(&pl->stage);

	if (st != NULL && n > 0 &&
	    madvise(st + first * pl->ps, n * pl->ps, MADV_DONTNEED) < 0)
		log_warn("migration %s: releasing staging pages %" PRIu64 "+%"
		    PRIu64, pl->id, first, n);
}

uint8_t *
place_store_buf(struct place *pl, uint8_t *bounce, uint64_t first, uint64_t n)
{
	uint8_t *st = atomic_load(&pl->stage);

	if (pl->ops == &place_copy_ops && st != NULL)
		return st + first * pl->ps;
	return pl->ops->buf(pl, bounce, first, n);
}

/* COPY: the bytes are in the staging memory already (place_store_buf); a
 * zero page replaces its older copy (the staging pages are dropped: they
 * read as zero). */
static int
place_stage_store(struct place *pl, uint64_t first, uint64_t n,
    const uint8_t *buf, char *err, size_t errlen)
{
	uint8_t *st = atomic_load(&pl->stage);
	int r;

	if (st == NULL) {
		snprintf(err, errlen, "COPY-mode precopy page %" PRIu64 " "
		    "before the staging memory was mapped", first);
		return -EPROTO;
	}
	if (buf == NULL && madvise(st + first * pl->ps, n * pl->ps,
	    MADV_DONTNEED) < 0) {
		r = -errno;
		snprintf(err, errlen, "zeroing staging pages %" PRIu64 "+%"
		    PRIu64 ": %s", first, n, strerror(-r));
		return r;
	}
	return pagestate_set_valid(pl->pg, first, n);
}

int
place_store(struct place *pl, uint64_t first, uint64_t n, const uint8_t *buf,
    char *err, size_t errlen)
{
	int r;

	if (!place_can_store(pl)) {
		snprintf(err, errlen, "precopy pages need a destination on base "
		    "pages (this one is %s)", pl->ops->name);
		return -ENOTSUP;
	}
	if (pl->ops == &place_copy_ops)
		return place_stage_store(pl, first, n, buf, err, errlen);
	atomic_store(&pl->rewrites, true);
	if (buf == NULL && (r = place_zero_replace(pl, first, n, err,
	    errlen)) < 0)
		return r;
	if (buf != NULL && pl->ops == &place_pwrite_ops &&
	    (r = place_pwrite(pl, first, n, buf, err, errlen)) < 0)
		return r;
	return pagestate_set_valid(pl->pg, first, n);
}
