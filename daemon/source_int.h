/* source_int.h - what the source's files share: struct source, used by
 * source.c (channels, the switchover, page requests, the postcopy bulk
 * stream), source_pages.c (zero pages, claims, digests, runs) and
 * source_precopy.c (the precopy rounds). Nothing outside the
 * source includes it.
 */
#ifndef PCD_SOURCE_INT_H
#define PCD_SOURCE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "migration_int.h"
#include "precopy.h"
#include "session.h"

struct chan;
struct dirty;

#define SRC_NO_HINT		UINT64_MAX
#define SRC_ZERO_RUN_MAX	4096	/* pages per ZERO record from bulk */
#define SRC_PEEK_MS		100	/* before the pause: urgent channel */
#define SRC_YIELD_MS		20	/* huge pages: the bulk stream waits at
					 * most this long (per run) for an
					 * urgent huge page to be sent */
#define SRC_SYNC_MS		2000	/* converged: wait for the destination
					 * to apply what was sent (bounded: an
					 * older one does not answer) */
#define SRC_STRIPE_PAGES	1024	/* bulk channels: pages per stripe */

struct source;

/*
 * A sender's copy of a few pages of guest memory, read from the memfd with
 * pread: zero checks, digests and TLS read the copy, so the source never
 * touches guest memory through a mapping (the first touch of each page of
 * a mapping is what costs on nested virtualisation: postcopy-bench
 * page_touch_ro_us against page_pread_us), and a page is hashed and sent
 * from the same bytes. The copy holds while gen is the source's view_gen,
 * which each precopy scan moves: a page dirtied before a scan is read
 * after it. Once the guest is paused nothing moves it. Owned by one
 * thread.
 */
#define SRC_VIEW_PAGES		64	/* WIRE_MAX_BATCH */
struct src_view {
	uint8_t			*buf;		/* SRC_VIEW_PAGES pages */
	uint64_t		 first;		/* page of buf[0] */
	uint32_t		 n;		/* pages held (0: none) */
	uint32_t		 ahead;		/* pages to read on a miss */
	uint64_t		 gen;
	int			 err;		/* why src_pages last said NULL */
};

/* One bulk sender: its thread, its channel (SESSION_BULK + k) and the
 * stripes it owns (stripe j belongs to sender j % nbulk). */
struct src_bulk {
	struct source		*s;
	uint32_t		 k;
	pthread_t		 thr;
	bool			 started;
	/* Pages of its stripes that were claimed, and their number: the
	 * sender is done when they are equal. */
	_Atomic uint64_t	 sent;
	uint64_t		 total;		/* [const] */
	/* Where its stream continues (a page request in its stripes). */
	_Atomic uint64_t	 hint;
	struct src_view		 view;		/* [its thread; precopy runs
						 * on sender 0's] */
};

struct source {
	struct mig		*m;		/* [const] */
	struct mig_counters	*c;		/* [const] the migration's */
	struct session		 s;		/* channels, stop, broken */
	pthread_t		 main_thr;
	bool			 main_started;
	uint32_t		 nbulk;		/* [const] bulk channels */
	uint64_t		 stripe;	/* [const] pages per stripe */
	struct src_bulk		 bulk[WIRE_BULK_CHANNELS_MAX];
	_Atomic uint32_t	 streams_done;	/* senders whose stripes are
						 * all sent (this session) */
	char			 addr[256];	/* [s.lock] destination */

	/* Guest memory, read-only, for residency (mincore) only: pages are
	 * read through views (src_pages), so a memfd cut short by its VMM is
	 * an error, not a SIGBUS. */
	const uint8_t		*map;
	struct src_view		 urg_view;	/* [main] page requests */
	_Atomic uint64_t	 view_gen;	/* moved by each precopy scan */
	uint64_t		 npages;
	uint32_t		 ps;
	uint32_t		 upp;		/* pieces per huge page (1: base
						 * pages) */
	_Atomic uint64_t	*sent;		/* bitmap: page queued on a channel */
	uint64_t		*hole;		/* bitmap: page is a hole in the memfd */
	atomic_bool		 holes_ready;	/* hole is filled in (after pause) */
	uint64_t		 zero_hash;	/* XXH3-64 of an all-zero page */
	/* Digests taken as pages are sent, while they are in the cache:
	 * hash[i] holds for page i once bit i of hashed is set. */
	_Atomic uint64_t	*hash;
	_Atomic uint64_t	*hashed;	/* bitmap */
	_Atomic uint64_t	 sent_count;
	_Atomic uint64_t	 zero_units;	/* huge pages sent as one ZERO
						 * run (no bytes) */
	/* [main] the huge page of the last whole request: all zero, and
	 * sent as one ZERO run in this session (see src_serve_zero_unit) */
	uint64_t		 urg_unit;
	bool			 urg_zero, urg_sent;
	/* Huge pages: the main thread is sending demanded huge pages (from
	 * a whole request until no request is left to read); the bulk
	 * stream waits (SRC_YIELD_MS at most) rather than compete with it
	 * for the CPU and the path. Cleared with session_kick. */
	atomic_bool		 urgent_busy;
	_Atomic uint64_t	 yields, yields_capped;	/* bulk senders */

	/* [s.lock] */
	bool			 paused;
	bool			 switched;	/* Switchover sent (dest has it) */
	bool			 kick;		/* reconnect now (Resume) */
	void			*devstate;
	size_t			 devstate_len;
	uint64_t		 paused_at_ms;
	bool			 final_sent;	/* precopy: the stale list is out
						 * (or the destination has it) */
	bool			 restored;	/* [const] picked up after a
						 * restart (source_state.c) */

	/* Precopy (source_precopy.c). */
	struct dirty		*dirty;		/* [const] NULL: postcopy-only */
	bool			 precopy;	/* [const] rounds run */
	struct precopy		 pc;		/* [bulk] the decision */
	uint64_t		*need;		/* [bulk; main while no sender
						 * runs] pages the destination
						 * lacks or holds stale */
	uint64_t		*resent;	/* [same] pages sent again (a
						 * round after round 0) in this
						 * session: if it breaks, the
						 * destination may still hold
						 * an older copy as valid */
	bool			 tracking;	/* [bulk] dirty_start done */
	atomic_bool		 switch_req;	/* stop the rounds (decided, or
						 * StartPostcopy) */
	atomic_bool		 converged;	/* ... because they converged */
};


/* source.c */
/* Waits until done (NULL: until the session ends), pinging bulk channel
 * k (and, k = 0, the urgent one) when quiet. */
int	src_wait_pinging(struct source *s, uint32_t k, bool (*done)(void *));

/* source_pages.c */
/* The view's buffer (SRC_VIEW_PAGES pages), reading ahead pages on a
 * miss; -ENOMEM. Freed by src_view_free. */
int	src_view_init(struct source *s, struct src_view *v, uint32_t ahead);
void	src_view_free(struct src_view *v);
/* Pages [i, i+n) of guest memory, n <= SRC_VIEW_PAGES, contiguous: from
 * v's copy, read again from page i when they are not all in it or it is
 * stale. NULL (why in v->err, -ENXIO: past the memfd's end) when they
 * cannot be read. */
const uint8_t *src_pages(struct source *s, struct src_view *v, uint64_t i,
	    uint32_t n);
/* The channel's error for a NULL from src_pages (pages [i, i+n)). */
int	src_read_error(struct source *s, struct src_view *v, struct chan *c,
	    uint64_t i, uint32_t n);
/* Page i reads as zeros (a hole, or by content). */
bool	src_zero(struct source *s, struct src_view *v, uint64_t i);
/* The huge page starting at piece first is all zero. */
bool	src_zero_unit(struct source *s, struct src_view *v, uint64_t first);
/* After the pause (or before precopy round 0), once: the memfd's holes
 * (zero without reading); an error on c when the VMM cut the memfd
 * short. */
int	src_find_holes(struct source *s, struct chan *c);
/* The source's pages_valid rises to n, never goes back (a resume). */
void	src_valid_raise(struct source *s, uint64_t n);
/* Marks page i sent; false if it was already (counts it once). */
bool	src_claim(struct source *s, uint64_t i);
/* The bulk sender whose stripe holds page i. */
uint32_t src_owner(const struct source *s, uint64_t i);
/* The counts of sent pages again from the bitmap (after it was rebuilt);
 * the senders' hints dropped. No sender streams. */
void	src_recount(struct source *s);
/* A page request ended at page end: the stream of its stripe's sender
 * continues there. */
void	src_hint(struct source *s, uint64_t end);
/* Sends pages [i, i+n) of one kind (digests taken); n <= WIRE_MAX_BATCH
 * for data. */
int	src_send_run(struct source *s, struct src_view *v, struct chan *c,
	    uint64_t i, uint32_t n, bool zero);
/* Bulk: claims the run of unsent pages of one kind from pos, not past
 * page lim; its length (0: pos was sent already), *zero its kind. */
uint32_t src_bulk_run(struct source *s, struct src_view *v, uint64_t pos,
	    uint64_t lim, bool *zero);
/* Sleeps as needed so the bulk stream stays under the limit, of which
 * this sender, one of senders streaming at once, takes its share. */
void	src_throttle(struct source *s, uint32_t senders, uint64_t *epoch_ns,
	    uint64_t *epoch_bytes, uint64_t *cur_bps, uint64_t sent);
/* Bulk, after the stream: every page's digest. */
int	src_send_digests(struct source *s, struct src_view *v, struct chan *c);

/* source_state.c: a restart's pick-up from m->state_path (token, device
 * state, paused). */
int	src_state_load(struct source *s, char *err, size_t errlen);

/* source_precopy.c */
int	src_precopy_setup(struct source *s);
/* Bulk thread: the rounds until the guest paused, then the final stale
 * list; 0 once it is out (at once when precopy does not run or is over). */
int	src_precopy_run(struct source *s, struct chan *c);
/* A resume Welcome in precopy: pages the destination does not list are
 * sent again. Main thread, no sender running. */
void	src_precopy_have(struct source *s, const Pcd__Wire__Welcome *w);
void	src_precopy_free(struct source *s);

#endif
