/* test_precopy.c - when precopy stops (daemon/precopy.c): convergence
 * against the measured bandwidth and max_downtime_ms, the automatic switch
 * after max_rounds or on a stall, manual mode waiting for StartPostcopy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "precopy.h"

#define NP	262144u		/* 1 GiB of 4 KiB pages */

/* A round that sent n pages at 100 MiB/s and left `after` dirty. */
static struct precopy_round
rnd(uint64_t n, uint64_t after)
{
	struct precopy_round r = {
		.pages_sent = n,
		.bytes_sent = n * 4096,
		.elapsed_us = n * 4096 * 1000000 / (100u << 20),
		.dirty_after = after,
	};
	return r;
}

static enum precopy_decision
step(struct precopy *p, uint64_t n, uint64_t after)
{
	struct precopy_round r = rnd(n, after);
	char why[256];
	enum precopy_decision d = precopy_next(p, &r, why, sizeof(why));

	printf("  %s -> %s\n", why, precopy_decision_name(d));
	return d;
}

static void
test_precopy_converges(void **state)
{
	struct precopy_policy pol = { .auto_switch = true, .max_rounds = 10,
	    .max_downtime_ms = 10, .page_size = 4096 };
	struct precopy p;

	precopy_init(&p, &pol, NP);
	assert_int_equal(p.remaining, NP);
	/* 100 MiB/s = 25600 pages/s: 10 ms is 256 pages. */
	assert_int_equal(step(&p, NP, 5000), PRECOPY_CONTINUE);
	assert_int_equal(p.bandwidth, 100u << 20);
	assert_int_equal(precopy_downtime_ms(&p, 256), 10);
	assert_int_equal(step(&p, 5000, 800), PRECOPY_CONTINUE);
	assert_int_equal(step(&p, 800, 256), PRECOPY_CONVERGED);
	assert_int_equal(p.rounds, 3);
	assert_int_equal(p.pages_sent, NP + 5800);
	/* Nothing dirty at all converges at once, even unmeasured. */
	precopy_init(&p, &pol, NP);
	assert_int_equal(step(&p, NP, 0), PRECOPY_CONVERGED);
}

static void
test_precopy_stall_switches(void **state)
{
	struct precopy_policy pol = { .auto_switch = true,
	    .max_downtime_ms = 10, .page_size = 4096 };
	struct precopy p;

	precopy_init(&p, &pol, NP);
	assert_int_equal(step(&p, NP, 20000), PRECOPY_CONTINUE);
	assert_int_equal(step(&p, 20000, 15000), PRECOPY_CONTINUE); /* 25% */
	assert_int_equal(step(&p, 15000, 14000), PRECOPY_SWITCH);  /* 6% */
	/* A dirty set that grows is a stall too. */
	precopy_init(&p, &pol, NP);
	assert_int_equal(step(&p, NP, 20000), PRECOPY_CONTINUE);
	assert_int_equal(step(&p, 20000, 30000), PRECOPY_SWITCH);
}

static void
test_precopy_max_rounds(void **state)
{
	struct precopy_policy pol = { .auto_switch = true, .max_rounds = 2,
	    .max_downtime_ms = 1, .page_size = 4096 };
	struct precopy p;

	precopy_init(&p, &pol, NP);
	assert_int_equal(step(&p, NP, 100000), PRECOPY_CONTINUE);
	assert_int_equal(step(&p, 100000, 50000), PRECOPY_SWITCH);
}

/* Manual mode (StartPostcopy only): neither a stall nor the round count
 * switches; convergence still completes. */
static void
test_precopy_manual(void **state)
{
	struct precopy_policy pol = { .auto_switch = false, .max_rounds = 2,
	    .max_downtime_ms = 10, .page_size = 4096 };
	struct precopy p;

	precopy_init(&p, &pol, NP);
	for (int i = 0; i < 5; i++)
		assert_int_equal(step(&p, 20000, 20000), PRECOPY_CONTINUE);
	assert_int_equal(step(&p, 20000, 100), PRECOPY_CONVERGED);
}

/* Defaults and a round too short to measure. */
static void
test_precopy_defaults(void **state)
{
	struct precopy_policy pol = { .auto_switch = true };
	struct precopy_round r = { .pages_sent = 1, .bytes_sent = 4096,
	    .elapsed_us = 10, .dirty_after = 1000 };
	struct precopy p;
	char why[256];

	precopy_init(&p, &pol, 4096);
	assert_int_equal(p.pol.stall_pct, PRECOPY_STALL_PCT);
	assert_int_equal(p.pol.max_downtime_ms, PRECOPY_DOWNTIME_MS);
	assert_int_equal(p.pol.page_size, 4096);
	assert_int_equal(precopy_downtime_ms(&p, 1), UINT64_MAX);
	assert_int_equal(precopy_next(&p, &r, why, sizeof(why)),
	    PRECOPY_CONTINUE);
	assert_int_equal(p.bandwidth, 0);
	assert_non_null(strstr(why, "not measured"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_precopy_converges),
		cmocka_unit_test(test_precopy_stall_switches),
		cmocka_unit_test(test_precopy_max_rounds),
		cmocka_unit_test(test_precopy_manual),
		cmocka_unit_test(test_precopy_defaults),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
