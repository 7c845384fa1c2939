/* precopy.c - when precopy stops (see precopy.h). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "precopy.h"

void
precopy_init(struct precopy *p, const struct precopy_policy *pol,
    uint64_t npages)
{
	memset(p, 0, sizeof(*p));
	p->pol = *pol;
	if (p->pol.stall_pct == 0)
		p->pol.stall_pct = PRECOPY_STALL_PCT;
	if (p->pol.max_downtime_ms == 0)
		p->pol.max_downtime_ms = PRECOPY_DOWNTIME_MS;
	if (p->pol.page_size == 0)
		p->pol.page_size = 4096;
	p->remaining = npages;
}

uint64_t
precopy_downtime_ms(const struct precopy *p, uint64_t n)
{
	if (n == 0)
		return 0;
	if (p->bandwidth == 0)
		return UINT64_MAX;
	/* Round up: 1 byte over still costs a millisecond. */
	return (n * p->pol.page_size * 1000 + p->bandwidth - 1) / p->bandwidth;
}

const char *
precopy_decision_name(enum precopy_decision d)
{
	switch (d) {
	case PRECOPY_CONTINUE:	return "continue";
	case PRECOPY_CONVERGED:	return "converged";
	case PRECOPY_SWITCH:	return "switch to postcopy";
	}
	return "unknown";
}

/* Progress of a round in percent of what remained before it: how much
 * smaller the dirty set got (0 when it grew). */
static uint64_t
precopy_progress_pct(uint64_t before, uint64_t after)
{
	if (before == 0 || after >= before)
		return 0;
	return (before - after) * 100 / before;
}

enum precopy_decision
precopy_next(struct precopy *p, const struct precopy_round *r, char *why,
    size_t len)
{
	uint64_t before = p->remaining, pct, down;
	enum precopy_decision d = PRECOPY_CONTINUE;
	char dummy[1];

	if (why == NULL || len == 0) {
		why = dummy;
		len = sizeof(dummy);
	}
	p->rounds++;
	p->pages_sent += r->pages_sent;
	p->remaining = r->dirty_after;
	/* Bandwidth only from a round long enough to measure. */
	if (r->elapsed_us >= 1000 && r->bytes_sent > 0)
		p->bandwidth = r->bytes_sent * 1000000 / r->elapsed_us;
	pct = precopy_progress_pct(before, r->dirty_after);
	down = precopy_downtime_ms(p, r->dirty_after);
	if (down <= p->pol.max_downtime_ms) {
		snprintf(why, len, "round %" PRIu32 ": %" PRIu64 " pages left, "
		    "about %" PRIu64 " ms at %" PRIu64 " KiB/s, within %" PRIu32
		    " ms: converged", p->rounds, r->dirty_after, down,
		    p->bandwidth >> 10, p->pol.max_downtime_ms);
		return PRECOPY_CONVERGED;
	}
	if (p->pol.auto_switch && p->pol.max_rounds > 0 &&
	    p->rounds >= p->pol.max_rounds) {
		d = PRECOPY_SWITCH;
		snprintf(why, len, "round %" PRIu32 ": %" PRIu64 " pages left "
		    "after the last of %" PRIu32 " rounds: switching to "
		    "postcopy", p->rounds, r->dirty_after, p->pol.max_rounds);
	} else if (p->pol.auto_switch && pct < p->pol.stall_pct) {
		d = PRECOPY_SWITCH;
		snprintf(why, len, "round %" PRIu32 ": %" PRIu64 " pages left "
		    "of %" PRIu64 ", %" PRIu64 "%% progress (under %" PRIu32
		    "%%): stall, switching to postcopy", p->rounds,
		    r->dirty_after, before, pct, p->pol.stall_pct);
	} else if (down == UINT64_MAX) {
		snprintf(why, len, "round %" PRIu32 ": %" PRIu64 " pages left "
		    "of %" PRIu64 " (%" PRIu64 "%% progress), bandwidth not "
		    "measured yet: another round", p->rounds, r->dirty_after,
		    before, pct);
	} else {
		snprintf(why, len, "round %" PRIu32 ": %" PRIu64 " pages left "
		    "of %" PRIu64 " (%" PRIu64 "%% progress), about %" PRIu64
		    " ms (over %" PRIu32 "): another round", p->rounds,
		    r->dirty_after, before, pct, down, p->pol.max_downtime_ms);
	}
	return d;
}
