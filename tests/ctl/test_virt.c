/* test_virt - libvirt domain control against libvirt's built-in test
 * driver (test:///default, domain "test"): a real libvirt connection.
 * The test driver's default state is shared by the connections of one
 * process while one stays open, so this test holds its own connection and
 * reads back what virt.c did through it.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "virt.h"

#define URI	"test:///default"

static virConnectPtr conn;

static void
quiet(void *arg, virErrorPtr e)
{
}

static int
dom_state(const char *name)
{
	virDomainPtr d = virDomainLookupByName(conn, name);
	int st = -1, reason;

	assert_non_null(d);
	assert_int_equal(virDomainGetState(d, &st, &reason, 0), 0);
	virDomainFree(d);
	return st;
}

static int
setup(void **state)
{
	virSetErrorFunc(NULL, quiet);
	conn = virConnectOpen(URI);
	return conn == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	virConnectClose(conn);
	return 0;
}

static void
test_do_suspend_resume(void **state)
{
	char st[32], err[512];

	assert_int_equal(dom_state("test"), VIR_DOMAIN_RUNNING);
	assert_int_equal(virt_do(URI, "test", VIRT_SUSPEND, st, sizeof(st),
	    err, sizeof(err)), 0);
	assert_string_equal(st, "paused");
	assert_int_equal(dom_state("test"), VIR_DOMAIN_PAUSED);
	/* Suspending a paused domain is not an error (idempotent). */
	assert_int_equal(virt_do(URI, "test", VIRT_SUSPEND, st, sizeof(st),
	    err, sizeof(err)), 0);
	assert_int_equal(virt_do(URI, "test", VIRT_RESUME, st, sizeof(st),
	    err, sizeof(err)), 0);
	assert_string_equal(st, "running");
	assert_int_equal(dom_state("test"), VIR_DOMAIN_RUNNING);
}

static void
test_do_errors(void **state)
{
	char st[32], err[512];

	assert_int_equal(virt_do(URI, "no-such-domain", VIRT_CHECK, st,
	    sizeof(st), err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "no-such-domain"));
	assert_true(virt_do("bogus:///nothing", "test", VIRT_CHECK, st,
	    sizeof(st), err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "bogus:///nothing"));
}

static void
run_until_idle(struct event_base *base, struct virt *v)
{
	for (int i = 0; i < 500 && virt_pending(v) > 0; i++) {
		struct timeval tv = { 0, 10000 };

		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
	assert_int_equal(virt_pending(v), 0);
}

/* Through the worker thread, driven by migration states. */
static void
test_worker_switchover(void **state)
{
	struct event_base *base = event_base_new();
	struct virt *v = NULL;
	const char *dom, *st, *err;

	assert_non_null(base);
	assert_int_equal(virt_new(base, &v), 0);

	assert_int_equal(virt_track(v, "m-src", MIG_ROLE_SOURCE, URI, "test"), 0);
	run_until_idle(base, v);
	assert_true(virt_get(v, "m-src", &dom, &st, &err));
	assert_string_equal(dom, "test");
	assert_string_equal(st, "running");
	assert_string_equal(err, "");

	/* Precopy: nothing happens; postcopy: the source suspends. */
	virt_on_state(v, "m-src", MIG_STATE_PRECOPY);
	assert_int_equal(virt_pending(v), 0);
	virt_on_state(v, "m-src", MIG_STATE_POSTCOPY);
	run_until_idle(base, v);
	assert_true(virt_get(v, "m-src", &dom, &st, &err));
	assert_string_equal(st, "paused");
	assert_int_equal(dom_state("test"), VIR_DOMAIN_PAUSED);

	/* The destination resumes when the guest may run; once only. */
	assert_int_equal(virt_track(v, "m-dst", MIG_ROLE_DEST, URI, "test"), 0);
	run_until_idle(base, v);
	virt_on_state(v, "m-dst", MIG_STATE_POSTCOPY);
	run_until_idle(base, v);
	assert_true(virt_get(v, "m-dst", &dom, &st, &err));
	assert_string_equal(st, "running");
	assert_int_equal(dom_state("test"), VIR_DOMAIN_RUNNING);
	virt_on_state(v, "m-dst", MIG_STATE_COMPLETED);
	assert_int_equal(virt_pending(v), 0);

	/* A domain that does not exist: the error is kept for Status. */
	assert_int_equal(virt_track(v, "m-bad", MIG_ROLE_SOURCE, URI, "nope"), 0);
	run_until_idle(base, v);
	assert_true(virt_get(v, "m-bad", &dom, &st, &err));
	assert_non_null(strstr(err, "nope"));
	assert_false(virt_get(v, "m-unknown", &dom, &st, &err));

	virt_free(v);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_do_suspend_resume),
		cmocka_unit_test(test_do_errors),
		cmocka_unit_test(test_worker_switchover),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
