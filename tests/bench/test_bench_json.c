/* test_bench_json.c - the benchmark's JSON reader finds values by path in
 * what postcopy-guest and the report print, and treats malformed or
 * truncated text as "not found" without reading past its end. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "bench.h"

static const char *summary =
    "{\"role\":\"dest\",\"id\":\"bench\",\"local\":false,\"mode\":\"minor\","
    "\"pages_total\":16384,\"pages_verified\":16384,\"mismatched\":0,"
    "\"note\":\"a \\\"quoted\\\" {brace} [x]\",\"wall_s\":0.25,"
    "\"first_touch_us\":{\"p50\":12.5,\"p99\":300.0,\"max\":1e3},"
    "\"kvm\":null,\"runs\":[{\"mode\":\"minor\"},{\"mode\":\"copy\","
    "\"pages\":{\"verified\":7}}]}";

static void
test_find(void **state)
{
	uint64_t u;
	double d;

	(void)state;
	assert_int_equal(bench_json_u64(summary, "pages_verified", &u), 0);
	assert_int_equal(u, 16384);
	assert_int_equal(bench_json_u64(summary, "mismatched", &u), 0);
	assert_int_equal(u, 0);
	assert_int_equal(bench_json_num(summary, "wall_s", &d), 0);
	assert_true(fabs(d - 0.25) < 1e-12);
	assert_int_equal(bench_json_num(summary, "first_touch_us.p99", &d), 0);
	assert_true(fabs(d - 300.0) < 1e-12);
	assert_int_equal(bench_json_num(summary, "first_touch_us.max", &d), 0);
	assert_true(fabs(d - 1000.0) < 1e-12);
	assert_int_equal(bench_json_u64(summary, "runs.1.pages.verified", &u), 0);
	assert_int_equal(u, 7);
	assert_int_equal(bench_json_num(summary, "local", &d), 0);
	assert_true(d == 0);
	/* A key inside a string is not a key. */
	assert_null(bench_json_find(summary, "brace"));
	assert_int_equal(bench_json_u64(summary, "nope", &u), -ENOENT);
	assert_int_equal(bench_json_u64(summary, "runs.2.mode", &u), -ENOENT);
	assert_int_equal(bench_json_u64(summary, "mode", &u), -EINVAL);
	assert_int_equal(bench_json_u64(summary, "kvm", &u), -EINVAL);
}

static void
test_malformed(void **state)
{
	static const char *bad[] = {
		"", "{", "{\"a\"", "{\"a\":", "{\"a\":\"x",
		"{\"b\":[1,2", "{\"b\":{\"c\":", "[", "\"x\"", "{\"b\":1,,\"a\":1}",
		"{\"b\":\"\\", "{\"b\" 1,\"a\":2}",
	};
	uint64_t u;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		/* Copied to the heap at its exact length so ASan sees any
		 * read past the terminating NUL. */
		size_t len = strlen(bad[i]) + 1;
		char *p = malloc(len);

		assert_non_null(p);
		memcpy(p, bad[i], len);
		if (bench_json_u64(p, "a", &u) == 0)
			fail_msg("found \"a\" in malformed '%s'", bad[i]);
		free(p);
	}
	/* The reader does not validate what follows the value it wants: a
	 * document cut after it still yields it (the guest's exit status
	 * says whether its summary is complete). */
	assert_int_equal(bench_json_u64("{\"a\":1", "a", &u), 0);
	assert_int_equal(u, 1);
	/* Deep nesting is refused, not recursed into without end. */
	char deep[400];
	memset(deep, '[', sizeof(deep) - 1);
	deep[sizeof(deep) - 1] = '\0';
	char *doc = malloc(sizeof(deep) + 32);
	assert_non_null(doc);
	strcpy(doc, "{\"x\":");
	strcat(doc, deep);
	assert_null(bench_json_find(doc, "y"));
	free(doc);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_find),
		cmocka_unit_test(test_malformed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
