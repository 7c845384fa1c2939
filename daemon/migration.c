/* migration.c - the table of migrations and their state machine.
 *
 * Runs on the event-loop thread. Each migration's data path (source.c,
 * dest.c) runs on threads of its own that post typed events here, in order,
 * through a queue and an eventfd (mig_post*). The loop applies each event
 * through the transition table of state.c (mig_apply): the table says what
 * the next state is or why the event is refused; the action of the event
 * talks to the VMM (vmm.h) and the data path, and the transition tells the
 * transition hook (libvirt) and the control plane (the notify hook).
 */
#include "migration.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "migration_int.h"
#include "pagestate.h"
#include "probe.h"
#include "tls.h"
#include "util.h"
#include "vmm.h"
#include "wire.h"

#define MIG_TABLE_MAX		64	/* entries, finished ones included */
#define MIG_ACTIVE_MAX		16	/* migrations not yet finished */

struct mig_table {
	struct event_base	*base;
	char			 state_dir[PATH_MAX];	/* "" = off */
	struct vmm_server	*vmm;
	struct mig		*head;
	size_t			 n;
	mig_notify_fn		 notify;
	void			*notify_arg;
	mig_transition_fn	 on_transition;
	void			*on_transition_arg;
	unsigned		 vmm_wait_s;	/* vmm_wait_timeout */
	unsigned		 completed_grace_s;	/* completed_grace */
	uint64_t		 drain_until_ms;	/* SIGTERM: wall clock
							 * of the exit; 0 */
	struct mig_precopy_defaults precopy;	/* config */
	/* Can this kernel track dirty pages (probe_precopy, asked once, by
	 * the first Migrate that wants precopy)? */
	bool			 pc_probed;
	int			 pc_rc;
	char			 pc_why[512];
};

static void
mig_notify(struct mig *m)
{
	if (m->t->notify != NULL)
		m->t->notify(m->t->notify_arg, m->id);
}

/* Only ever called with a state the transition table chose. */
static void
mig_set_state(struct mig *m, enum mig_state s)
{
	enum mig_state from = m->state;

	if (from == s)
		return;
	log_info("migration %s (%s): %s -> %s", m->id, mig_role_name(m->role),
	    mig_state_name(from), mig_state_name(s));
	m->state = s;
	if (mig_switched_over(s))
		m->switched_over = true;
	if (mig_terminal(s))
		m->end_ns = now_ns();
	/* Over: nothing to pick up after a restart. */
	if (mig_terminal(s) && m->state_path[0] != '\0' &&
	    unlink(m->state_path) < 0 && errno != ENOENT)
		log_warn("migration %s: unlink %s", m->id, m->state_path);
	if (m->t->on_transition != NULL)
		m->t->on_transition(m->t->on_transition_arg, m->id, m->role,
		    from, s);
	mig_notify(m);
}

static struct mig *
mig_find(struct mig_table *t, const char *id)
{
	for (struct mig *m = t->head; m != NULL; m = m->next)
		if (strcmp(m->id, id) == 0)
			return m;
	return NULL;
}

/* Stops the data path (joins its threads) and lets go of the guest. */
static void
mig_stop_datapath(struct mig *m)
{
	uint64_t one = 1;

	if (m->stopfd >= 0 && write(m->stopfd, &one, sizeof(one)) < 0)
		log_warn("migration %s: stop eventfd", m->id);
	dest_done_stop(m);
	source_stop(m);
	m->src = NULL;
	dest_stop(m);
	m->dst = NULL;
	if (m->tick != NULL)
		event_del(m->tick);
}

static void
mig_release_guest(struct mig *m)
{
	if (m->g.memfd >= 0)
		close(m->g.memfd);
	if (m->g.uffd >= 0)
		close(m->g.uffd);
	m->g.memfd = m->g.uffd = -1;
}

/* Ends the migration in terminal state s (failed or cancelled): stops the
 * data path and tells the VMM why. */
static void
mig_end(struct mig *m, enum mig_state s, const char *msg)
{
	snprintf(m->errmsg, sizeof(m->errmsg), "%s", msg);
	if (s == MIG_STATE_FAILED)
		log_warnx("migration %s failed: %s", m->id, msg);
	else
		log_notice("migration %s: %s", m->id, msg);
	mig_stop_datapath(m);
	dest_done_serve(m);
	if (m->vmm != NULL)
		vmm_session_complete(m->vmm, false, msg);
	mig_release_guest(m);
	mig_set_state(m, s);
}

static void
mig_free(struct mig *m)
{
	if (m == NULL)
		return;
	mig_stop_datapath(m);
	if (m->vmm != NULL)
		vmm_session_set_data(m->vmm, NULL);
	mig_release_guest(m);
	if (m->ev != NULL)
		event_free(m->ev);
	if (m->tick != NULL)
		event_free(m->tick);
	if (m->vmm_wait != NULL)
		event_free(m->vmm_wait);
	if (m->evfd >= 0)
		close(m->evfd);
	if (m->stopfd >= 0)
		close(m->stopfd);
	mig_queue_destroy(&m->q);
	free(m);
}

static void
mig_unlink(struct mig_table *t, struct mig *m)
{
	for (struct mig **pp = &t->head; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == m) {
			*pp = m->next;
			t->n--;
			return;
		}
	}
}

size_t
mig_count_active(struct mig_table *t)
{
	size_t n = 0;

	for (struct mig *m = t->head; m != NULL; m = m->next)
		if (!mig_terminal(m->state))
			n++;
	return n;
}

/* ---- events from the data path ---------------------------------------- */

static void
mig_wake(struct mig *m)
{
	uint64_t one = 1;

	if (write(m->evfd, &one, sizeof(one)) < 0)
		log_warn("migration %s: event eventfd", m->id);
}

/* Queues an event (taking data) and wakes the loop. A post that finds no
 * memory is counted by the queue, and the loop fails the migration. */
static void
mig_post_event(struct mig *m, enum mig_ev ev, const char *text, void *data,
    size_t len, uint64_t at_ms)
{
	(void)mig_queue_post(&m->q, ev, text, data, len, at_ms);
	mig_wake(m);
}

void
mig_post(struct mig *m, enum mig_ev ev)
{
	mig_post_event(m, ev, NULL, NULL, 0, 0);
}

void
mig_post_fail(struct mig *m, const char *fmt, ...)
{
	char text[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	mig_post_event(m, MIG_EV_FAIL, text, NULL, 0, 0);
}

void
mig_post_cancel(struct mig *m, const char *fmt, ...)
{
	char text[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	mig_post_event(m, MIG_EV_CANCEL, text, NULL, 0, 0);
}

void
mig_post_refused(struct mig *m, const char *fmt, ...)
{
	char text[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	mig_post_event(m, MIG_EV_REFUSED, text, NULL, 0, 0);
}

void
mig_post_link(struct mig *m, bool down, const char *fmt, ...)
{
	char text[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	mig_post_event(m, down ? MIG_EV_LINK_DOWN : MIG_EV_LINK_UP, text, NULL,
	    0, 0);
}

void
mig_post_text(struct mig *m, enum mig_ev ev, const char *fmt, ...)
{
	char text[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	mig_post_event(m, ev, text, NULL, 0, 0);
}

void
mig_post_switchover(struct mig *m, void *state, size_t len,
    uint64_t paused_at_ms)
{
	mig_post_event(m, MIG_EV_DEVICE_STATE, NULL, state, len, paused_at_ms);
}

uint64_t
mig_lat_percentile(const uint64_t *hist, double q)
{
	uint64_t total = 0, acc = 0;
	double want;

	for (int i = 0; i < MIG_LAT_BUCKETS; i++)
		total += hist[i];
	if (total == 0 || !(q > 0))
		return 0;
	if (q > 1)
		q = 1;
	want = q * (double)total;
	for (int i = 0; i < MIG_LAT_BUCKETS; i++) {
		acc += hist[i];
		if ((double)acc >= want)
			return 1ull << i;	/* bucket i: < 2^i us */
	}
	return 1ull << (MIG_LAT_BUCKETS - 1);
}

/* ---- applying events: the actions of the transition table -------------- */

static const struct mig_rule *mig_apply(struct mig *m, struct mig_event *e);

/* An event made on the loop (not queued): text only. */
static const struct mig_rule *
mig_apply_kind(struct mig *m, enum mig_ev ev, const char *text)
{
	struct mig_event e = { .kind = ev };

	if (text != NULL)
		snprintf(e.text, sizeof(e.text), "%s", text);
	return mig_apply(m, &e);
}

/* A source that entered precopy decides what comes next: postcopy-only
 * switches over at once; with rounds they run (source_precopy.c) until
 * they or StartPostcopy stop them. Again when the channels came back
 * after the rounds had stopped or the VMM was asked to pause. */
static void
mig_precopy_next(struct mig *m)
{
	bool conv = false;

	if (m->role != MIG_ROLE_SOURCE || m->state != MIG_STATE_PRECOPY)
		return;
	if (!m->precopy || m->pause_asked || source_rounds_stopped(m, &conv))
		mig_apply_kind(m, conv ? MIG_EV_CONVERGED :
		    MIG_EV_START_POSTCOPY, NULL);
}

/* At start (source): does precopy run? Asked for, and the VMM offers
 * dirty tracking on base pages; otherwise postcopy-only, said why. */
static void
mig_precopy_decide(struct mig *m)
{
	const char *why = NULL;

	m->precopy = false;
	if (m->role != MIG_ROLE_SOURCE)
		return;
	if (!m->precopy_req)
		why = "postcopy-only: precopy was not asked for";
	else if (m->vmm == NULL || vmm_session_dirty(m->vmm) == NULL)
		why = m->vmm != NULL && vmm_session_dirty_why(m->vmm) != NULL ?
		    vmm_session_dirty_why(m->vmm) : "the VMM offers no dirty "
		    "tracking";
	else if (vmm_piece_size(m->g.page_size) != m->g.page_size)
		why = "postcopy-only: precopy on huge pages is not supported "
		    "(dirty tracking is per base page)";
	if (why == NULL) {
		m->precopy = true;
		m->pol.page_size = m->g.page_size;
		snprintf(m->precopy_note, sizeof(m->precopy_note), "precopy: "
		    "rounds until converged (max downtime %" PRIu32 " ms)%s",
		    m->pol.max_downtime_ms ? m->pol.max_downtime_ms :
		    PRECOPY_DOWNTIME_MS, m->pol.auto_switch ?
		    ", or postcopy on a stall or after the round limit" : "");
	} else {
		snprintf(m->precopy_note, sizeof(m->precopy_note), "%s%s",
		    m->precopy_req && strncmp(why, "postcopy-only", 13) != 0 ?
		    "postcopy-only: " : "", why);
	}
	log_info("migration %s: %s", m->id, m->precopy_note);
}

static void
mig_act_start(struct mig *m, struct mig_event *e, enum mig_state to)
{
	char err[256] = "";
	int r;

	m->started = true;
	m->t0_ns = now_ns();
	mig_precopy_decide(m);
	if (m->role == MIG_ROLE_DEST && m->t->state_dir[0] != '\0')
		snprintf(m->state_path, sizeof(m->state_path), "%.3900s/%s.pcstate",
		    m->t->state_dir, m->id);
	/* A source VMM attaching again after a restart of this daemon: the
	 * same, already paused migration (never asked to pause again). */
	if (m->role == MIG_ROLE_SOURCE && m->g.reattach) {
		m->precopy = false;
		m->pause_asked = true;
		snprintf(m->state_path, sizeof(m->state_path), "%.3900s/%s.pcsrc",
		    m->t->state_dir[0] != '\0' ? m->t->state_dir : "(state_dir "
		    "off)", m->id);
	}
	if (m->role == MIG_ROLE_SOURCE)
		r = source_start(m, err, sizeof(err));
	else
		r = dest_start(m, err, sizeof(err));
	if (r < 0) {
		mig_apply_kind(m, MIG_EV_FAIL, err[0] ? err : strerror(-r));
		return;
	}
	mig_set_state(m, to);
}

/* CONNECTED and RESTORED: the channels are up. */
static void
mig_act_connected(struct mig *m, struct mig_event *e, enum mig_state to)
{
	if (m->setup_ns == 0)
		m->setup_ns = now_ns() - m->t0_ns;
	mig_set_state(m, to);
	mig_precopy_next(m);
}

/* A precopy round ended: Watch streams see it. */
static void
mig_act_round_done(struct mig *m, struct mig_event *e, enum mig_state to)
{
	mig_set_state(m, to);
	mig_notify(m);
}

/* CONVERGED and START_POSTCOPY: ask the source VMM to pause (once). */
static void
mig_act_switchover(struct mig *m, struct mig_event *e, enum mig_state to)
{
	if (m->precopy && e->text[0] != '\0') {
		m->converged = e->kind == MIG_EV_CONVERGED;
		snprintf(m->precopy_note, sizeof(m->precopy_note), "%s",
		    e->text);
	}
	if (!m->pause_asked) {
		m->pause_wall_ms = wall_ms();
		log_timeline(m->id, "asking the source VMM to pause (%s)",
		    mig_event_name(e->kind));
		if (m->vmm == NULL || vmm_session_pause(m->vmm) < 0) {
			mig_apply_kind(m, MIG_EV_FAIL, "cannot ask the source "
			    "VMM to pause");
			return;
		}
		m->pause_asked = true;
	}
	mig_set_state(m, to);
}

/* The source VMM paused: its device state goes to the destination. */
static void
mig_act_vmm_paused(struct mig *m, struct mig_event *e, enum mig_state to)
{
	if (e->len > WIRE_MAX_DEVSTATE) {
		mig_apply_kind(m, MIG_EV_FAIL, "source VMM device state too "
		    "large");
		return;
	}
	log_timeline(m->id, "the source VMM paused (%zu bytes of device "
	    "state)", e->len);
	char err[PATH_MAX + 128];

	/* Before the device state can leave: a source restarted after
	 * this picks the migration up (source_state.c). */
	if (source_save_state(m, m->t->state_dir, e->data, e->len, err,
	    sizeof(err)) < 0)
		log_warnx("migration %s: %s; it cannot survive a restart of "
		    "this daemon", m->id, err);
	log_timeline(m->id, "the source's state saved");
	source_paused(m, e->data, e->len);
	mig_set_state(m, to);
}

/* The destination received the Switchover: the guest may run here. */
static void
mig_act_device_state(struct mig *m, struct mig_event *e, enum mig_state to)
{
	int r = m->vmm == NULL ? -ENOTCONN :
	    vmm_session_resume(m->vmm, e->data, e->len);
	uint64_t now = wall_ms();
	char msg[128];

	if (r < 0) {
		snprintf(msg, sizeof(msg), "cannot resume the destination "
		    "VMM: %s", strerror(-r));
		mig_apply_kind(m, MIG_EV_FAIL, msg);
		return;
	}
	m->downtime_ms = e->at_ms != 0 && now >= e->at_ms ? now - e->at_ms : 0;
	log_timeline(m->id, "the destination VMM told to resume (downtime %"
	    PRIu64 " ms)", m->downtime_ms);
	mig_set_state(m, to);
}

static void
mig_act_link_down(struct mig *m, struct mig_event *e, enum mig_state to)
{
	if (m->state == to) {
		/* Still paused: a newer reason (a failed reconnect...). */
		if (strcmp(m->errmsg, e->text) != 0) {
			snprintf(m->errmsg, sizeof(m->errmsg), "%s", e->text);
			mig_notify(m);
		}
		return;
	}
	snprintf(m->errmsg, sizeof(m->errmsg), "%s", e->text);
	log_warnx("migration %s: paused: %s", m->id, e->text);
	mig_set_state(m, to);
}

static void
mig_act_link_up(struct mig *m, struct mig_event *e, enum mig_state to)
{
	m->errmsg[0] = '\0';
	log_notice("migration %s: resumed: %s", m->id, e->text);
	mig_set_state(m, to);
	mig_precopy_next(m);
}

static void
mig_act_done(struct mig *m, struct mig_event *e, enum mig_state to)
{
	uint64_t bad = atomic_load(&m->c.pages_mismatched);
	char msg[128];

	if (bad != 0 || to != MIG_STATE_COMPLETED) {
		if (bad != 0)
			snprintf(msg, sizeof(msg), "verification failed: %"
			    PRIu64 " pages differ from the source", bad);
		else
			snprintf(msg, sizeof(msg), "every page arrived but the "
			    "guest never switched over");
		mig_apply_kind(m, MIG_EV_FAIL, msg);
		return;
	}
	mig_stop_datapath(m);
	dest_done_serve(m);
	if (m->vmm != NULL)
		vmm_session_complete(m->vmm, true, e->text[0] != '\0' ? e->text :
		    "migration completed");
	mig_release_guest(m);
	log_notice("migration %s (%s) completed: %" PRIu64 " pages, %" PRIu64
	    " bytes in %" PRIu64 " ms", m->id, mig_role_name(m->role),
	    atomic_load(&m->c.pages_valid), atomic_load(&m->c.bytes),
	    (now_ns() - m->t0_ns) / 1000000);
	mig_set_state(m, to);
}

/* FAIL and CANCEL. */
static void
mig_act_end(struct mig *m, struct mig_event *e, enum mig_state to)
{
	mig_end(m, to, e->text[0] != '\0' ? e->text : "no reason given");
}

static void
mig_act_refused(struct mig *m, struct mig_event *e, enum mig_state to)
{
	snprintf(m->refused, sizeof(m->refused), "%s", e->text);
	log_warnx("migration %s: refused a peer: %s", m->id, e->text);
	mig_notify(m);
}

typedef void (*mig_action_fn)(struct mig *, struct mig_event *,
    enum mig_state);

/* What an allowed event does; it ends in mig_set_state(m, to), or in a
 * FAIL event of its own when the action fails (or `to` is failed). */
static const mig_action_fn mig_actions[MIG_EV_COUNT] = {
	[MIG_EV_START]			= mig_act_start,
	[MIG_EV_CONNECTED]		= mig_act_connected,
	[MIG_EV_RESTORED]		= mig_act_connected,
	[MIG_EV_PRECOPY_ROUND_DONE]	= mig_act_round_done,
	[MIG_EV_CONVERGED]		= mig_act_switchover,
	[MIG_EV_START_POSTCOPY]		= mig_act_switchover,
	[MIG_EV_VMM_PAUSED]		= mig_act_vmm_paused,
	[MIG_EV_DEVICE_STATE]		= mig_act_device_state,
	[MIG_EV_LINK_DOWN]		= mig_act_link_down,
	[MIG_EV_LINK_UP]		= mig_act_link_up,
	[MIG_EV_DONE]			= mig_act_done,
	[MIG_EV_FAIL]			= mig_act_end,
	[MIG_EV_CANCEL]			= mig_act_end,
	[MIG_EV_REFUSED]		= mig_act_refused,
};

/* Applies one event through the transition table; returns the rule. */
static const struct mig_rule *
mig_apply(struct mig *m, struct mig_event *e)
{
	const struct mig_rule *r = mig_rule(m->role, m->state, e->kind);

	switch (r->verdict) {
	case MIG_GO:
		mig_actions[e->kind](m, e, r->to);
		break;
	case MIG_REFUSE:
		log_warnx("migration %s (%s): cannot %s in state %s: %s", m->id,
		    mig_role_name(m->role), mig_event_name(e->kind),
		    mig_state_name(m->state), r->why);
		break;
	case MIG_IGNORE:
		log_debug("migration %s: %s ignored in state %s: %s", m->id,
		    mig_event_name(e->kind), mig_state_name(m->state), r->why);
		break;
	}
	return r;
}

/* The eventfd fired: apply the queued events in the order they were
 * posted. */
static void
mig_on_event(evutil_socket_t fd, short what, void *arg)
{
	struct mig *m = arg;
	struct mig_event *e;
	unsigned lost;
	uint64_t v;
	char msg[128];

	if (read(m->evfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn("migration %s: event eventfd read", m->id);
	while ((e = mig_queue_pop(&m->q, &lost)) != NULL || lost > 0) {
		if (lost > 0) {
			snprintf(msg, sizeof(msg), "out of memory: %u event%s "
			    "of the data path lost", lost, lost == 1 ? "" : "s");
			mig_apply_kind(m, MIG_EV_FAIL, msg);
		}
		if (e != NULL)
			mig_apply(m, e);
		mig_event_free(e);
	}
}

static void
mig_on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct mig *m = arg;
	uint64_t sig = atomic_load(&m->c.pages_valid) +
	    atomic_load(&m->c.bytes) + atomic_load(&m->c.faults_remote) +
	    atomic_load(&m->c.faults_local);

	if (sig != m->last_sig) {
		m->last_sig = sig;
		mig_notify(m);
	}
}

/* ---- creating and starting -------------------------------------------- */

static int
mig_new(struct mig_table *t, const char *id, enum mig_role role,
    struct mig **out, char *err, size_t errlen)
{
	struct mig *m;
	struct mig *old = mig_find(t, id);
	const struct timeval tv = { 0, 100000 };

	if (old != NULL) {
		/* A finished migration's id may be used again. */
		mig_unlink(t, old);
		mig_free(old);
	}
	if (mig_count_active(t) >= MIG_ACTIVE_MAX) {
		snprintf(err, errlen, "too many migrations in progress (limit %d)",
		    MIG_ACTIVE_MAX);
		return -EBUSY;
	}
	if (t->n >= MIG_TABLE_MAX) {
		/* Forget the oldest finished migration. */
		struct mig *victim = NULL;

		for (struct mig *x = t->head; x != NULL; x = x->next)
			if (mig_terminal(x->state))
				victim = x;	/* list is newest first */
		if (victim == NULL) {
			snprintf(err, errlen, "migration table full (limit %d)",
			    MIG_TABLE_MAX);
			return -EBUSY;
		}
		mig_unlink(t, victim);
		mig_free(victim);
	}
	if ((m = calloc(1, sizeof(*m))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	m->t = t;
	str_copy(m->id, id, sizeof(m->id));
	m->role = role;
	m->completed_grace_s = t->completed_grace_s;
	m->state = MIG_STATE_WAITING;
	m->demand_spin_us = t->precopy.demand_spin_us;
	m->page_write_alias = t->precopy.page_write_alias;
	m->bulk_channels = 1;
	m->g.memfd = m->g.uffd = -1;
	m->start_ms = wall_ms();
	m->t0_ns = now_ns();
	mig_queue_init(&m->q);
	m->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	m->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (m->stopfd < 0 || m->evfd < 0) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	m->ev = event_new(t->base, m->evfd, EV_READ | EV_PERSIST, mig_on_event, m);
	m->tick = event_new(t->base, -1, EV_PERSIST, mig_on_tick, m);
	if (m->ev == NULL || m->tick == NULL || event_add(m->ev, NULL) < 0 ||
	    event_add(m->tick, &tv) < 0) {
		snprintf(err, errlen, "cannot create migration events");
		goto fail;
	}
	m->next = t->head;
	t->head = m;
	t->n++;
	*out = m;
	return 0;
fail:
	mig_free(m);
	return -ENOMEM;
}

/* Starts the data path once the VMM attached and Prepare/Migrate came. */
static void
mig_maybe_start(struct mig *m)
{
	if (m->registered && m->attached && !m->started)
		mig_apply_kind(m, MIG_EV_START, NULL);
}

/* Finds or makes the migration that prepare/migrate registers. */
static int
mig_register(struct mig_table *t, const char *id, enum mig_role role,
    struct mig **out, char *err, size_t errlen)
{
	struct mig *m;

	if (mig_id_check(id, "migration", err, errlen) < 0)
		return -EINVAL;
	m = mig_find(t, id);
	if (m != NULL && !mig_terminal(m->state)) {
		if (m->registered) {
			snprintf(err, errlen, "migration '%s' already exists "
			    "(%s, %s)", id, mig_role_name(m->role),
			    mig_state_name(m->state));
			return -EEXIST;
		}
		if (m->role != role) {
			snprintf(err, errlen, "migration '%s': a %s VMM is "
			    "attached under this id, cannot %s it", id,
			    mig_role_name(m->role),
			    role == MIG_ROLE_SOURCE ? "migrate" : "prepare");
			return -EINVAL;
		}
		*out = m;
		return 0;
	}
	return mig_new(t, id, role, out, err, errlen);
}

static int
mig_check_tls(const struct mig_tls *tls, bool server, char *err, size_t errlen)
{
	struct tls_ctx *c;
	int r;

	if ((r = tls_ctx_new(tls->dir, server, &c, err, errlen)) < 0)
		return r;
	tls_ctx_free(c);
	return 0;
}

static void
mig_vmm_wait_expired(evutil_socket_t fd, short what, void *arg)
{
	struct mig *m = arg;
	char msg[192];

	if (m->attached || mig_terminal(m->state))
		return;
	snprintf(msg, sizeof(msg), "no %s VMM attached within %u s "
	    "(vmm_wait_timeout): attach the VMM, then %s again",
	    mig_role_name(m->role), m->t->vmm_wait_s,
	    m->role == MIG_ROLE_SOURCE ? "migrate" : "prepare");
	mig_apply_kind(m, MIG_EV_FAIL, msg);
}

/* Prepare/Migrate registered m: a VMM already held for its id attaches
 * now; otherwise the VMM has vmm_wait_timeout to come. */
static void
mig_vmm_claim(struct mig *m)
{
	struct timeval tv = { m->t->vmm_wait_s, 0 };

	if (m->attached || vmm_server_claim(m->t->vmm, m->id, (int)m->role))
		return;
	if (m->vmm_wait == NULL)
		m->vmm_wait = evtimer_new(m->t->base, mig_vmm_wait_expired, m);
	if (m->vmm_wait != NULL)
		evtimer_add(m->vmm_wait, &tv);
}

void
mig_table_set_vmm_limits(struct mig_table *t, unsigned unclaimed_max,
    unsigned unclaimed_timeout_s, unsigned wait_timeout_s)
{
	vmm_server_set_pool(t->vmm, unclaimed_max, unclaimed_timeout_s);
	t->vmm_wait_s = wait_timeout_s > 0 ? wait_timeout_s : 1;
}

void
mig_table_set_completed_grace(struct mig_table *t, unsigned s)
{
	t->completed_grace_s = s;
}

/* A completed destination still answering its source on addr (a fixed
 * port) lets it go: a new Prepare needs the address. */
static void
mig_free_address(struct mig_table *t, const char *addr)
{
	for (struct mig *m = t->head; m != NULL; m = m->next) {
		if (m->done == NULL || (strcmp(m->addr, addr) != 0 &&
		    strcmp(m->listen, addr) != 0))
			continue;
		log_info("migration %s: stops answering its source on %s: a new "
		    "migration is prepared there", m->id, addr);
		dest_done_stop(m);
	}
}

int
mig_prepare(struct mig_table *t, const struct mig_prepare_args *a,
    char *err, size_t errlen)
{
	char host[256];
	uint16_t port;
	struct mig *m;
	bool fresh;
	int r;

	if (a->listen == NULL || parse_hostport(a->listen, host, sizeof(host),
	    &port) < 0) {
		snprintf(err, errlen, "invalid listen address '%.100s' (want "
		    "host:port, port 0 picks one)", a->listen ? a->listen : "");
		return -EINVAL;
	}
	if ((r = mig_check_tls(&a->tls, true, err, errlen)) < 0)
		return r;
	if (port != 0)
		mig_free_address(t, a->listen);
	if ((r = mig_register(t, a->id, MIG_ROLE_DEST, &m, err, errlen)) < 0)
		return r;
	fresh = !m->attached;
	str_copy(m->addr, a->listen, sizeof(m->addr));
	m->tls = a->tls;
	/* A full state directory refuses the migration now, not at attach. */
	if ((r = pagestate_dir_check(t->state_dir, m->id, err, errlen)) < 0 ||
	    (r = dest_listen(m, err, errlen)) < 0) {
		if (fresh) {
			mig_unlink(t, m);
			mig_free(m);
		}
		return r;
	}
	m->registered = true;
	log_info("migration %s: destination prepared, listening on %s",
	    m->id, m->listen);
	mig_notify(m);
	mig_vmm_claim(m);
	mig_maybe_start(m);
	return 0;
}

/* The Migrate request's precopy options over the table's defaults. */
static void
mig_precopy_policy(struct mig *m, const struct mig_migrate_args *a)
{
	const struct mig_precopy_defaults *d = &m->t->precopy;

	m->precopy_req = a->mode == MIG_MODE_PRECOPY ||
	    (a->mode == MIG_MODE_DEFAULT && d->precopy);
	memset(&m->pol, 0, sizeof(m->pol));
	m->pol.max_rounds = a->rounds ? a->rounds : d->rounds;
	/* A round limit is an automatic switch (a stall switches too). */
	m->pol.auto_switch = a->auto_switch || d->auto_switch ||
	    m->pol.max_rounds > 0;
	m->pol.max_downtime_ms = a->max_downtime_ms ? a->max_downtime_ms :
	    d->max_downtime_ms;
	m->bulk_channels = a->bulk_channels ? a->bulk_channels :
	    d->bulk_channels ? d->bulk_channels : 1;
}

/* A Migrate that names precopy (mode precopy, or rounds / auto without
 * --postcopy-only) on a kernel that cannot track dirty pages is refused,
 * saying why; one that merely inherits the config's default runs
 * postcopy-only and its Status says why (mig_precopy_decide). */
static int
mig_precopy_kernel(struct mig_table *t, const struct mig_migrate_args *a,
    char *err, size_t errlen)
{
	bool asked = a->mode == MIG_MODE_PRECOPY ||
	    (a->mode == MIG_MODE_DEFAULT && (a->rounds || a->auto_switch));

	if (!asked)
		return 0;
	if (!t->pc_probed) {
		t->pc_rc = probe_precopy(t->pc_why, sizeof(t->pc_why));
		t->pc_probed = true;
	}
	/* Only a kernel that lacks the features: a selftest that could not
	 * run here (no userfaultfd of its own, say) leaves it to the VMM's
	 * descriptors at attach. */
	if (t->pc_rc != -ENOTSUP)
		return 0;
	snprintf(err, errlen, "migration '%.80s' asks for precopy, which this "
	    "kernel cannot do: %s (migrate with --postcopy-only)", a->id ?
	    a->id : "", t->pc_why);
	return -EOPNOTSUPP;
}

void
mig_table_set_precopy(struct mig_table *t,
    const struct mig_precopy_defaults *d)
{
	t->precopy = *d;
}

int
mig_start_postcopy(struct mig_table *t, const char *id, char *err,
    size_t errlen)
{
	struct mig *m = id != NULL ? mig_find(t, id) : NULL;
	const struct mig_rule *r;

	if (m == NULL) {
		snprintf(err, errlen, "no migration '%.80s'", id ? id : "");
		return -ENOENT;
	}
	if (m->role != MIG_ROLE_SOURCE) {
		snprintf(err, errlen, "migration '%s' is a destination: "
		    "StartPostcopy is for its source", id);
		return -EINVAL;
	}
	r = mig_rule(m->role, m->state, MIG_EV_START_POSTCOPY);
	if (r->verdict != MIG_GO) {
		snprintf(err, errlen, "migration '%s' (state %s) cannot switch "
		    "to postcopy: %s", id, mig_state_name(m->state),
		    r->why ? r->why : "not now");
		return -EBUSY;
	}
	if (!m->precopy) {
		snprintf(err, errlen, "migration '%s' runs no precopy rounds "
		    "(%s)", id, m->precopy_note);
		return -EINVAL;
	}
	if (!source_stop_rounds(m)) {
		snprintf(err, errlen, "migration '%s' is already switching "
		    "over", id);
		return -EBUSY;
	}
	mig_apply_kind(m, MIG_EV_START_POSTCOPY, "StartPostcopy requested");
	return 0;
}

int
mig_migrate(struct mig_table *t, const struct mig_migrate_args *a,
    char *err, size_t errlen)
{
	char host[256];
	uint16_t port;
	struct mig *m;
	int r;

	if (a->dest == NULL || parse_hostport(a->dest, host, sizeof(host),
	    &port) < 0 || port == 0) {
		snprintf(err, errlen, "invalid destination address '%.100s' "
		    "(want host:port)", a->dest ? a->dest : "");
		return -EINVAL;
	}
	if ((r = mig_check_tls(&a->tls, false, err, errlen)) < 0)
		return r;
	if ((r = mig_precopy_kernel(t, a, err, errlen)) < 0)
		return r;
	if ((r = mig_register(t, a->id, MIG_ROLE_SOURCE, &m, err, errlen)) < 0)
		return r;
	str_copy(m->addr, a->dest, sizeof(m->addr));
	m->tls = a->tls;
	atomic_store(&m->bandwidth_bps, a->bandwidth_bps);
	mig_precopy_policy(m, a);
	m->registered = true;
	log_info("migration %s: source registered, destination %s%s", m->id,
	    m->addr, m->attached ? "" : " (waiting for the VMM to attach)");
	mig_notify(m);
	mig_vmm_claim(m);
	mig_maybe_start(m);
	return 0;
}

/* A Cancel before switchover ends both sides: the peer is told (an Error
 * frame of code CANCELLED on the urgent channel, when the channels are
 * up; it never waits long), then the migration is cancelled here. */
static void
mig_tell_peer_cancel(struct mig *m, const char *why)
{
	const char *peer = m->role == MIG_ROLE_SOURCE ? "destination" :
	    "source";
	int r = m->src != NULL ? source_tell_cancel(m, why) :
	    m->dst != NULL ? dest_tell_cancel(m, why) : -ENOTCONN;

	if (r == 0)
		log_info("migration %s: the %s was told of the cancel", m->id,
		    peer);
	else if (r != -ENOTCONN)	/* no channels: nobody to tell */
		log_notice("migration %s: the %s was not told of the cancel "
		    "(%s): it finds the channels gone", m->id, peer,
		    strerror(-r));
}

/* The migration id names, if it exists and is not over yet; otherwise
 * -ENOENT or -EALREADY with err saying which. */
static int
mig_find_live(struct mig_table *t, const char *id, struct mig **out,
    char *err, size_t errlen)
{
	struct mig *m = id != NULL ? mig_find(t, id) : NULL;

	*out = m;
	if (m == NULL) {
		snprintf(err, errlen, "no migration '%.80s'", id ? id : "");
		return -ENOENT;
	}
	if (mig_terminal(m->state)) {
		snprintf(err, errlen, "migration '%s' already %s", id,
		    mig_state_name(m->state));
		return -EALREADY;
	}
	return 0;
}

int
mig_cancel(struct mig_table *t, const char *id, char *err, size_t errlen)
{
	struct mig *m;
	const char *why = NULL;
	int r;

	if ((r = mig_find_live(t, id, &m, err, errlen)) < 0)
		return r;
	if (!mig_can_cancel(m->role, m->state, &why)) {
		snprintf(err, errlen, "migration '%s' (state %s) cannot be "
		    "cancelled: %s%s", id, mig_state_name(m->state), why,
		    m->role == MIG_ROLE_SOURCE && mig_switched_over(m->state) ?
		    "; if the destination completed it (its status says "
		    "completed), end it here with cancel "
		    "--destination-completed" : "");
		return -EBUSY;
	}
	mig_tell_peer_cancel(m, "cancelled by request");
	mig_apply_kind(m, MIG_EV_CANCEL, "cancelled by request");
	return 0;
}

int
mig_end_dest_completed(struct mig_table *t, const char *id, char *err,
    size_t errlen)
{
	struct mig *m;
	int r;

	if ((r = mig_find_live(t, id, &m, err, errlen)) < 0)
		return r;
	if (m->role != MIG_ROLE_SOURCE || !mig_switched_over(m->state)) {
		snprintf(err, errlen, "migration '%s' (%s, state %s): "
		    "--destination-completed ends a source whose guest left "
		    "(postcopy or postcopy-paused) only", id,
		    mig_role_name(m->role), mig_state_name(m->state));
		return -EINVAL;
	}
	log_notice("migration %s: the operator says its destination completed "
	    "it; ending as completed (the guest runs on the destination)", id);
	mig_apply_kind(m, MIG_EV_DONE, "migration completed (the operator "
	    "confirmed the destination completed it; the guest runs there: "
	    "do not resume it here)");
	return mig_terminal(m->state) ? 0 : -EBUSY;
}

size_t
mig_cancel_on_shutdown(struct mig_table *t)
{
	size_t n = 0;

	for (struct mig *m = t->head; m != NULL; m = m->next) {
		if (!mig_can_cancel(m->role, m->state, NULL))
			continue;
		mig_tell_peer_cancel(m, "its postcopyd is shutting down");
		if (mig_apply_kind(m, MIG_EV_CANCEL, "cancelled: postcopyd is "
		    "shutting down")->verdict == MIG_GO)
			n++;
	}
	return n;
}

int
mig_resume(struct mig_table *t, const char *id, const char *addr,
    char *err, size_t errlen)
{
	struct mig *m = id != NULL ? mig_find(t, id) : NULL;
	char host[256];
	uint16_t port;
	int r;

	if (m == NULL) {
		snprintf(err, errlen, "no migration '%.80s'", id ? id : "");
		return -ENOENT;
	}
	if (!mig_has_channels(m->state)) {
		snprintf(err, errlen, "migration '%s' is %s: only a paused or "
		    "running migration can be resumed", id,
		    mig_state_name(m->state));
		return -EINVAL;
	}
	if (addr != NULL && addr[0] != '\0') {
		if (m->role != MIG_ROLE_SOURCE) {
			snprintf(err, errlen, "migration '%s' is a destination: "
			    "a new address applies on the source", id);
			return -EINVAL;
		}
		if (parse_hostport(addr, host, sizeof(host), &port) < 0 ||
		    port == 0) {
			snprintf(err, errlen, "invalid destination address "
			    "'%.100s' (want host:port)", addr);
			return -EINVAL;
		}
	}
	if (m->role == MIG_ROLE_SOURCE)
		r = source_resume(m, addr, err, errlen);
	else
		r = dest_resume(m, err, errlen);
	if (r == 0)
		log_notice("migration %s: resume requested%s%s", id,
		    addr && addr[0] ? " to " : "", addr && addr[0] ? addr : "");
	return r;
}

int
mig_set_bandwidth(struct mig_table *t, const char *id, uint64_t bps,
    char *err, size_t errlen)
{
	struct mig *m = id != NULL ? mig_find(t, id) : NULL;

	if (m == NULL) {
		snprintf(err, errlen, "no migration '%.80s'", id ? id : "");
		return -ENOENT;
	}
	if (m->role != MIG_ROLE_SOURCE) {
		snprintf(err, errlen, "migration '%s' is a destination: the "
		    "bandwidth limit applies on the source", id);
		return -EINVAL;
	}
	if (mig_terminal(m->state)) {
		snprintf(err, errlen, "migration '%s' is %s: it has no bulk "
		    "stream left to limit", id, mig_state_name(m->state));
		return -EALREADY;
	}
	atomic_store(&m->bandwidth_bps, bps);
	log_info("migration %s: bulk bandwidth limit %" PRIu64 " B/s%s", id,
	    bps, bps == 0 ? " (unlimited)" : "");
	mig_notify(m);
	return 0;
}

/* The precopy part of a snapshot (source). */
static void
mig_fill_precopy(struct mig *m, struct mig_stats *s)
{
	const char *ph = "";

	if (m->role != MIG_ROLE_SOURCE)
		return;
	if (m->started && !m->precopy)
		ph = "postcopy-only";
	else if (m->precopy && m->state == MIG_STATE_COMPLETED)
		ph = m->converged ? "completed (converged)" : "completed";
	else if (m->precopy && mig_switched_over(m->state))
		ph = m->converged ? "converged" : "postcopy";
	else if (m->precopy)
		ph = mig_state_name(m->state);
	str_copy(s->phase, ph, sizeof(s->phase));
	str_copy(s->precopy_note, m->precopy_note, sizeof(s->precopy_note));
	s->iteration = (uint32_t)atomic_load(&m->c.pc_rounds);
	s->precopy_pages_sent = atomic_load(&m->c.pc_pages_sent);
	s->precopy_last_round = atomic_load(&m->c.pc_last_round);
	s->pages_redirtied = atomic_load(&m->c.pc_redirtied);
	s->dirty_rate = atomic_load(&m->c.pc_dirty_rate);
	s->remaining = atomic_load(&m->c.pc_remaining);
	s->final_dirty = atomic_load(&m->c.pc_final_dirty);
}

/* A migration after switchover with its state on disk (a destination's
 * page state, a source's state saved at the pause): a planned stop leaves
 * it for the restarted daemon (as after kill -9). */
static bool
mig_resumable(const struct mig *m)
{
	return m->started && !mig_terminal(m->state) &&
	    mig_switched_over(m->state) && m->state_path[0] != '\0';
}

static void
mig_fill_draining(const struct mig *m, struct mig_stats *s)
{
	uint64_t now = wall_ms(), until = m->t->drain_until_ms;

	if (until == 0 || mig_terminal(m->state) ||
	    !mig_switched_over(m->state))
		return;
	snprintf(s->draining, sizeof(s->draining), "draining: postcopyd stops "
	    "in %" PRIu64 " s; %s", until > now ? (until - now + 999) / 1000 :
	    0, mig_resumable(m) ? "unless completed by then, it is left "
	    "resumable (its state kept, the VMM waits for the restarted "
	    "daemon)" : "unless completed by then, it fails");
}

void
mig_table_drain(struct mig_table *t, unsigned s)
{
	t->drain_until_ms = wall_ms() + (uint64_t)s * 1000;
	for (struct mig *m = t->head; m != NULL; m = m->next)
		if (!mig_terminal(m->state))
			mig_notify(m);
}

/* At exit: a migration left resumable (mig_resumable) is not failed: the
 * VMM is told to attach again to the restarted daemon, which picks the
 * migration up from its page state file (kept). */
static void
mig_leave(struct mig *m)
{
	if (mig_resumable(m)) {
		log_notice("migration %s (%s, %s): left resumable: state kept "
		    "in %s; %s on the restarted daemon, its VMM attaches "
		    "again", m->id, mig_role_name(m->role),
		    mig_state_name(m->state), m->state_path,
		    m->role == MIG_ROLE_DEST ? "prepare it again" :
		    "migrate it again (same id and destination)");
		if (m->vmm != NULL)
			vmm_session_detach(m->vmm, "postcopyd is stopping; the "
			    "migration is left resumable: attach again to the "
			    "restarted daemon");
		return;
	}
	if (!mig_terminal(m->state) && m->vmm != NULL)
		vmm_session_complete(m->vmm, false, "postcopyd is shutting "
		    "down");
}

static void
mig_fill_stats(struct mig *m, struct mig_stats *s)
{
	uint64_t end;

	memset(s, 0, sizeof(*s));
	str_copy(s->id, m->id, sizeof(s->id));
	s->role = m->role;
	s->state = m->state;
	str_copy(s->listen, m->listen, sizeof(s->listen));
	str_copy(s->errmsg, m->errmsg, sizeof(s->errmsg));
	str_copy(s->refused, m->refused, sizeof(s->refused));
	/* Pages as moved: a huge-page guest's 4 KiB pieces. */
	s->page_size = m->attached ? vmm_piece_size(m->g.page_size) : 0;
	s->pages_total = m->attached && m->g.page_size ?
	    m->g.size / vmm_piece_size(m->g.page_size) : 0;
	s->pages_valid = atomic_load(&m->c.pages_valid);
	s->pages_zero = atomic_load(&m->c.pages_zero);
	s->pages_sent_bulk = atomic_load(&m->c.pages_bulk);
	s->pages_sent_urgent = atomic_load(&m->c.pages_urgent);
	s->bytes_transferred = atomic_load(&m->c.bytes);
	s->faults_remote = atomic_load(&m->c.faults_remote);
	s->faults_local = atomic_load(&m->c.faults_local);
	s->page_requests = atomic_load(&m->c.requests);
	for (int i = 0; i < MIG_LAT_BUCKETS; i++)
		s->lat_hist[i] = atomic_load(&m->c.lat_hist[i]);
	s->lat_max_us = atomic_load(&m->c.lat_max_us);
	s->lat_sum_us = atomic_load(&m->c.lat_sum_us);
	s->pages_verified = atomic_load(&m->c.pages_verified);
	s->pages_mismatched = atomic_load(&m->c.pages_mismatched);
	s->reconnects = atomic_load(&m->c.reconnects);
	s->bandwidth_bps = atomic_load(&m->bandwidth_bps);
	s->start_ms = m->start_ms;
	end = m->end_ns ? m->end_ns : now_ns();
	s->elapsed_ms = m->started ? (end - m->t0_ns) / 1000000 : 0;
	s->setup_ms = m->setup_ns / 1000000;
	s->downtime_ms = m->downtime_ms;
	s->vmm_attached = m->attached && m->vmm != NULL;
	s->switched_over = m->switched_over;
	mig_fill_precopy(m, s);
	mig_fill_draining(m, s);
}

int
mig_get_stats(struct mig_table *t, const char *id, struct mig_stats *out)
{
	struct mig *m = id != NULL ? mig_find(t, id) : NULL;
	struct vmm_guest g;

	if (m == NULL && id != NULL && vmm_server_held(t->vmm, id, &g)) {
		/* A VMM waits in vmm.c's pool for this id to be prepared:
		 * shown (waiting, VMM attached) but not a migration. */
		memset(out, 0, sizeof(*out));
		str_copy(out->id, id, sizeof(out->id));
		out->role = g.role;
		out->state = MIG_STATE_WAITING;
		out->page_size = g.page_size;
		out->pages_total = g.size / g.page_size;
		out->vmm_attached = true;
		return 0;
	}
	if (m == NULL)
		return -ENOENT;
	mig_fill_stats(m, out);
	return 0;
}

size_t
mig_list(struct mig_table *t, struct mig_stats *out, size_t max)
{
	size_t i = 0;

	for (struct mig *m = t->head; m != NULL; m = m->next, i++)
		if (i < max)
			mig_fill_stats(m, &out[i]);
	return i;
}

void
mig_table_set_state_dir(struct mig_table *t, const char *dir,
    const char *vmm_socket)
{
	const char *slash;

	t->state_dir[0] = '\0';
	if (dir != NULL && strcmp(dir, "off") == 0)
		return;
	if (dir != NULL && dir[0] != '\0' && strcmp(dir, "auto") != 0) {
		str_copy(t->state_dir, dir, sizeof(t->state_dir));
		return;
	}
	if (vmm_socket == NULL || (slash = strrchr(vmm_socket, '/')) == NULL)
		return;
	snprintf(t->state_dir, sizeof(t->state_dir), "%.*s",
	    (int)(slash - vmm_socket), vmm_socket);
	if (t->state_dir[0] == '\0')
		str_copy(t->state_dir, "/", sizeof(t->state_dir));
}

void
mig_table_set_notify(struct mig_table *t, mig_notify_fn fn, void *arg)
{
	t->notify = fn;
	t->notify_arg = arg;
}

void
mig_table_set_transition_hook(struct mig_table *t, mig_transition_fn fn,
    void *arg)
{
	t->on_transition = fn;
	t->on_transition_arg = arg;
}

/* ---- the VMM attach socket -------------------------------------------- */

static int
mig_vmm_attached(void *arg, struct vmm_session *s, struct vmm_guest *g,
    char *err, size_t errlen)
{
	struct mig_table *t = arg;
	struct mig *m = mig_find(t, g->id);

	if (m != NULL && !mig_terminal(m->state)) {
		if (m->role != g->role) {
			snprintf(err, errlen, "migration '%s' is a %s here; a %s "
			    "VMM cannot attach to it", g->id,
			    mig_role_name(m->role), mig_role_name(g->role));
			return -EINVAL;
		}
		if (m->attached) {
			snprintf(err, errlen, "migration '%s' already has a "
			    "VMM attached", g->id);
			return -EBUSY;
		}
	} else {
		return VMM_HOLD;	/* nobody prepared it: vmm.c's pool */
	}
	if (m->vmm_wait != NULL)
		event_del(m->vmm_wait);
	m->g = *g;
	m->vmm = s;
	m->attached = true;
	vmm_session_set_data(s, m);
	log_info("migration %s: %s VMM attached (pid %d, %" PRIu64 " bytes, "
	    "page size %" PRIu32 ")", m->id, mig_role_name(m->role),
	    (int)g->pid, g->size, g->page_size);
	mig_notify(m);
	mig_maybe_start(m);
	return 0;
}

static void
mig_vmm_paused(void *arg, struct vmm_session *s, const void *state, size_t len)
{
	struct mig *m = vmm_session_data(s);
	struct mig_event e = { .kind = MIG_EV_VMM_PAUSED, .len = len };

	if (m == NULL)
		return;
	log_info("migration %s: source VMM paused (%zu bytes of device state)",
	    m->id, len);
	e.data = (void *)state;		/* not owned: the VMM's buffer */
	mig_apply(m, &e);
}

static void
mig_vmm_detached(void *arg, struct vmm_session *s)
{
	struct mig *m = vmm_session_data(s);
	char msg[128];

	if (m == NULL)
		return;
	m->vmm = NULL;
	if (mig_terminal(m->state))
		return;
	snprintf(msg, sizeof(msg), "the %s VMM (pid %d) detached",
	    mig_role_name(m->role), (int)m->g.pid);
	mig_apply_kind(m, MIG_EV_FAIL, msg);
}

/* Huge-page guests: moved in 4 KiB pieces, mapped a huge page at a time
 * (place.c, HUGE); in COPY mode 2 MiB pages only (place.c, HUGE COPY: a
 * 1 GiB page would need a 1 GiB bounce buffer for each in flight). */
static const struct vmm_ops mig_vmm_ops = {
	.huge_pages = VMM_CARRY_2M | VMM_CARRY_1G | VMM_CARRY_COPY_2M,
	.attached = mig_vmm_attached,
	.paused = mig_vmm_paused,
	.detached = mig_vmm_detached,
};

int
mig_table_new(struct event_base *base, const char *vmm_socket, int vmm_fd,
    struct mig_table **out)
{
	struct mig_table *t = calloc(1, sizeof(*t));
	int r;

	*out = NULL;
	if (t == NULL) {
		if (vmm_fd >= 0)
			close(vmm_fd);
		return -ENOMEM;
	}
	t->base = base;
	t->vmm_wait_s = 300;
	t->completed_grace_s = MIG_COMPLETED_GRACE_DEFAULT;
	r = vmm_server_open(base, vmm_socket, vmm_fd, &mig_vmm_ops, t, &t->vmm);
	if (r < 0) {
		free(t);
		return r;
	}
	*out = t;
	return 0;
}

void
mig_table_free(struct mig_table *t)
{
	struct mig *m;

	if (t == NULL)
		return;
	while ((m = t->head) != NULL) {
		t->head = m->next;
		mig_leave(m);
		mig_free(m);
	}
	vmm_server_free(t->vmm);
	free(t);
}
