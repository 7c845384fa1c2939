/* test_spin.c - the demand path's bounded spin (spin.c): it finds a
 * descriptor that becomes ready while it polls, gives up after its
 * budget, never runs past SPIN_US_MAX whatever it is asked, and is off
 * (returns at once) when the budget is 0 or the machine is busy. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "spin.h"
#include "util.h"

/* Whether spin_allowed() agrees with the load average and the CPU count
 * read here (the verdict may be up to 1 s old: read it twice around). */
static void
test_allowed(void **state)
{
	double load[1];
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	bool a = spin_allowed();

	(void)state;
	assert_int_equal(getloadavg(load, 1), 1);
	print_message("load %.2f, %ld CPUs: spinning %s\n", load[0], cpus,
	    a ? "allowed" : "off (busy)");
	/* Far from the boundary the verdict cannot differ. */
	if (load[0] > (double)cpus * 1.5)
		assert_false(a);
	if (load[0] < (double)cpus * 0.5)
		assert_true(a);
}

static void
test_off(void **state)
{
	int sv[2];
	uint64_t t0;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(write(sv[1], "x", 1), 1);
	/* Budget 0: off, even with data waiting. */
	assert_false(spin_fd(sv[0], POLLIN, 0));
	/* Ready at once: found (when spinning is allowed at all). */
	assert_int_equal(spin_fd(sv[0], POLLIN, 100), spin_allowed());
	/* Nothing comes: gives up; asked for 5 s, bounded by SPIN_US_MAX. */
	t0 = now_ns();
	assert_false(spin_fd(sv[1], POLLIN, 5000000));
	assert_true(now_ns() - t0 < 1000000000ull);
	close(sv[0]);
	close(sv[1]);
}

struct late {
	int		 fd;
	unsigned	 us;
};

static void *
late_write(void *arg)
{
	struct late *l = arg;

	usleep(l->us);
	assert_int_equal(write(l->fd, "y", 1), 1);
	return NULL;
}

/* Data that arrives while it spins is found (only checkable when the
 * machine lets it spin and the writer runs within the budget: retried). */
static void
test_late(void **state)
{
	int sv[2], found = 0;

	(void)state;
	if (!spin_allowed()) {
		print_message("skipped: load average above the CPU count\n");
		return;
	}
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	for (int i = 0; i < 20 && !found; i++) {
		struct late l = { sv[1], 100 };
		pthread_t t;
		char c;

		assert_int_equal(pthread_create(&t, NULL, late_write, &l), 0);
		found = spin_fd(sv[0], POLLIN, SPIN_US_MAX);
		pthread_join(t, NULL);
		assert_int_equal(read(sv[0], &c, 1), 1);
	}
	assert_true(found);
	close(sv[0]);
	close(sv[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_allowed),
		cmocka_unit_test(test_off),
		cmocka_unit_test(test_late),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
