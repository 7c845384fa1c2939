/* precopy.h - when precopy stops: the decision after each round.
 *
 * A migration that starts in precopy copies guest memory in rounds while
 * the guest runs on the source: round 0 sends every page, each later round
 * the pages written since the previous scan (dirty.h). After each round
 * the source scans and asks precopy_next() what to do with what is left:
 *
 *   CONVERGED  the remaining dirty pages fit max_downtime_ms at the
 *              bandwidth the last round measured: pause the guest, send
 *              them, and complete without postcopy;
 *   SWITCH     switch to postcopy now (automatic: max_rounds reached, or a
 *              round made less than stall_pct percent progress, as Nova's
 *              live_migration_permit_post_copy does);
 *   CONTINUE   another round.
 *
 * An orchestrator's StartPostcopy switches at any time regardless (that is
 * the migration's business, not this file's). Pure logic, no I/O: the
 * unit tests drive it with made-up rounds.
 */
#ifndef PCD_PRECOPY_H
#define PCD_PRECOPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PRECOPY_STALL_PCT	10	/* a round removing less is a stall */
#define PRECOPY_DOWNTIME_MS	300	/* default max_downtime_ms (QEMU's) */

struct precopy_policy {
	uint32_t	max_rounds;	/* 0: no limit */
	bool		auto_switch;	/* switch on a stall (and at
					 * max_rounds); false: only
					 * StartPostcopy or convergence */
	uint32_t	stall_pct;	/* 0: PRECOPY_STALL_PCT */
	uint32_t	max_downtime_ms; /* 0: PRECOPY_DOWNTIME_MS */
	uint32_t	page_size;
};

/* What one round did. */
struct precopy_round {
	uint64_t	pages_sent;	/* in this round (zero pages too) */
	uint64_t	bytes_sent;	/* wire bytes of this round */
	uint64_t	elapsed_us;	/* its duration */
	uint64_t	dirty_after;	/* pages the scan after it reported */
};

enum precopy_decision {
	PRECOPY_CONTINUE,
	PRECOPY_CONVERGED,
	PRECOPY_SWITCH,
};

struct precopy {
	struct precopy_policy	pol;
	uint32_t		rounds;		/* completed */
	uint64_t		remaining;	/* dirty after the last round */
	uint64_t		bandwidth;	/* bytes/s, last measured */
	uint64_t		pages_sent;	/* all rounds */
};

/* npages: the guest; before round 0 every page "remains". */
void precopy_init(struct precopy *p, const struct precopy_policy *pol,
    uint64_t npages);

/* Records a round and decides. why (may be NULL) says in a sentence what
 * the numbers were ("round 3: 1200 pages left, 5% progress: stall"). */
enum precopy_decision precopy_next(struct precopy *p,
    const struct precopy_round *r, char *why, size_t len);

/* The downtime, in ms, that sending n pages would take at the measured
 * bandwidth (UINT64_MAX when nothing was measured yet). */
uint64_t precopy_downtime_ms(const struct precopy *p, uint64_t n);

const char *precopy_decision_name(enum precopy_decision d);

#endif
