/* state.h - the migration state machine as data: the events a migration
 * reacts to, the transition table that says for every (state, event) what
 * happens, and the ordered queue that carries events from the data-path
 * threads to the event loop. Pure: no daemon, no loop, no thread of its own
 * (tests/unit/test_state.c drives it directly). migration.c applies the
 * rules (its actions talk to the VMM and the data path).
 *
 * The states are enum mig_state (migration.h); DESIGN.md "The migration
 * state machine" draws the table.
 */
#ifndef PCD_STATE_H
#define PCD_STATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "migration.h"

enum mig_ev {
	MIG_EV_START,		/* loop: VMM attached and Prepare/Migrate done */
	MIG_EV_CONNECTED,	/* both channels up (first session) */
	MIG_EV_RESTORED,	/* dest, restarted after switchover: the source
				 * is back and the guest already runs here */
	MIG_EV_PRECOPY_ROUND_DONE, /* src: one precopy round sent and
				 * scanned (source_precopy.c) */
	MIG_EV_CONVERGED,	/* src: what is left fits max_downtime_ms:
				 * switch over, complete without postcopy */
	MIG_EV_START_POSTCOPY,	/* src: switch over now (StartPostcopy, round
				 * limit, stall; at once without rounds) */
	MIG_EV_VMM_PAUSED,	/* src: the VMM stopped the guest and handed
				 * over its device state */
	MIG_EV_DEVICE_STATE,	/* dest: the source's Switchover arrived */
	MIG_EV_LINK_DOWN,	/* channels lost (text: why) */
	MIG_EV_LINK_UP,		/* channels back (text: how) */
	MIG_EV_DONE,		/* every page moved and verified */
	MIG_EV_FAIL,		/* an error ends it (text: why) */
	MIG_EV_CANCEL,		/* Cancel RPC or SIGTERM (text: by whom) */
	MIG_EV_REFUSED,		/* dest: a bad peer was turned away (text) */
	MIG_EV_COUNT
};

enum mig_verdict {
	MIG_REFUSE,		/* not allowed here: logged with the reason */
	MIG_GO,			/* allowed: go to rule.to (may be the same) */
	MIG_IGNORE,		/* an expected late event: dropped quietly */
};

struct mig_rule {
	enum mig_verdict	 verdict;
	enum mig_state		 to;		/* MIG_GO */
	const char		*why;		/* MIG_REFUSE, MIG_IGNORE */
};

const char *mig_event_name(enum mig_ev ev);
/* Whether a role ever sees ev (a source never receives a Switchover...). */
bool mig_event_for_role(enum mig_role role, enum mig_ev ev);
/* The rule for ev in state s of a migration of role r. Never NULL: out of
 * range values get a refusal. */
const struct mig_rule *mig_rule(enum mig_role r, enum mig_state s,
    enum mig_ev ev);

/* A session of channels runs or is being recovered: precopy, switchover,
 * postcopy and their paused forms (Resume applies). */
bool mig_has_channels(enum mig_state s);

/* One event on its way from a data-path thread to the loop. */
struct mig_event {
	enum mig_ev		 kind;
	char			 text[256];	/* FAIL, REFUSED, LINK_*, CANCEL */
	void			*data;		/* DEVICE_STATE / VMM_PAUSED:
						 * the device state */
	size_t			 len;
	uint64_t		 at_ms;		/* DEVICE_STATE: source paused */
	STAILQ_ENTRY(mig_event)	 entry;
};

/* A FIFO of events, safe to post to from any thread. */
struct mig_queue {
	pthread_mutex_t		 lock;
	STAILQ_HEAD(, mig_event) head;
	unsigned		 lost;		/* posts that found no memory */
};

void mig_queue_init(struct mig_queue *q);
/* Frees the events still queued (and their data). */
void mig_queue_destroy(struct mig_queue *q);
/* Appends an event; takes ownership of data (malloc'd, freed with the
 * event). text may be NULL. 0, or -ENOMEM (data freed, counted in lost). */
int mig_queue_post(struct mig_queue *q, enum mig_ev kind, const char *text,
    void *data, size_t len, uint64_t at_ms);
/* The oldest event, or NULL when empty; *lost gets (and clears) the count
 * of posts lost since the last call. */
struct mig_event *mig_queue_pop(struct mig_queue *q, unsigned *lost);
void mig_event_free(struct mig_event *e);

#endif
