/* test_sdnotify.c - unit tests of sdnotify.c (socket activation, notify
 * messages) and of log.c's journal prefixes, with real sockets and the real
 * libsystemd: the environment is set up the way systemd would. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/event.h>
#include <systemd/sd-daemon.h>

#include "log.h"
#include "sdnotify.h"

/* A listening (or not) AF_UNIX stream socket, or a datagram one. */
static int
make_socket(int type, bool listening)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, type, 0), moved;

	assert_true(fd >= 0);
	if (listening) {
		/* Abstract address: nothing to clean up. */
		static int seq;

		snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1,
		    "pcd-test-sdnotify-%d-%d", (int)getpid(), seq++);
		assert_int_equal(bind(fd, (struct sockaddr *)&sa,
		    sizeof(sa)), 0);
		assert_int_equal(listen(fd, 4), 0);
	}
	/* Out of the way of SD_LISTEN_FDS_START.., where pass_fds puts it. */
	moved = fcntl(fd, F_DUPFD, 100);
	assert_true(moved >= 100);
	close(fd);
	return moved;
}

/* Puts fds at SD_LISTEN_FDS_START.. and sets LISTEN_* as systemd does. */
static void
pass_fds(const int *fds, int n, const char *names)
{
	char buf[32];

	for (int i = 0; i < n; i++) {
		assert_true(dup2(fds[i], SD_LISTEN_FDS_START + i) >= 0);
		close(fds[i]);
	}
	snprintf(buf, sizeof(buf), "%d", (int)getpid());
	setenv("LISTEN_PID", buf, 1);
	snprintf(buf, sizeof(buf), "%d", n);
	setenv("LISTEN_FDS", buf, 1);
	if (names != NULL)
		setenv("LISTEN_FDNAMES", names, 1);
	else
		unsetenv("LISTEN_FDNAMES");
}

static bool
fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static void
test_listen_none(void **state)
{
	char err[256] = "";
	int fd = 42;

	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	assert_int_equal(sdnotify_listen_fd("control", &fd, err, sizeof(err)), 0);
	assert_int_equal(fd, -1);
}

static void
test_listen_single_unnamed(void **state)
{
	int s = make_socket(SOCK_STREAM, true);
	char err[256] = "";
	int fd;

	pass_fds(&s, 1, NULL);
	assert_int_equal(sdnotify_listen_fd("control", &fd, err, sizeof(err)), 0);
	assert_int_equal(fd, SD_LISTEN_FDS_START);
	/* The environment is consumed: children do not inherit it. */
	assert_null(getenv("LISTEN_FDS"));
	close(fd);
}

static void
test_listen_named(void **state)
{
	int s[2] = { make_socket(SOCK_STREAM, true),
		     make_socket(SOCK_STREAM, true) };
	char err[256] = "";
	int fd;

	pass_fds(s, 2, "vmm:control");
	assert_int_equal(sdnotify_listen_fd("control", &fd, err, sizeof(err)), 0);
	assert_int_equal(fd, SD_LISTEN_FDS_START + 1);
	/* The unused one is closed. */
	assert_false(fd_open(SD_LISTEN_FDS_START));
	close(fd);
}

/* The control and the VMM sockets, each by its name, in any order; a
 * socket named for neither is closed. */
static void
test_listen_two_named(void **state)
{
	static const char *const names[] = { "control", "vmm" };
	int s[3] = { make_socket(SOCK_STREAM, true),
		     make_socket(SOCK_STREAM, true),
		     make_socket(SOCK_STREAM, true) };
	char err[256] = "";
	int fds[2];

	pass_fds(s, 3, "vmm:other:control");
	assert_int_equal(sdnotify_listen_fds(names, fds, 2, err, sizeof(err)),
	    0);
	assert_int_equal(fds[0], SD_LISTEN_FDS_START + 2);
	assert_int_equal(fds[1], SD_LISTEN_FDS_START);
	assert_false(fd_open(SD_LISTEN_FDS_START + 1));
	close(fds[0]);
	close(fds[1]);

	/* Only the VMM socket's unit is enabled: the control socket is the
	 * daemon's to create (-1), not the VMM one passed alone. */
	s[0] = make_socket(SOCK_STREAM, true);
	pass_fds(s, 1, "vmm");
	assert_int_equal(sdnotify_listen_fds(names, fds, 2, err, sizeof(err)),
	    0);
	assert_int_equal(fds[0], -1);
	assert_int_equal(fds[1], SD_LISTEN_FDS_START);
	close(fds[1]);

	/* Neither name among several: refused, naming both, all closed. */
	s[0] = make_socket(SOCK_STREAM, true);
	s[1] = make_socket(SOCK_STREAM, true);
	pass_fds(s, 2, "a:b");
	assert_int_equal(sdnotify_listen_fds(names, fds, 2, err, sizeof(err)),
	    -ENOENT);
	assert_int_equal(fds[0], -1);
	assert_int_equal(fds[1], -1);
	assert_non_null(strstr(err, "none named 'control' or 'vmm'"));
	assert_false(fd_open(SD_LISTEN_FDS_START));
	assert_false(fd_open(SD_LISTEN_FDS_START + 1));
}

static void
test_listen_no_match(void **state)
{
	int s[2] = { make_socket(SOCK_STREAM, true),
		     make_socket(SOCK_STREAM, true) };
	char err[256] = "";
	int fd = 42;

	pass_fds(s, 2, "a:b");
	assert_int_equal(sdnotify_listen_fd("control", &fd, err, sizeof(err)),
	    -ENOENT);
	assert_int_equal(fd, -1);
	assert_non_null(strstr(err, "none named 'control'"));
	assert_false(fd_open(SD_LISTEN_FDS_START));
	assert_false(fd_open(SD_LISTEN_FDS_START + 1));
}

static void
test_listen_wrong_kind(void **state)
{
	int s = make_socket(SOCK_DGRAM, false);
	char err[256] = "";
	int fd = 42;

	pass_fds(&s, 1, "control");
	assert_true(sdnotify_listen_fd("control", &fd, err, sizeof(err)) < 0);
	assert_int_equal(fd, -1);
	assert_non_null(strstr(err, "not a listening AF_UNIX stream socket"));
	assert_false(fd_open(SD_LISTEN_FDS_START));

	/* Stream but not listening: refused as well. */
	s = make_socket(SOCK_STREAM, false);
	pass_fds(&s, 1, "control");
	assert_true(sdnotify_listen_fd("control", &fd, err, sizeof(err)) < 0);
	assert_int_equal(fd, -1);
}

static void
test_listen_bad_env(void **state)
{
	char err[256] = "";
	int fd = 42;

	setenv("LISTEN_PID", "not-a-pid", 1);
	setenv("LISTEN_FDS", "1", 1);
	assert_true(sdnotify_listen_fd("control", &fd, err, sizeof(err)) < 0);
	assert_int_equal(fd, -1);
	assert_non_null(strstr(err, "LISTEN_FDS"));
}

/* Reads one datagram from the notify socket, 2 s at most. */
static void
recv_notify(int fd, char *buf, size_t len)
{
	struct timeval tv = { .tv_sec = 2 };
	ssize_t n;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	n = recv(fd, buf, len - 1, 0);
	assert_true(n > 0);
	buf[n] = '\0';
}

static size_t
count_three(void *arg)
{
	return *(size_t *)arg;
}

static void
test_notify_messages(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct event_base *base = event_base_new();
	struct sdnotify *n = NULL;
	char path[64], err[256], buf[512];
	size_t count = 3;
	int fd;

	snprintf(path, sizeof(path), "/tmp/pcd-test-notify.%d", (int)getpid());
	unlink(path);
	fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setenv("NOTIFY_SOCKET", path, 1);
	unsetenv("WATCHDOG_USEC");

	assert_int_equal(sdnotify_new(base, &n, err, sizeof(err)), 0);
	assert_int_equal(sdnotify_watchdog_usec(n), 0);
	sdnotify_set_counter(n, count_three, &count);
	sdnotify_ready(n);
	recv_notify(fd, buf, sizeof(buf));
	assert_string_equal(buf, "READY=1\nSTATUS=3 active migrations");

	count = 1;
	sdnotify_status(n, "line one\nline two %d", 2);
	recv_notify(fd, buf, sizeof(buf));
	/* One STATUS= assignment: a newline would have started another. */
	assert_string_equal(buf, "STATUS=line one line two 2");

	sdnotify_reloading(n);
	recv_notify(fd, buf, sizeof(buf));
	assert_true(strncmp(buf, "RELOADING=1\nMONOTONIC_USEC=", 27) == 0);

	sdnotify_stopping(n);
	recv_notify(fd, buf, sizeof(buf));
	assert_string_equal(buf, "STOPPING=1\nSTATUS=stopping");

	sdnotify_free(n);
	event_base_free(base);
	unsetenv("NOTIFY_SOCKET");
	close(fd);
	unlink(path);
}

static void
test_watchdog_other_pid(void **state)
{
	struct event_base *base = event_base_new();
	struct sdnotify *n = NULL;
	char err[256];

	/* WATCHDOG_PID names another process: no watchdog for us. */
	setenv("NOTIFY_SOCKET", "/tmp/pcd-test-notify.none", 1);
	setenv("WATCHDOG_USEC", "1000000", 1);
	setenv("WATCHDOG_PID", "1", 1);
	assert_int_equal(sdnotify_new(base, &n, err, sizeof(err)), 0);
	assert_int_equal(sdnotify_watchdog_usec(n), 0);
	sdnotify_free(n);

	setenv("WATCHDOG_USEC", "junk", 1);
	unsetenv("WATCHDOG_PID");
	assert_true(sdnotify_new(base, &n, err, sizeof(err)) < 0);
	assert_null(n);
	assert_non_null(strstr(err, "WATCHDOG_USEC"));

	unsetenv("WATCHDOG_USEC");
	unsetenv("NOTIFY_SOCKET");
	sdnotify_free(NULL);
	event_base_free(base);
}

/* Captures what log.c writes to stderr for one call. */
static void
capture(void (*emit)(void), char *buf, size_t len)
{
	int p[2], saved = dup(STDERR_FILENO);
	ssize_t n;

	assert_int_equal(pipe(p), 0);
	dup2(p[1], STDERR_FILENO);
	close(p[1]);
	emit();
	dup2(saved, STDERR_FILENO);
	close(saved);
	n = read(p[0], buf, len - 1);
	close(p[0]);
	assert_true(n > 0);
	buf[n] = '\0';
}

static void emit_notice(void) { log_notice("started %d", 1); }
static void emit_warnx(void) { log_warnx("careful"); }
static void emit_warn(void) { errno = ENOENT; log_warn("open %s", "x"); }
static void emit_debug(void) { log_debug("details"); }

static void
test_log_journal_prefix(void **state)
{
	char buf[256];

	setenv("JOURNAL_STREAM", "8:12345", 1);
	log_init("postcopyd", LOG_LVL_DEBUG);
	assert_true(log_journal());
	capture(emit_notice, buf, sizeof(buf));
	assert_string_equal(buf, "<5>started 1\n");
	capture(emit_warnx, buf, sizeof(buf));
	assert_string_equal(buf, "<4>careful\n");
	capture(emit_warn, buf, sizeof(buf));
	assert_string_equal(buf, "<4>open x: No such file or directory\n");
	capture(emit_debug, buf, sizeof(buf));
	assert_string_equal(buf, "<7>details\n");

	unsetenv("JOURNAL_STREAM");
	log_init("postcopyd", LOG_LVL_INFO);
	assert_false(log_journal());
	capture(emit_notice, buf, sizeof(buf));
	assert_string_equal(buf, "postcopyd: started 1\n");
	capture(emit_warn, buf, sizeof(buf));
	assert_string_equal(buf, "postcopyd: open x: No such file or directory\n");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_listen_none),
		cmocka_unit_test(test_listen_single_unnamed),
		cmocka_unit_test(test_listen_named),
		cmocka_unit_test(test_listen_two_named),
		cmocka_unit_test(test_listen_no_match),
		cmocka_unit_test(test_listen_wrong_kind),
		cmocka_unit_test(test_listen_bad_env),
		cmocka_unit_test(test_notify_messages),
		cmocka_unit_test(test_watchdog_other_pid),
		cmocka_unit_test(test_log_journal_prefix),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
