/* migration_int.h - what migration.c shares with the data path (source.c,
 * dest.c). Not for the control plane: it uses migration.h only.
 *
 * Threads: fields marked [loop] belong to the event-loop thread; [const]
 * are set before any data-path thread starts and never change while one
 * runs; [atomic] and [lock] fields are shared.
 */
#ifndef PCD_MIGRATION_INT_H
#define PCD_MIGRATION_INT_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "log.h"
#include "migration.h"
#include "precopy.h"
#include "state.h"
#include "vmm.h"

struct event;
struct source;
struct dest;
struct dest_done;
struct session;
struct session_verdict;

/* Channels: how long without any byte before a connection counts as lost
 * (both sides send a Ping at least every MIG_PING_MS), and the source's
 * reconnect backoff. */
#define MIG_PING_MS		1000
#define MIG_LINK_TIMEOUT_MS	10000
#define MIG_RECONNECT_MIN_MS	100
#define MIG_RECONNECT_MAX_MS	3000

struct mig_counters {
	_Atomic uint64_t	pages_valid;
	_Atomic uint64_t	pages_zero;
	_Atomic uint64_t	pages_bulk;
	_Atomic uint64_t	pages_urgent;
	_Atomic uint64_t	bytes;
	_Atomic uint64_t	faults_remote;
	_Atomic uint64_t	faults_local;
	_Atomic uint64_t	requests;
	_Atomic uint64_t	lat_hist[MIG_LAT_BUCKETS];
	_Atomic uint64_t	lat_max_us;
	_Atomic uint64_t	lat_sum_us;	/* sum of every recorded latency */
	_Atomic uint64_t	pages_verified;
	_Atomic uint64_t	pages_mismatched;
	_Atomic uint64_t	reconnects;	/* sessions resumed after a loss */
	/* Precopy (source): rounds completed, pages sent by them and by the
	 * last one, pages the scans reported written (sum), the last scan's
	 * dirty rate (pages/s), pages dirty after the last round, and at
	 * the pause (the stale list). */
	_Atomic uint64_t	pc_rounds;
	_Atomic uint64_t	pc_pages_sent;
	_Atomic uint64_t	pc_last_round;
	_Atomic uint64_t	pc_redirtied;
	_Atomic uint64_t	pc_dirty_rate;
	_Atomic uint64_t	pc_remaining;
	_Atomic uint64_t	pc_final_dirty;
};

struct mig {
	struct mig_table	*t;		/* [const] */
	struct mig		*next;		/* [loop] */
	char			 id[MIG_ID_MAX + 1];	/* [const] */
	enum mig_role		 role;		/* [const] */
	enum mig_state		 state;		/* [loop] */
	bool			 registered;	/* [loop] prepare/migrate done */
	bool			 started;	/* [loop] data path started */
	char			 errmsg[256];	/* [loop] */
	char			 refused[256];	/* [loop] last refused peer */

	char			 addr[256];	/* [const] dest: listen, src: peer */
	char			 state_path[PATH_MAX];	/* [const] dest: page
						 * state file, "" = none */
	char			 listen[128];	/* [loop] dest: bound address */
	struct mig_tls		 tls;		/* [const] */
	_Atomic uint64_t	 bandwidth_bps;

	uint64_t		 start_ms;	/* [loop] wall clock */
	uint64_t		 t0_ns, setup_ns, end_ns;	/* [loop] */
	uint64_t		 pause_wall_ms;	/* src: pause requested */
	uint64_t		 downtime_ms;

	struct vmm_session	*vmm;		/* [loop] */
	struct vmm_guest	 g;		/* [const] once attached */
	bool			 attached;	/* [loop] */

	int			 stopfd;	/* eventfd: readable = stop */
	int			 evfd;		/* eventfd: threads -> loop */
	struct event		*ev;
	struct event		*tick;
	struct event		*vmm_wait;	/* [loop] registered, no VMM */
	uint64_t		 last_sig;	/* [loop] progress signature */

	struct mig_queue	 q;		/* events, threads -> loop */
	bool			 pause_asked;	/* [loop] src: VMM asked to pause */
	bool			 switched_over;	/* [loop] was in a switched-over
						 * state (mig_switched_over) */

	/* Precopy (source): asked for (Migrate, config), whether it runs
	 * (a VMM that offers dirty tracking on base pages), the policy, and
	 * why it does not run or how it ended (Status precopy_note). */
	bool			 precopy_req;	/* [const] */
	bool			 precopy;	/* [loop] set at start */
	bool			 converged;	/* [loop] precopy converged */
	struct precopy_policy	 pol;		/* [const] */
	uint32_t		 bulk_channels;	/* [const] source: 1 .. 16 */
	/* Both roles: poll the urgent channel (and, destination, the
	 * userfaultfd) for this long before sleeping; 0: never (config
	 * demand_spin_us, taken when the migration is created). */
	uint32_t		 demand_spin_us;	/* [const] */
	/* Destination: received base pages go through the alias, not
	 * pwrite (config page_write, taken when the migration is created). */
	bool			 page_write_alias;	/* [const] */
	char			 precopy_note[256];	/* [loop] */

	struct mig_counters	 c;
	struct source		*src;		/* [loop] owner */
	struct dest		*dst;		/* [loop] owner */
	struct dest_done	*done;		/* [loop] owner: dest_done.c */
	unsigned		 completed_grace_s;	/* [const] config */
};

/* From data-path threads: events for the loop, in order (state.h). */
void mig_post(struct mig *m, enum mig_ev ev);
void mig_post_fail(struct mig *m, const char *fmt, ...) PCD_PRINTF(2, 3);
void mig_post_refused(struct mig *m, const char *fmt, ...) PCD_PRINTF(2, 3);
/* The peer cancelled the migration before switchover (its Error frame). */
void mig_post_cancel(struct mig *m, const char *fmt, ...) PCD_PRINTF(2, 3);
/* dest: takes ownership of state (malloc'd, may be NULL when len 0). */
void mig_post_switchover(struct mig *m, void *state, size_t len,
    uint64_t paused_at_ms);
/* The channels were lost (down, with why) or are back (up). */
void mig_post_link(struct mig *m, bool down, const char *fmt, ...)
    PCD_PRINTF(3, 4);
/* Any event with a text (precopy-round-done: what the round did). */
void mig_post_text(struct mig *m, enum mig_ev ev, const char *fmt, ...)
    PCD_PRINTF(3, 4);

/* source.c (loop thread) */
int source_start(struct mig *m, char *err, size_t errlen);
void source_paused(struct mig *m, const void *state, size_t len);
/* source_state.c: the VMM paused: what a restarted daemon needs, in
 * <dir>/<id>.pcsrc (sets m->state_path); dir "" = nothing kept. */
int source_save_state(struct mig *m, const char *dir, const void *dev,
    size_t len, char *err, size_t errlen);
void source_stop(struct mig *m);	/* stops, joins, frees; NULL-safe */
/* Cancel before switchover: tells the destination (session_tell_cancel). */
int source_tell_cancel(struct mig *m, const char *why);
/* Precopy: stop the rounds (StartPostcopy); the loop then asks the VMM
 * to pause. False when they were stopped already. */
bool source_stop_rounds(struct mig *m);
/* Precopy: the rounds decided to stop (converged or switch) before the
 * channels were lost. */
bool source_rounds_stopped(struct mig *m, bool *converged);
/* Reconnect now (addr: a new destination address, or NULL); when the
 * channels are up, they are dropped and reconnected. */
int source_resume(struct mig *m, const char *addr, char *err, size_t errlen);

/* dest.c (loop thread) */
int dest_listen(struct mig *m, char *err, size_t errlen);
int dest_start(struct mig *m, char *err, size_t errlen);
void dest_stop(struct mig *m);		/* stops, joins, frees; NULL-safe */
/* Cancel before switchover: tells the source (session_tell_cancel). */
int dest_tell_cancel(struct mig *m, const char *why);
/* Drops the channels (the source reconnects). */
int dest_resume(struct mig *m, char *err, size_t errlen);

/* dest_done.c (loop thread): after the destination completed, its
 * listener, session token and verdict stay for t->completed_grace_s so a
 * source whose Complete a cut lost is told (Welcome.completed). keep:
 * takes them from the session (dest_stop, after the joins); serve: starts
 * answering (after mig_stop_datapath: it drains the stop eventfd); stop:
 * ends it (joins) and frees the port. All NULL-safe, idempotent. */
void dest_done_keep(struct mig *m, struct session *s,
    const struct session_verdict *v);
void dest_done_serve(struct mig *m);
void dest_done_stop(struct mig *m);

/* Atomic page bitmaps (one bit per page). */
static inline bool
bm_test(_Atomic uint64_t *bm, uint64_t i)
{
	/* Sequentially consistent: a writer that sets one bitmap then reads
	 * another pairs with a thread doing the opposite (valid vs faulted). */
	return (atomic_load(&bm[i >> 6]) >> (i & 63)) & 1;
}

/* Sets the bit; returns its previous value. */
static inline bool
bm_set(_Atomic uint64_t *bm, uint64_t i)
{
	uint64_t bit = 1ull << (i & 63);

	return (atomic_fetch_or(&bm[i >> 6], bit) & bit) != 0;
}

/* Clears the bit; returns its previous value. */
static inline bool
bm_clear(_Atomic uint64_t *bm, uint64_t i)
{
	uint64_t bit = 1ull << (i & 63);

	return (atomic_fetch_and(&bm[i >> 6], ~bit) & bit) != 0;
}

#endif
