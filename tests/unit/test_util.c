/* test_util.c - unit tests of util.c and log.c's parsers. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>
#include <cmocka.h>

#include "log.h"
#include "util.h"

static void
test_parse_size(void **state)
{
	uint64_t v;

	assert_int_equal(parse_size("4096", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(parse_size("64K", &v), 0);
	assert_int_equal(v, 65536);
	assert_int_equal(parse_size("1G", &v), 0);
	assert_int_equal(v, 1ull << 30);
	assert_int_equal(parse_size("1.5GiB", &v), 0);
	assert_int_equal(v, 3ull << 29);
	assert_int_equal(parse_size("64m", &v), 0);
	assert_int_equal(v, 64ull << 20);
	assert_int_equal(parse_size("", &v), -EINVAL);
	assert_int_equal(parse_size("-1", &v), -EINVAL);
	assert_int_equal(parse_size("12X", &v), -EINVAL);
	assert_int_equal(parse_size("1G junk", &v), -EINVAL);
	assert_int_equal(parse_size("100000000T", &v), -ERANGE);
}

static void
test_parse_hostport(void **state)
{
	char host[64];
	uint16_t port;

	assert_int_equal(parse_hostport("127.0.0.1:4444", host, sizeof(host), &port), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 4444);
	assert_int_equal(parse_hostport("[::1]:0", host, sizeof(host), &port), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 0);
	assert_int_equal(parse_hostport("localhost", host, sizeof(host), &port), -EINVAL);
	assert_int_equal(parse_hostport(":80", host, sizeof(host), &port), -EINVAL);
	assert_int_equal(parse_hostport("a:65536", host, sizeof(host), &port), -EINVAL);
	assert_int_equal(parse_hostport("::1:80", host, sizeof(host), &port), -EINVAL);
	assert_int_equal(parse_hostport("a:80x", host, sizeof(host), &port), -EINVAL);
}

static void
test_str_copy(void **state)
{
	char buf[4];

	assert_int_equal(str_copy(buf, "abc", sizeof(buf)), 0);
	assert_string_equal(buf, "abc");
	assert_int_equal(str_copy(buf, "abcd", sizeof(buf)), -ENAMETOOLONG);
	assert_string_equal(buf, "abc");
}

static void
test_log_level_parse(void **state)
{
	assert_int_equal(log_level_parse("debug"), LOG_LVL_DEBUG);
	assert_int_equal(log_level_parse("WARNING"), LOG_LVL_WARNING);
	assert_int_equal(log_level_parse("loud"), -1);
}

static void
test_utf8(void **state)
{
	char q[16], s[16];

	assert_true(utf8_valid((const uint8_t *)"a\xc3\xa9\xe2\x82\xac", 6));
	assert_false(utf8_valid((const uint8_t *)"\xff", 1));
	assert_false(utf8_valid((const uint8_t *)"\xc3", 1));	/* cut */
	assert_false(utf8_valid((const uint8_t *)"\xc0\x80", 2));	/* overlong */
	assert_false(utf8_valid((const uint8_t *)"\xed\xa0\x80", 3));	/* surrogate */
	assert_false(utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4));
	assert_string_equal(str_quote(q, sizeof(q), "a\xff\x01" "b"),
	    "a\\xff\\x01b");
	assert_string_equal(str_quote(q, sizeof(q), "0123456789abcdefgh"),
	    "0123456789ab...");
	assert_string_equal(str_quote(q, 6, "\xff\xff"), "...");
	str_copy(s, "x\xc3\xa9\xe2\x82y\xff", sizeof(s));
	assert_string_equal(utf8_sanitize(s), "x\xc3\xa9??y?");
}

/* Two threads on one CPU, each busy for 100 ms of wall time: each waits
 * on the runqueue while the other runs, and thread_run_delay_ns() counts
 * it (pagestate_wake_mark() takes such waits out of fault latencies). */
struct busy {
	uint64_t	delay_ns;
	bool		pinned;
};

static void *
busy_main(void *arg)
{
	struct busy *b = arg;
	cpu_set_t one;
	uint64_t d0, end;

	CPU_ZERO(&one);
	CPU_SET(0, &one);
	b->pinned = sched_setaffinity(0, sizeof(one), &one) == 0;
	d0 = thread_run_delay_ns();
	for (end = now_ns() + 100000000ull; now_ns() < end; )
		;
	b->delay_ns = thread_run_delay_ns() - d0;
	return NULL;
}

static void
test_thread_run_delay(void **state)
{
	struct busy b[2] = { { 0, false }, { 0, false } };
	pthread_t t[2];

	if (access("/proc/thread-self/schedstat", R_OK) != 0) {
		print_message("SKIP: no /proc/thread-self/schedstat here\n");
		skip();
	}
	for (int k = 0; k < 2; k++)
		assert_int_equal(pthread_create(&t[k], NULL, busy_main, &b[k]), 0);
	for (int k = 0; k < 2; k++)
		pthread_join(t[k], NULL);
	if (!b[0].pinned || !b[1].pinned) {
		print_message("SKIP: cannot pin two threads to CPU 0\n");
		skip();
	}
	/* Together they waited about 100 ms of the 200 they were busy. */
	assert_true(b[0].delay_ns + b[1].delay_ns > 20000000ull);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_parse_hostport),
		cmocka_unit_test(test_str_copy),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_log_level_parse),
		cmocka_unit_test(test_thread_run_delay),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
