/* test_state.c - unit tests of the migration state machine (state.c): the
 * transition table against an expected table written out here on its own
 * (so changing a transition fails this test), the orders threads can post
 * events in, Cancel per state, and the event queue's order.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "migration.h"
#include "state.h"

/* The expected table. One letter per state:
 *   W waiting, S setup, P precopy, p precopy-paused, X switchover,
 *   Q postcopy, q postcopy-paused, C completed, F failed, K cancelled;
 * "-" refused (logged with its reason), "." ignored (a late event).
 * Columns, in order: start, connected, restored, precopy-round-done,
 * converged, start-postcopy, vmm-paused, device-state, link-down, link-up,
 * done, fail, cancel, refused. */
static const char *const expected[MIG_STATE_COUNT] = {
	[MIG_STATE_WAITING]		= "S----------FK-",
	[MIG_STATE_SETUP]		= "-PQ----Q---FKS",
	[MIG_STATE_PRECOPY]		= "---PXX-Qp-FFKP",
	[MIG_STATE_PRECOPY_PAUSED]	= "---p--qqpP-FKp",
	[MIG_STATE_SWITCHOVER]		= "---..-Q-p--FKX",
	[MIG_STATE_POSTCOPY]		= "-Q-..---q-CF-Q",
	[MIG_STATE_POSTCOPY_PAUSED]	= "---..---qQCF-q",
	[MIG_STATE_COMPLETED]		= ".....-......-.",
	[MIG_STATE_FAILED]		= ".....-......-.",
	[MIG_STATE_CANCELLED]		= ".....-......-.",
};

/* Which role sees which event: s source, d destination, b both. */
static const char expected_roles[MIG_EV_COUNT + 1] = "bbbssssdbbbbbd";

static const char state_letters[MIG_STATE_COUNT + 1] = "WSPpXQqCFK";

static void
test_expected_is_complete(void **unused)
{
	assert_int_equal(strlen(expected_roles), MIG_EV_COUNT);
	assert_int_equal(strlen(state_letters), MIG_STATE_COUNT);
	for (int s = 0; s < MIG_STATE_COUNT; s++) {
		assert_non_null(expected[s]);
		assert_int_equal(strlen(expected[s]), MIG_EV_COUNT);
	}
}

static bool
role_sees(enum mig_role r, int ev)
{
	char c = expected_roles[ev];

	return c == 'b' || (c == 's' && r == MIG_ROLE_SOURCE) ||
	    (c == 'd' && r == MIG_ROLE_DEST);
}

/* One (role, state, event): the rule the table gives against the letter. */
static void
check_pair(enum mig_role r, int s, int ev)
{
	const struct mig_rule *rule = mig_rule(r, s, ev);
	char want = role_sees(r, ev) ? expected[s][ev] : '-';
	char msg[160];

	snprintf(msg, sizeof(msg), "%s in %s on a %s", mig_event_name(ev),
	    mig_state_name(s), mig_role_name(r));
	assert_non_null(rule);
	if (want == '-' || want == '.') {
		if (rule->verdict != (want == '-' ? MIG_REFUSE : MIG_IGNORE))
			fail_msg("%s: verdict %d, want %s", msg, rule->verdict,
			    want == '-' ? "refused" : "ignored");
		if (rule->why == NULL || rule->why[0] == '\0')
			fail_msg("%s: refused without a reason", msg);
		return;
	}
	if (rule->verdict != MIG_GO)
		fail_msg("%s: refused (%s), want -> %c", msg, rule->why, want);
	if (state_letters[rule->to] != want)
		fail_msg("%s: -> %s, want -> %c", msg, mig_state_name(rule->to),
		    want);
	assert_true(mig_event_for_role(r, ev));
}

/* Every (role, state, event) of the table. */
static void
test_every_pair(void **unused)
{
	unsigned pairs = 0;

	for (int r = MIG_ROLE_SOURCE; r <= MIG_ROLE_DEST; r++)
		for (int s = 0; s < MIG_STATE_COUNT; s++)
			for (int ev = 0; ev < MIG_EV_COUNT; ev++, pairs++)
				check_pair(r, s, ev);
	assert_int_equal(pairs, 2 * MIG_STATE_COUNT * MIG_EV_COUNT);
}

static void
test_out_of_range(void **unused)
{
	assert_int_equal(mig_rule(MIG_ROLE_SOURCE, MIG_STATE_COUNT,
	    MIG_EV_START)->verdict, MIG_REFUSE);
	assert_int_equal(mig_rule(MIG_ROLE_SOURCE, MIG_STATE_WAITING,
	    MIG_EV_COUNT)->verdict, MIG_REFUSE);
	assert_int_equal(mig_rule(0, MIG_STATE_WAITING, MIG_EV_START)->verdict,
	    MIG_REFUSE);
	assert_false(mig_event_for_role(0, MIG_EV_START));
	assert_string_equal(mig_event_name(MIG_EV_COUNT), "unknown");
	assert_string_equal(mig_state_name(MIG_STATE_COUNT), "unknown");
}

/* Applies events the way migration.c does (an allowed event moves to its
 * state, any other leaves the state alone); returns the final state. */
static enum mig_state
run(enum mig_role r, enum mig_state s, const enum mig_ev *evs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct mig_rule *rule = mig_rule(r, s, evs[i]);

		if (rule->verdict == MIG_GO)
			s = rule->to;
	}
	return s;
}

#define RUN(r, s, ...) run(r, s, (const enum mig_ev[]){ __VA_ARGS__ },	\
	sizeof((const enum mig_ev[]){ __VA_ARGS__ }) / sizeof(enum mig_ev))

/* 93bee54: a destination's urgent thread may queue the Switchover before
 * its main thread queues "connected"; it must stay in postcopy (and end in
 * postcopy with either order). */
static void
test_switchover_before_connected(void **unused)
{
	assert_int_equal(RUN(MIG_ROLE_DEST, MIG_STATE_SETUP,
	    MIG_EV_DEVICE_STATE), MIG_STATE_POSTCOPY);
	assert_int_equal(RUN(MIG_ROLE_DEST, MIG_STATE_SETUP,
	    MIG_EV_DEVICE_STATE, MIG_EV_CONNECTED), MIG_STATE_POSTCOPY);
	assert_int_equal(RUN(MIG_ROLE_DEST, MIG_STATE_SETUP,
	    MIG_EV_CONNECTED, MIG_EV_DEVICE_STATE), MIG_STATE_POSTCOPY);
	/* The same race after a reconnect: the resent Switchover before
	 * "reconnected". */
	assert_int_equal(RUN(MIG_ROLE_DEST, MIG_STATE_PRECOPY,
	    MIG_EV_LINK_DOWN, MIG_EV_DEVICE_STATE, MIG_EV_LINK_UP),
	    MIG_STATE_POSTCOPY);
	assert_int_equal(RUN(MIG_ROLE_DEST, MIG_STATE_PRECOPY,
	    MIG_EV_LINK_DOWN, MIG_EV_LINK_UP, MIG_EV_DEVICE_STATE),
	    MIG_STATE_POSTCOPY);
}

/* Whole lives of a migration, as the daemon posts them today. */
static void
test_lives(void **unused)
{
	/* Source: connect, switch over at once, a cut in postcopy. */
	assert_int_equal(RUN(MIG_ROLE_SOURCE, MIG_STATE_WAITING, MIG_EV_START,
	    MIG_EV_CONNECTED, MIG_EV_START_POSTCOPY, MIG_EV_VMM_PAUSED,
	    MIG_EV_LINK_DOWN, MIG_EV_LINK_DOWN, MIG_EV_LINK_UP, MIG_EV_DONE),
	    MIG_STATE_COMPLETED);
	/* Source: the channels break while the VMM is asked to pause; it
	 * answers meanwhile: postcopy-paused, then postcopy. */
	assert_int_equal(RUN(MIG_ROLE_SOURCE, MIG_STATE_SWITCHOVER,
	    MIG_EV_LINK_DOWN), MIG_STATE_PRECOPY_PAUSED);
	assert_int_equal(RUN(MIG_ROLE_SOURCE, MIG_STATE_SWITCHOVER,
	    MIG_EV_LINK_DOWN, MIG_EV_VMM_PAUSED), MIG_STATE_POSTCOPY_PAUSED);
	assert_int_equal(RUN(MIG_ROLE_SOURCE, MIG_STATE_SWITCHOVER,
	    MIG_EV_LINK_DOWN, MIG_EV_VMM_PAUSED, MIG_EV_LINK_UP),
	    MIG_STATE_POSTCOPY);
	/* A restarted destination picks up a running guest. */
	assert_int_equal(RUN(MIG_ROLE_DEST, MIG_STATE_WAITING, MIG_EV_START,
	    MIG_EV_RESTORED, MIG_EV_DONE), MIG_STATE_COMPLETED);
	/* Terminal states are final: late events change nothing. */
	assert_int_equal(RUN(MIG_ROLE_DEST, MIG_STATE_POSTCOPY, MIG_EV_FAIL,
	    MIG_EV_LINK_UP, MIG_EV_DONE, MIG_EV_CONNECTED), MIG_STATE_FAILED);
	/* The precopy events (rounds, StartPostcopy) lead to switchover. */
	assert_int_equal(RUN(MIG_ROLE_SOURCE, MIG_STATE_PRECOPY,
	    MIG_EV_PRECOPY_ROUND_DONE, MIG_EV_PRECOPY_ROUND_DONE,
	    MIG_EV_CONVERGED), MIG_STATE_SWITCHOVER);
	/* Role-specific events are refused on the other role. */
	assert_int_equal(RUN(MIG_ROLE_SOURCE, MIG_STATE_PRECOPY,
	    MIG_EV_DEVICE_STATE), MIG_STATE_PRECOPY);
	assert_int_equal(RUN(MIG_ROLE_DEST, MIG_STATE_PRECOPY,
	    MIG_EV_START_POSTCOPY), MIG_STATE_PRECOPY);
}

/* Cancel: allowed in every live state before switchover (paused precopy
 * too: the guest still runs on the source), refused after it, with why. */
static void
test_cancel(void **unused)
{
	static const char allowed[MIG_STATE_COUNT + 1] = "yyyyynnnnn";

	for (int r = MIG_ROLE_SOURCE; r <= MIG_ROLE_DEST; r++) {
		for (int s = 0; s < MIG_STATE_COUNT; s++) {
			const char *why = NULL;
			bool ok = mig_can_cancel(r, s, &why);

			if (ok != (allowed[s] == 'y'))
				fail_msg("cancel in %s: %s", mig_state_name(s),
				    ok ? "allowed" : "refused");
			if (ok)
				continue;
			assert_non_null(why);
			if (!mig_terminal(s) && strstr(why, "switched over") ==
			    NULL)
				fail_msg("cancel in %s: reason '%s'",
				    mig_state_name(s), why);
		}
	}
	assert_true(mig_can_cancel(MIG_ROLE_SOURCE, MIG_STATE_PRECOPY_PAUSED,
	    NULL));
	assert_false(mig_can_cancel(MIG_ROLE_DEST, MIG_STATE_POSTCOPY_PAUSED,
	    NULL));
}

static void
test_questions(void **unused)
{
	/* One letter per state: terminal, switched over, has channels. */
	static const char terminal[] = "nnnnnnnyyy", switched[] = "nnnnnyyynn",
	    channels[] = "nnyyyyynnn";

	for (int s = 0; s < MIG_STATE_COUNT; s++) {
		assert_int_equal(mig_terminal(s), terminal[s] == 'y');
		assert_int_equal(mig_switched_over(s), switched[s] == 'y');
		assert_int_equal(mig_has_channels(s), channels[s] == 'y');
	}
}

static void
test_names(void **unused)
{
	for (int s = 0; s < MIG_STATE_COUNT; s++) {
		assert_string_not_equal(mig_state_name(s), "unknown");
		for (int o = 0; o < s; o++)
			assert_string_not_equal(mig_state_name(s),
			    mig_state_name(o));
	}
	for (int e = 0; e < MIG_EV_COUNT; e++) {
		assert_non_null(mig_event_name(e));
		assert_string_not_equal(mig_event_name(e), "unknown");
		for (int o = 0; o < e; o++)
			assert_string_not_equal(mig_event_name(e),
			    mig_event_name(o));
	}
	assert_string_equal(mig_state_name(MIG_STATE_PRECOPY_PAUSED),
	    "precopy-paused");
	assert_string_equal(mig_state_name(MIG_STATE_POSTCOPY_PAUSED),
	    "postcopy-paused");
}

/* ---- the queue ---------------------------------------------------------- */

#define QN	20000		/* events per thread */

struct poster {
	struct mig_queue	*q;
	unsigned		 id;
	unsigned		 failed;	/* posts that did not queue */
};

static void *
poster_main(void *arg)
{
	struct poster *p = arg;

	for (unsigned i = 0; i < QN; i++) {
		uint32_t *data = malloc(sizeof(*data));

		/* (No cmocka asserts off the main thread.) */
		if (data == NULL) {
			p->failed++;
			continue;
		}
		*data = i;
		/* The kind alternates too: the queue must not coalesce. */
		if (mig_queue_post(p->q, i % 2 ? MIG_EV_LINK_UP :
		    MIG_EV_LINK_DOWN, p->id ? "b" : "a", data, sizeof(*data),
		    ((uint64_t)p->id << 32) | i) < 0)
			p->failed++;
	}
	return NULL;
}

/* Two threads post while the main thread drains: every event arrives once,
 * and each thread's events in the order it posted them. */
static void
test_queue_order(void **unused)
{
	struct mig_queue q;
	struct poster p[2] = { { &q, 0, 0 }, { &q, 1, 0 } };
	pthread_t thr[2];
	unsigned next[2] = { 0, 0 }, got = 0, lost;
	struct mig_event *e;

	mig_queue_init(&q);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&thr[i], NULL, poster_main,
		    &p[i]), 0);
	while (got < 2 * QN) {
		if ((e = mig_queue_pop(&q, &lost)) == NULL) {
			assert_int_equal(lost, 0);
			if (p[0].failed + p[1].failed > 0)
				fail_msg("a post failed");
			sched_yield();
			continue;
		}
		unsigned who = (unsigned)(e->at_ms >> 32);
		unsigned seq = (unsigned)e->at_ms;

		assert_true(who < 2);
		assert_int_equal(seq, next[who]);
		assert_int_equal(*(uint32_t *)e->data, seq);
		assert_int_equal(e->len, sizeof(uint32_t));
		assert_int_equal(e->kind, seq % 2 ? MIG_EV_LINK_UP :
		    MIG_EV_LINK_DOWN);
		assert_string_equal(e->text, who ? "b" : "a");
		next[who]++;
		got++;
		mig_event_free(e);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(thr[i], NULL);
	assert_null(mig_queue_pop(&q, &lost));
	assert_int_equal(next[0], QN);
	assert_int_equal(next[1], QN);
	mig_queue_destroy(&q);
}

/* Events left in the queue are freed with it (ASan checks the data). */
static void
test_queue_destroy(void **unused)
{
	struct mig_queue q;
	char *fail = NULL;

	mig_queue_init(&q);
	assert_int_equal(mig_queue_post(&q, MIG_EV_FAIL, "first", NULL, 0, 0), 0);
	assert_int_equal(mig_queue_post(&q, MIG_EV_DEVICE_STATE, NULL,
	    strdup("device state"), 13, 7), 0);
	assert_int_equal(mig_queue_post(&q, MIG_EV_DONE, NULL, NULL, 0, 0), 0);
	struct mig_event *e = mig_queue_pop(&q, NULL);
	assert_non_null(e);
	assert_int_equal(e->kind, MIG_EV_FAIL);
	fail = strdup(e->text);
	mig_event_free(e);
	assert_string_equal(fail, "first");
	free(fail);
	mig_queue_destroy(&q);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_expected_is_complete),
		cmocka_unit_test(test_every_pair),
		cmocka_unit_test(test_out_of_range),
		cmocka_unit_test(test_switchover_before_connected),
		cmocka_unit_test(test_lives),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_questions),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_queue_order),
		cmocka_unit_test(test_queue_destroy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
