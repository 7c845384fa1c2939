/* state.c - the migration state machine as data (see state.h): event
 * names, the transition table, the questions other files ask about states,
 * and the ordered event queue.
 */
#include "state.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Why an event is refused (or ignored) in a state. */
#define R_NOT_STARTED	"the data path has not started"
#define R_STARTED	"the data path runs already"
#define R_NO_CHANNELS	"the channels are not up yet"
#define R_CONNECTED	"the channels came up before"
#define R_NOT_RESTART	"only the first session of a restarted " \
			"destination restores a running guest"
#define R_LINK_IS_DOWN	"the channels are down: switch over once they " \
			"are back"
#define R_NO_PAUSE	"the VMM was not asked to pause"
#define R_PAUSED_BEFORE	"the VMM paused before"
#define R_SWITCHING	"the migration is switching over already"
#define R_SWITCHED	"it has switched over: the guest runs on the " \
			"destination and pages not yet moved exist only on " \
			"the source; let it complete"
#define R_PRECOPY_OVER	"precopy is over"
#define R_SECOND_SW	"a second Switchover"
#define R_LINK_IS_UP	"the channels are up"
#define R_NOT_SWITCHED	"the guest has not switched over yet"
#define R_OVER		"the migration is over"

#define GO(s)		{ MIG_GO, MIG_STATE_##s, NULL }
#define NO(r)		{ MIG_REFUSE, MIG_STATE_WAITING, r }
#define IGN(r)		{ MIG_IGNORE, MIG_STATE_WAITING, r }

/* Every (state, event): the next state, or a refusal and its reason. Rows
 * list all MIG_EV_COUNT events in enum order. */
static const struct mig_rule mig_table[MIG_STATE_COUNT][MIG_EV_COUNT] = {
	[MIG_STATE_WAITING] = {
		[MIG_EV_START]			= GO(SETUP),
		[MIG_EV_CONNECTED]		= NO(R_NOT_STARTED),
		[MIG_EV_RESTORED]		= NO(R_NOT_STARTED),
		[MIG_EV_PRECOPY_ROUND_DONE]	= NO(R_NOT_STARTED),
		[MIG_EV_CONVERGED]		= NO(R_NOT_STARTED),
		[MIG_EV_START_POSTCOPY]		= NO(R_NOT_STARTED),
		[MIG_EV_VMM_PAUSED]		= NO(R_NO_PAUSE),
		[MIG_EV_DEVICE_STATE]		= NO(R_NOT_STARTED),
		[MIG_EV_LINK_DOWN]		= NO(R_NOT_STARTED),
		[MIG_EV_LINK_UP]		= NO(R_NOT_STARTED),
		[MIG_EV_DONE]			= NO(R_NOT_STARTED),
		[MIG_EV_FAIL]			= GO(FAILED),
		[MIG_EV_CANCEL]			= GO(CANCELLED),
		[MIG_EV_REFUSED]		= NO(R_NOT_STARTED),
	},
	[MIG_STATE_SETUP] = {
		[MIG_EV_START]			= NO(R_STARTED),
		[MIG_EV_CONNECTED]		= GO(PRECOPY),
		[MIG_EV_RESTORED]		= GO(POSTCOPY),
		[MIG_EV_PRECOPY_ROUND_DONE]	= NO(R_NO_CHANNELS),
		[MIG_EV_CONVERGED]		= NO(R_NO_CHANNELS),
		[MIG_EV_START_POSTCOPY]		= NO(R_NO_CHANNELS),
		[MIG_EV_VMM_PAUSED]		= NO(R_NO_PAUSE),
		/* The destination's urgent thread may queue the Switchover
		 * before its main thread queues "connected". */
		[MIG_EV_DEVICE_STATE]		= GO(POSTCOPY),
		[MIG_EV_LINK_DOWN]		= NO(R_NO_CHANNELS),
		[MIG_EV_LINK_UP]		= NO(R_NO_CHANNELS),
		[MIG_EV_DONE]			= NO(R_NOT_SWITCHED),
		[MIG_EV_FAIL]			= GO(FAILED),
		[MIG_EV_CANCEL]			= GO(CANCELLED),
		[MIG_EV_REFUSED]		= GO(SETUP),
	},
	[MIG_STATE_PRECOPY] = {
		[MIG_EV_START]			= NO(R_STARTED),
		[MIG_EV_CONNECTED]		= NO(R_CONNECTED),
		[MIG_EV_RESTORED]		= NO(R_NOT_RESTART),
		[MIG_EV_PRECOPY_ROUND_DONE]	= GO(PRECOPY),
		[MIG_EV_CONVERGED]		= GO(SWITCHOVER),
		[MIG_EV_START_POSTCOPY]		= GO(SWITCHOVER),
		[MIG_EV_VMM_PAUSED]		= NO(R_NO_PAUSE),
		[MIG_EV_DEVICE_STATE]		= GO(POSTCOPY),
		[MIG_EV_LINK_DOWN]		= GO(PRECOPY_PAUSED),
		[MIG_EV_LINK_UP]		= NO(R_LINK_IS_UP),
		/* Every page arrived, but the guest never switched over (the
		 * destination VMM never ran it): that is no completion. */
		[MIG_EV_DONE]			= GO(FAILED),
		[MIG_EV_FAIL]			= GO(FAILED),
		[MIG_EV_CANCEL]			= GO(CANCELLED),
		[MIG_EV_REFUSED]		= GO(PRECOPY),
	},
	[MIG_STATE_PRECOPY_PAUSED] = {
		[MIG_EV_START]			= NO(R_STARTED),
		[MIG_EV_CONNECTED]		= NO(R_CONNECTED),
		[MIG_EV_RESTORED]		= NO(R_NOT_RESTART),
		/* A pass that ended as the channels broke. */
		[MIG_EV_PRECOPY_ROUND_DONE]	= GO(PRECOPY_PAUSED),
		[MIG_EV_CONVERGED]		= NO(R_LINK_IS_DOWN),
		[MIG_EV_START_POSTCOPY]		= NO(R_LINK_IS_DOWN),
		/* The pause asked for in switchover, answered while the
		 * channels are down: the device state goes on reconnect. */
		[MIG_EV_VMM_PAUSED]		= GO(POSTCOPY_PAUSED),
		/* dest: a resent Switchover read before "reconnected". */
		[MIG_EV_DEVICE_STATE]		= GO(POSTCOPY_PAUSED),
		[MIG_EV_LINK_DOWN]		= GO(PRECOPY_PAUSED),
		[MIG_EV_LINK_UP]		= GO(PRECOPY),
		[MIG_EV_DONE]			= NO(R_NOT_SWITCHED),
		[MIG_EV_FAIL]			= GO(FAILED),
		[MIG_EV_CANCEL]			= GO(CANCELLED),
		[MIG_EV_REFUSED]		= GO(PRECOPY_PAUSED),
	},
	[MIG_STATE_SWITCHOVER] = {
		[MIG_EV_START]			= NO(R_STARTED),
		[MIG_EV_CONNECTED]		= NO(R_CONNECTED),
		[MIG_EV_RESTORED]		= NO(R_NOT_RESTART),
		[MIG_EV_PRECOPY_ROUND_DONE]	= IGN(R_PRECOPY_OVER),
		[MIG_EV_CONVERGED]		= IGN(R_SWITCHING),
		[MIG_EV_START_POSTCOPY]		= NO(R_SWITCHING),
		[MIG_EV_VMM_PAUSED]		= GO(POSTCOPY),
		[MIG_EV_DEVICE_STATE]		= NO(R_SWITCHING),
		[MIG_EV_LINK_DOWN]		= GO(PRECOPY_PAUSED),
		[MIG_EV_LINK_UP]		= NO(R_LINK_IS_UP),
		[MIG_EV_DONE]			= NO(R_NOT_SWITCHED),
		[MIG_EV_FAIL]			= GO(FAILED),
		/* The device state has not left: the VMM resumes the guest. */
		[MIG_EV_CANCEL]			= GO(CANCELLED),
		[MIG_EV_REFUSED]		= GO(SWITCHOVER),
	},
	[MIG_STATE_POSTCOPY] = {
		[MIG_EV_START]			= NO(R_STARTED),
		/* The 93bee54 order (Switchover before "connected" on a
		 * destination): stay in postcopy. */
		[MIG_EV_CONNECTED]		= GO(POSTCOPY),
		[MIG_EV_RESTORED]		= NO(R_NOT_RESTART),
		[MIG_EV_PRECOPY_ROUND_DONE]	= IGN(R_PRECOPY_OVER),
		[MIG_EV_CONVERGED]		= IGN(R_PRECOPY_OVER),
		[MIG_EV_START_POSTCOPY]		= NO(R_SWITCHED),
		[MIG_EV_VMM_PAUSED]		= NO(R_PAUSED_BEFORE),
		[MIG_EV_DEVICE_STATE]		= NO(R_SECOND_SW),
		[MIG_EV_LINK_DOWN]		= GO(POSTCOPY_PAUSED),
		[MIG_EV_LINK_UP]		= NO(R_LINK_IS_UP),
		[MIG_EV_DONE]			= GO(COMPLETED),
		[MIG_EV_FAIL]			= GO(FAILED),
		[MIG_EV_CANCEL]			= NO(R_SWITCHED),
		[MIG_EV_REFUSED]		= GO(POSTCOPY),
	},
	[MIG_STATE_POSTCOPY_PAUSED] = {
		[MIG_EV_START]			= NO(R_STARTED),
		[MIG_EV_CONNECTED]		= NO(R_CONNECTED),
		[MIG_EV_RESTORED]		= NO(R_NOT_RESTART),
		[MIG_EV_PRECOPY_ROUND_DONE]	= IGN(R_PRECOPY_OVER),
		[MIG_EV_CONVERGED]		= IGN(R_PRECOPY_OVER),
		[MIG_EV_START_POSTCOPY]		= NO(R_SWITCHED),
		[MIG_EV_VMM_PAUSED]		= NO(R_PAUSED_BEFORE),
		[MIG_EV_DEVICE_STATE]		= NO(R_SECOND_SW),
		[MIG_EV_LINK_DOWN]		= GO(POSTCOPY_PAUSED),
		[MIG_EV_LINK_UP]		= GO(POSTCOPY),
		/* Source: a reconnect found the destination completed (a
		 * cut lost its Complete), or the operator says it did
		 * (Cancel destination_completed). */
		[MIG_EV_DONE]			= GO(COMPLETED),
		[MIG_EV_FAIL]			= GO(FAILED),
		[MIG_EV_CANCEL]			= NO(R_SWITCHED),
		[MIG_EV_REFUSED]		= GO(POSTCOPY_PAUSED),
	},
#define MIG_OVER_ROW {							\
		[MIG_EV_START]			= IGN(R_OVER),		\
		[MIG_EV_CONNECTED]		= IGN(R_OVER),		\
		[MIG_EV_RESTORED]		= IGN(R_OVER),		\
		[MIG_EV_PRECOPY_ROUND_DONE]	= IGN(R_OVER),		\
		[MIG_EV_CONVERGED]		= IGN(R_OVER),		\
		[MIG_EV_START_POSTCOPY]		= NO(R_OVER),		\
		[MIG_EV_VMM_PAUSED]		= IGN(R_OVER),		\
		[MIG_EV_DEVICE_STATE]		= IGN(R_OVER),		\
		[MIG_EV_LINK_DOWN]		= IGN(R_OVER),		\
		[MIG_EV_LINK_UP]		= IGN(R_OVER),		\
		[MIG_EV_DONE]			= IGN(R_OVER),		\
		[MIG_EV_FAIL]			= IGN(R_OVER),		\
		[MIG_EV_CANCEL]			= NO(R_OVER),		\
		[MIG_EV_REFUSED]		= IGN(R_OVER),		\
	}
	/* Terminal states are final: late events from threads that were
	 * being stopped are dropped; requests are refused. */
	[MIG_STATE_COMPLETED] = MIG_OVER_ROW,
	[MIG_STATE_FAILED] = MIG_OVER_ROW,
	[MIG_STATE_CANCELLED] = MIG_OVER_ROW,
#undef MIG_OVER_ROW
};

/* Which roles see each event (bit 1 << role). */
#define SRC	(1u << MIG_ROLE_SOURCE)
#define DST	(1u << MIG_ROLE_DEST)
static const unsigned mig_event_roles[MIG_EV_COUNT] = {
	[MIG_EV_START]			= SRC | DST,
	[MIG_EV_CONNECTED]		= SRC | DST,
	[MIG_EV_RESTORED]		= SRC | DST,
	[MIG_EV_PRECOPY_ROUND_DONE]	= SRC,
	[MIG_EV_CONVERGED]		= SRC,
	[MIG_EV_START_POSTCOPY]		= SRC,
	[MIG_EV_VMM_PAUSED]		= SRC,
	[MIG_EV_DEVICE_STATE]		= DST,
	[MIG_EV_LINK_DOWN]		= SRC | DST,
	[MIG_EV_LINK_UP]		= SRC | DST,
	[MIG_EV_DONE]			= SRC | DST,
	[MIG_EV_FAIL]			= SRC | DST,
	[MIG_EV_CANCEL]			= SRC | DST,
	[MIG_EV_REFUSED]		= DST,
};

static const char *const mig_event_names[MIG_EV_COUNT] = {
	[MIG_EV_START]			= "start",
	[MIG_EV_CONNECTED]		= "connected",
	[MIG_EV_RESTORED]		= "restored",
	[MIG_EV_PRECOPY_ROUND_DONE]	= "precopy-round-done",
	[MIG_EV_CONVERGED]		= "converged",
	[MIG_EV_START_POSTCOPY]		= "start-postcopy",
	[MIG_EV_VMM_PAUSED]		= "vmm-paused",
	[MIG_EV_DEVICE_STATE]		= "device-state",
	[MIG_EV_LINK_DOWN]		= "link-down",
	[MIG_EV_LINK_UP]		= "link-up",
	[MIG_EV_DONE]			= "done",
	[MIG_EV_FAIL]			= "fail",
	[MIG_EV_CANCEL]			= "cancel",
	[MIG_EV_REFUSED]		= "refused",
};

const char *
mig_event_name(enum mig_ev ev)
{
	return (unsigned)ev < MIG_EV_COUNT ? mig_event_names[ev] : "unknown";
}

bool
mig_event_for_role(enum mig_role role, enum mig_ev ev)
{
	if ((unsigned)ev >= MIG_EV_COUNT ||
	    (role != MIG_ROLE_SOURCE && role != MIG_ROLE_DEST))
		return false;
	return (mig_event_roles[ev] & (1u << role)) != 0;
}

const struct mig_rule *
mig_rule(enum mig_role r, enum mig_state s, enum mig_ev ev)
{
	static const struct mig_rule bad = NO("no such state or event"),
	    src_only = NO("only a source sees this event"),
	    dst_only = NO("only a destination sees this event");

	if ((unsigned)s >= MIG_STATE_COUNT || (unsigned)ev >= MIG_EV_COUNT ||
	    (r != MIG_ROLE_SOURCE && r != MIG_ROLE_DEST))
		return &bad;
	if (!mig_event_for_role(r, ev))
		return r == MIG_ROLE_SOURCE ? &dst_only : &src_only;
	return &mig_table[s][ev];
}

/* ---- questions about states -------------------------------------------- */

bool
mig_terminal(enum mig_state s)
{
	return s == MIG_STATE_COMPLETED || s == MIG_STATE_FAILED ||
	    s == MIG_STATE_CANCELLED;
}

bool
mig_switched_over(enum mig_state s)
{
	return s == MIG_STATE_POSTCOPY || s == MIG_STATE_POSTCOPY_PAUSED ||
	    s == MIG_STATE_COMPLETED;
}

bool
mig_has_channels(enum mig_state s)
{
	return s == MIG_STATE_PRECOPY || s == MIG_STATE_PRECOPY_PAUSED ||
	    s == MIG_STATE_SWITCHOVER || s == MIG_STATE_POSTCOPY ||
	    s == MIG_STATE_POSTCOPY_PAUSED;
}

bool
mig_can_cancel(enum mig_role r, enum mig_state s, const char **why)
{
	const struct mig_rule *rule = mig_rule(r, s, MIG_EV_CANCEL);

	if (rule->verdict == MIG_GO)
		return true;
	if (why != NULL)
		*why = rule->why;
	return false;
}

/* ---- the event queue ---------------------------------------------------- */

void
mig_queue_init(struct mig_queue *q)
{
	pthread_mutex_init(&q->lock, NULL);
	STAILQ_INIT(&q->head);
	q->lost = 0;
}

void
mig_event_free(struct mig_event *e)
{
	if (e == NULL)
		return;
	free(e->data);
	free(e);
}

void
mig_queue_destroy(struct mig_queue *q)
{
	struct mig_event *e;

	while ((e = STAILQ_FIRST(&q->head)) != NULL) {
		STAILQ_REMOVE_HEAD(&q->head, entry);
		mig_event_free(e);
	}
	pthread_mutex_destroy(&q->lock);
}

int
mig_queue_post(struct mig_queue *q, enum mig_ev kind, const char *text,
    void *data, size_t len, uint64_t at_ms)
{
	struct mig_event *e = calloc(1, sizeof(*e));

	if (e == NULL) {
		free(data);
		pthread_mutex_lock(&q->lock);
		q->lost++;
		pthread_mutex_unlock(&q->lock);
		return -ENOMEM;
	}
	e->kind = kind;
	if (text != NULL)
		snprintf(e->text, sizeof(e->text), "%s", text);
	e->data = data;
	e->len = len;
	e->at_ms = at_ms;
	pthread_mutex_lock(&q->lock);
	STAILQ_INSERT_TAIL(&q->head, e, entry);
	pthread_mutex_unlock(&q->lock);
	return 0;
}

struct mig_event *
mig_queue_pop(struct mig_queue *q, unsigned *lost)
{
	struct mig_event *e;

	pthread_mutex_lock(&q->lock);
	if ((e = STAILQ_FIRST(&q->head)) != NULL)
		STAILQ_REMOVE_HEAD(&q->head, entry);
	if (lost != NULL) {
		*lost = q->lost;
		q->lost = 0;
	}
	pthread_mutex_unlock(&q->lock);
	return e;
}
