/* place.h - putting received pages into the destination guest and mapping
 * them, behind one interface with two implementations:
 *   MINOR  guest memory is a memfd: a receiver reads a page's bytes from
 *          TLS straight into the page cache through the alias mapping (or,
 *          page_write = pwrite, into a bounce buffer written into the page
 *          cache with pwrite, place_set_pwrite); the page is marked valid,
 *          then mapped with UFFDIO_CONTINUE. Zero pages are allocated with
 *          fallocate.
 *   COPY   anonymous guest memory (the baseline): bytes go to a bounce
 *          buffer and are placed with UFFDIO_COPY (zero runs with
 *          UFFDIO_ZEROPAGE), which maps them at once; the page is marked
 *          valid after that. Precopy pages go to the daemon's staging
 *          memory instead (valid, not mapped) and are placed from there
 *          with one UFFDIO_COPY after the switchover.
 *   HUGE   MINOR on a hugetlbfs memfd: pages (the pieces moved, ps) are
 *          written through the alias and are valid one by one, but the
 *          guest mapping takes only whole huge pages (hps): a huge page is
 *          mapped by one UFFDIO_CONTINUE once every piece of it is valid.
 *   HUGE COPY  COPY on huge pages (anonymous MAP_HUGETLB memory, MISSING
 *          faults only): the pieces of a huge page are assembled in a
 *          bounce buffer of its own (any receiver, any channel), which is
 *          placed by one UFFDIO_COPY of the whole huge page (the kernel
 *          takes only huge-page-aligned copies there) when its last piece
 *          is in; an all-zero huge page is copied from a zero buffer
 *          (hugetlb has no UFFDIO_ZEROPAGE). Its pieces become valid all
 *          at once, after the copy; a cut drops the partial buffers
 *          (their pieces were never valid: received again).
 * Either way a page is claimed (pagestate) before any byte is written, and
 * valid only after all its bytes are in; MINOR maps only valid pages.
 */
#ifndef PCD_PLACE_H
#define PCD_PLACE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pagestate.h"

/* HUGE COPY: huge pages partly received at once (a bounce buffer each).
 * A source answers demands a huge page at a time and streams the rest in
 * order, so a handful are in flight; more is refused, not allocated. */
#define PLACE_ASM_MAX	64

struct place;

struct place_ops {
	const char	*name;		/* "MINOR" or "COPY" */
	uint64_t	 reg_mode;	/* UFFDIO_REGISTER_MODE_* to register */
	bool		 bounce;	/* receivers need a bounce buffer */
	int	(*open)(struct place *pl, char *err, size_t errlen);
	void	(*close)(struct place *pl);
	/* Where a receiver reads the bytes of claimed pages [first, +n). */
	uint8_t	*(*buf)(struct place *pl, uint8_t *bounce, uint64_t first,
		    uint64_t n);
	/* Claimed pages [first, +n) whose bytes are at buf (NULL: zero
	 * pages): into the guest, valid, mapped. */
	int	(*place)(struct place *pl, uint64_t first, uint64_t n,
		    const uint8_t *buf, char *err, size_t errlen);
	/* Valid pages [first, +n): present in the guest, waiters woken. */
	int	(*map)(struct place *pl, uint64_t first, uint64_t n);
	/* Before the source connects (may be NULL). */
	void	(*prealloc)(struct place *pl, bool (*stopped)(void *),
		    void *arg);
	/* After a session ended, no receiver running: drops what the
	 * receivers held of pages not yet valid (may be NULL). */
	void	(*cut)(struct place *pl);
	/* Receivers claim runs that stay inside one unit of mapping. */
	bool	 unit_runs;
};

struct place_asm;	/* HUGE COPY: the huge pages being assembled */

struct place {
	const struct place_ops	*ops;		/* [const] */
	struct pagestate	*pg;		/* [const] */
	const char		*id;		/* [const] for messages */
	int			 uffd;		/* [const] the VMM's */
	int			 memfd;		/* [const] MINOR */
	uint64_t		 base;		/* [const] guest mapping */
	uint64_t		 off;		/* [const] in the memfd */
	uint64_t		 size;		/* [const] */
	uint32_t		 ps;		/* [const] page (piece) size */
	uint64_t		 hps;		/* [const] unit of mapping: ps,
						 * or the huge page size */
	uint8_t			*alias;		/* [const] MINOR, once open */
	struct place_asm	*as;		/* [const] HUGE COPY, once open */
	/* The alias is wholly mapped and every page allocated (prealloc
	 * finished): a zero run needs no fallocate, since a page is written
	 * through the alias only by its data. A flow that sends a page again
	 * after its content changed (precopy) must zero a page it wrote. */
	atomic_bool		 populated;
	/* The VMM cut its memfd short under the alias: a write through it
	 * fell past the end (sigbus.h). The migration fails. */
	atomic_bool		 cut;
	/* Precopy wrote pages here (place_store): a zero page sent later
	 * replaces what is there (punch, then allocate). */
	atomic_bool		 rewrites;
	/* COPY-mode precopy: the daemon's own anonymous copy of the guest
	 * (the VMM's memory cannot be written twice, nor before the guest
	 * runs): precopied pages are kept here, a page sent again overwrites
	 * its copy, and a valid page not mapped yet is placed from here with
	 * one UFFDIO_COPY. Set once by the bulk receiver (place_stage_open),
	 * NULL when precopy never ran. */
	_Atomic(uint8_t *)	 stage;
};

/* Picks the implementation for the guest's mode. */
void place_init(struct place *pl, bool copy, struct pagestate *pg,
    const char *id, int uffd, int memfd, uint64_t base, uint64_t off,
    uint64_t size, uint32_t ps);
/* MINOR on base pages: receivers write the page cache with pwrite from a
 * bounce buffer instead of through the alias (which is not mapped). A
 * no-op for the other modes. Right after place_init. */
void place_set_pwrite(struct place *pl);
/* A guest on huge pages of hps bytes: the HUGE implementation (MINOR: a
 * hugetlbfs memfd), or HUGE COPY (COPY: anonymous huge pages). Right
 * after place_init. */
void place_set_huge(struct place *pl, uint64_t hps);
/* Page i can be mapped: it is valid, and so is every other page of its
 * unit of mapping (its huge page). */
bool place_unit_valid(const struct place *pl, uint64_t i);
/* Pages per unit of mapping (1, or the pages of a huge page). */
uint64_t place_unit_pages(const struct place *pl);
/* How many of the n pages from first a receiver may claim as one run:
 * n, or up to the end of first's unit of mapping (ops->unit_runs). */
uint64_t place_run_max(const struct place *pl, uint64_t first, uint64_t n);
/* Pages of the unit of mapping that starts at page k that are here:
 * valid, or (HUGE COPY) written to its bounce buffer. */
uint64_t place_unit_have(const struct place *pl, uint64_t k);
/* The page state file records which mode wrote it. */
uint32_t place_mode_id(const struct place *pl);

/* Precopy (MINOR or COPY on base pages): claimed pages [first, +n) whose
 * bytes are at buf (NULL: zero pages; else buf is place_store_buf's)
 * become valid WITHOUT being mapped (the guest does not run here yet):
 * MINOR in the page cache, COPY in the staging memory. -ENOTSUP on huge
 * pages. */
int place_store(struct place *pl, uint64_t first, uint64_t n,
    const uint8_t *buf, char *err, size_t errlen);
bool place_can_store(const struct place *pl);
/* Where a precopy receiver reads the bytes of claimed pages [first, +n):
 * the alias or the bounce buffer (MINOR) or the staging memory (COPY). */
uint8_t *place_store_buf(struct place *pl, uint8_t *bounce, uint64_t first,
    uint64_t n);
/* COPY: maps the staging memory (reserved, not allocated) before the first
 * precopy page; a no-op otherwise or when done already. */
int place_stage_open(struct place *pl, char *err, size_t errlen);
/* COPY: the staging copies of pages [first, +n) are no longer needed
 * (mapped, or stale and coming again by postcopy): their memory is given
 * back. A no-op without staging. */
void place_stage_release(struct place *pl, uint64_t first, uint64_t n);

/* A receiver's buffer: NULL in MINOR and HUGE COPY modes (not an
 * error). ops->buf returns NULL only in HUGE COPY mode, when no bounce
 * buffer can be had for the huge page (out of memory, or more than
 * PLACE_ASM_MAX huge pages partly received). */
int place_rx_new(struct place *pl, uint8_t **bounce);

/* Wakes whoever waits on [addr, addr+len) of the guest mapping. */
int place_wake(struct place *pl, uint64_t addr, uint64_t len);

#endif
