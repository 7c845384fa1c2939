/* pagestate.h - a destination's per-page state: the bitmaps, the page
 * hashes, the waiting faults, and the page state file that lets a
 * restarted daemon pick a migration up.
 *
 * Bitmaps (one bit per page, atomic, any thread):
 *   claimed    a receiver writes the page (set before any byte is written;
 *              a second copy of the page is dropped)
 *   valid      all its bytes are written and hashed (MINOR: in the page
 *              cache; COPY: placed with UFFDIO_COPY)
 *   requested  asked for (a demand or read-ahead)
 *   mapped     mapped in the guest
 *   faulted    a guest fault waits on it (with its start time in pend[])
 * A bit is only ever set before the fact it stands for is used: claimed
 * before the bytes, valid after them, mapped after valid (MINOR).
 *
 * The page state file (<state_dir>/<id>.pcstate, MAP_SHARED): a header (the
 * layout), the valid bitmap and the hashes, used directly as `valid` and
 * `hash`. Its blocks are reserved (fallocate) before it is mapped, so a
 * full directory refuses the migration with ENOSPC instead of killing the
 * daemon with SIGBUS on a write through the mapping.
 */
#ifndef PCD_PAGESTATE_H
#define PCD_PAGESTATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "migration_int.h"

#define PAGESTATE_PENDING_MAX	1024	/* timed waiting faults */
#define PAGESTATE_HDR_LEN	4096	/* the file's header block */

struct pagestate {
	uint64_t		 npages;	/* [const] */
	uint32_t		 ps;		/* [const] page size */
	struct mig_counters	*c;		/* [const] the migration's */
	_Atomic uint64_t	*valid;
	_Atomic uint64_t	*claimed;
	_Atomic uint64_t	*requested;
	_Atomic uint64_t	*mapped;
	_Atomic uint64_t	*faulted;
	uint64_t		*hash;		/* of each page as written; a
						 * receiver writes its claimed
						 * pages' entries only */
	uint64_t		 zero_hash;	/* [const] of an all-zero page */

	/* When each waiting fault began (latency histogram): a blocked fault
	 * stops its guest thread, so there are at most as many as guest
	 * threads. Kept consistent with `faulted` under plock (a leaf). */
	pthread_mutex_t		 plock;
	struct pagestate_pending {
		uint64_t	 index;
		uint64_t	 t0;
	}			 pend[PAGESTATE_PENDING_MAX];
	size_t			 npend;
	/* Faults waiting (bits of `faulted`, changed under plock; read
	 * without it). */
	atomic_uint		 waiting;

	int			 fd;		/* page state file (flock'ed) */
	uint8_t			*map;
	size_t			 len;
};

/* Sets up an empty page state; no allocation yet. */
void pagestate_init(struct pagestate *p, uint64_t npages, uint32_t ps,
    struct mig_counters *c);
/* Opens (restore) or creates the page state file at path, reserves its
 * blocks and maps `valid` and `hash` from it. mode and base describe the
 * guest layout (a restore checks them). -ENOSPC (or -EDQUOT) when the
 * directory has no room for it. */
int pagestate_file_open(struct pagestate *p, const char *id, const char *path,
    bool restore, uint32_t mode, uint64_t base, char *err, size_t errlen);
/* Allocates whatever the file does not provide. */
int pagestate_alloc(struct pagestate *p, char *err, size_t errlen);
/* After a restart: what the file lists stays valid and claimed, and is
 * counted. Returns the number of pages. */
uint64_t pagestate_restore(struct pagestate *p);
/* The migration's session token in the file's header block (so a
 * restarted destination checks the reconnecting source's). No file: a
 * no-op / false. */
void pagestate_token_save(struct pagestate *p, const uint8_t *token,
    size_t len);
bool pagestate_token_load(struct pagestate *p, uint8_t *token, size_t len);
void pagestate_free(struct pagestate *p);	/* NULL-safe, idempotent */

/* Whether the state directory can hold a page state file at all (Prepare
 * asks before the guest's size is known). 0, or -ENOSPC/-EDQUOT/... with a
 * message naming the directory. */
int pagestate_dir_check(const char *dir, const char *id, char *err,
    size_t errlen);

/* Claims the longest run of unclaimed pages from first (at most n);
 * returns its length, 0 when first is already claimed. */
uint64_t pagestate_claim_run(struct pagestate *p, uint64_t first, uint64_t n);
/* Hashes of pages [first, first+n) whose bytes are at buf (NULL: zero). */
void pagestate_hash(struct pagestate *p, uint64_t first, uint64_t n,
    const uint8_t *buf);
/* Marks claimed pages valid (all their bytes are in); true when every page
 * of the guest is valid now. */
bool pagestate_set_valid(struct pagestate *p, uint64_t first, uint64_t n);
bool pagestate_all_valid(struct pagestate *p);
/* Precopy: pages [first, first+n) that are valid and not mapped become
 * not valid and unclaimed again (their copy is stale: received again).
 * Only while no receiver writes them and nothing maps them. Returns how
 * many were valid. */
uint64_t pagestate_invalidate(struct pagestate *p, uint64_t first,
    uint64_t n);
/*
 * A fault's latency runs from the fault thread's read of it to the
 * wake-up of the guest thread, inside the ioctl that maps its page. After
 * that ioctl the guest thread it woke may take this thread's CPU; that
 * wait is the guest running, not the fault waiting, and is left out:
 * pagestate_wake_mark(), called before the ioctl, notes the calling
 * thread's runqueue wait so far when a fault waits on one of the pages
 * (0 otherwise), and pagestate_mapped() subtracts what it grew by since.
 * That read (/proc/thread-self/schedstat, 1.5 us on the test host) comes
 * before the wake-up: it is taken only for a range a fault waits on, a
 * remote fault's (hundreds of us); local faults are timed without it.
 */
uint64_t pagestate_wake_mark(struct pagestate *p, uint64_t first,
    uint64_t n);
/* Pages [first, first+n) are mapped: their waiting faults are over. */
void pagestate_mapped(struct pagestate *p, uint64_t first, uint64_t n,
    uint64_t mark);
/* Records the first fault on page i; false if one is already waiting. */
bool pagestate_fault_add(struct pagestate *p, uint64_t i, uint64_t t0);
/* After a session ended: claimed pages that never became valid lost their
 * bytes with the connection; they are released (received again). No
 * receiver may run. Returns how many. */
uint64_t pagestate_release_cut(struct pagestate *p);

/* Counters. */
void pagestate_count_pages(struct pagestate *p, uint64_t n, bool zero,
    bool urgent);
void pagestate_count_bytes(struct pagestate *p, uint64_t bytes);
void pagestate_count_fault(struct pagestate *p, bool local);
void pagestate_count_request(struct pagestate *p);
void pagestate_lat_record(struct mig_counters *c, uint64_t us);

#endif
