/* test_status - the one status enum (daemon/status.h) and its errno map:
 * the numbers of proto/common.proto (gRPC's), every name, and the
 * mapping of each errno the daemon produces, including the two the
 * control RPC and the VMM endpoint used to map differently (EPERM,
 * EAGAIN).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common.pb-c.h"
#include "status.h"

/* gRPC's numbering, which proto/common.proto promises. */
static void
test_status_numbers(void **state)
{
	assert_int_equal(STATUS_OK, 0);
	assert_int_equal(STATUS_CANCELLED, 1);
	assert_int_equal(STATUS_UNKNOWN, 2);
	assert_int_equal(STATUS_INVALID_ARGUMENT, 3);
	assert_int_equal(STATUS_DEADLINE_EXCEEDED, 4);
	assert_int_equal(STATUS_NOT_FOUND, 5);
	assert_int_equal(STATUS_ALREADY_EXISTS, 6);
	assert_int_equal(STATUS_PERMISSION_DENIED, 7);
	assert_int_equal(STATUS_RESOURCE_EXHAUSTED, 8);
	assert_int_equal(STATUS_FAILED_PRECONDITION, 9);
	assert_int_equal(STATUS_ABORTED, 10);
	assert_int_equal(STATUS_OUT_OF_RANGE, 11);
	assert_int_equal(STATUS_UNIMPLEMENTED, 12);
	assert_int_equal(STATUS_INTERNAL, 13);
	assert_int_equal(STATUS_UNAVAILABLE, 14);
}

static void
test_status_names(void **state)
{
	static const char *const names[] = { "OK", "CANCELLED", "UNKNOWN",
	    "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
	    "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
	    "INTERNAL", "UNAVAILABLE" };

	for (uint32_t c = 0; c <= STATUS_UNAVAILABLE; c++)
		assert_string_equal(status_name(c), names[c]);
	assert_string_equal(status_name(STATUS_UNAVAILABLE + 1),
	    "UNKNOWN_CODE");
	assert_string_equal(status_name(UINT32_MAX), "UNKNOWN_CODE");
}

static void
test_status_from_errno(void **state)
{
	static const struct { int err; uint32_t code; } map[] = {
		{ 0, STATUS_OK },
		{ EINVAL, STATUS_INVALID_ARGUMENT },
		{ ENAMETOOLONG, STATUS_INVALID_ARGUMENT },
		{ EDOM, STATUS_INVALID_ARGUMENT },
		{ ENOENT, STATUS_NOT_FOUND },
		{ ESRCH, STATUS_NOT_FOUND },
		{ EEXIST, STATUS_ALREADY_EXISTS },
		/* The kernel refused: a userfaultfd without the capability,
		 * a file the daemon may not open. */
		{ EPERM, STATUS_PERMISSION_DENIED },
		{ EACCES, STATUS_PERMISSION_DENIED },
		/* pthread_create at the thread limit: like ENOMEM. */
		{ EAGAIN, STATUS_RESOURCE_EXHAUSTED },
		{ ENOMEM, STATUS_RESOURCE_EXHAUSTED },
		{ ENOSPC, STATUS_RESOURCE_EXHAUSTED },
		{ EMFILE, STATUS_RESOURCE_EXHAUSTED },
		{ ENFILE, STATUS_RESOURCE_EXHAUSTED },
		{ EUSERS, STATUS_RESOURCE_EXHAUSTED },
		{ EBUSY, STATUS_FAILED_PRECONDITION },
		{ EALREADY, STATUS_FAILED_PRECONDITION },
		{ EINPROGRESS, STATUS_FAILED_PRECONDITION },
		{ EISCONN, STATUS_FAILED_PRECONDITION },
		{ ESTALE, STATUS_FAILED_PRECONDITION },
		{ ECANCELED, STATUS_CANCELLED },
		{ ERANGE, STATUS_OUT_OF_RANGE },
		{ EOVERFLOW, STATUS_OUT_OF_RANGE },
		{ ENOSYS, STATUS_UNIMPLEMENTED },
		{ EOPNOTSUPP, STATUS_UNIMPLEMENTED },
		{ ECONNREFUSED, STATUS_UNAVAILABLE },
		{ ECONNRESET, STATUS_UNAVAILABLE },
		{ EHOSTUNREACH, STATUS_UNAVAILABLE },
		{ ENETUNREACH, STATUS_UNAVAILABLE },
		{ ESHUTDOWN, STATUS_UNAVAILABLE },
		{ ETIMEDOUT, STATUS_UNAVAILABLE },
		{ EIO, STATUS_INTERNAL },
		{ EPROTO, STATUS_INTERNAL },
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		/* Either sign: -errno returns and errno values alike. */
		assert_int_equal(status_from_errno(-map[i].err), map[i].code);
		assert_int_equal(status_from_errno(map[i].err), map[i].code);
	}
}

/* A code travels in pcd.Status.code unchanged. */
static void
test_status_in_message(void **state)
{
	Pcd__Status st = PCD__STATUS__INIT, *back;
	uint8_t buf[64];
	size_t n;

	st.code = status_from_errno(-EPERM);
	st.message = (char *)"no CAP_SYS_PTRACE";
	n = pcd__status__pack(&st, buf);
	back = pcd__status__unpack(NULL, n, buf);
	assert_non_null(back);
	assert_int_equal(back->code, STATUS_PERMISSION_DENIED);
	assert_string_equal(status_name(back->code), "PERMISSION_DENIED");
	pcd__status__free_unpacked(back, NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status_numbers),
		cmocka_unit_test(test_status_names),
		cmocka_unit_test(test_status_from_errno),
		cmocka_unit_test(test_status_in_message),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
