/* sdtest.c - black-box tests of postcopyd as a systemd service, without a
 * running systemd: this program plays systemd's part. It listens on a
 * NOTIFY_SOCKET datagram socket, starts the real daemon (directly or through
 * systemd-socket-activate), and checks what arrives there, what the daemon
 * writes to stderr and how it exits.
 *
 *   sdtest notify POSTCOPYD [POSTCOPYCTL GENCERTS]
 *                                    READY=1 once the control socket
 *                                    listens, STATUS= counting migrations,
 *                                    WATCHDOG=1, SIGHUP reloads (RELOADING=1
 *                                    then READY=1, good and bad config),
 *                                    SIGTERM (STOPPING=1, a migration that
 *                                    has not switched over is cancelled,
 *                                    exit 0), <N> log prefixes
 *   sdtest plain POSTCOPYD           no NOTIFY_SOCKET/JOURNAL_STREAM: plain
 *                                    log lines, no notify traffic, exit 0
 *   sdtest activate SOCKET_ACTIVATE POSTCOPYD [POSTCOPYCTL]
 *                                    socket activation of the control and
 *                                    the VMM sockets (both kept)
 *   sdtest nouffd POSTCOPYD          without access to /dev/userfaultfd the
 *                                    daemon refuses to start and says why
 *
 * Exit 0 = pass, 1 = fail, 77 = cannot run here (says why).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SKIP	77

struct harness {
	char	 dir[64];		/* private temp directory */
	char	 notify_path[96];
	char	 control_path[96];
	char	 vmm_path[96];
	char	 conf_path[96];
	char	 tls_dir[96];
	int	 notify_fd;
	pid_t	 pid;
	int	 err_fd;		/* read end of the daemon's stderr */
	char	 errbuf[65536];		/* everything read from it */
	size_t	 errlen;
	char	 msgs[16384];		/* every notify message, for reports */
	size_t	 msglen;
	/* Received but not yet looked at: the socket is drained while tools
	 * run, as systemd would (a full queue blocks the sender). */
	char	 q[512][512];
	size_t	 qhead, qtail;
};

static struct harness h = { .notify_fd = -1, .pid = -1, .err_fd = -1 };

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
cleanup(void)
{
	if (h.pid > 0) {
		kill(h.pid, SIGKILL);
		waitpid(h.pid, NULL, 0);
		h.pid = -1;
	}
	if (h.dir[0] != '\0') {
		unlink(h.notify_path);
		unlink(h.control_path);
		unlink(h.vmm_path);
		unlink(h.conf_path);
		if (h.tls_dir[0] != '\0') {
			char cmd[160];

			snprintf(cmd, sizeof(cmd), "rm -rf '%s'", h.tls_dir);
			if (system(cmd) != 0)
				fprintf(stderr, "sdtest: cannot remove %s\n",
				    h.tls_dir);
		}
		rmdir(h.dir);
	}
}

static void
drain_stderr(int timeout_ms)
{
	struct pollfd p = { .fd = h.err_fd, .events = POLLIN };
	ssize_t n;

	while (h.err_fd >= 0 && poll(&p, 1, timeout_ms) > 0) {
		if (h.errlen >= sizeof(h.errbuf) - 1)
			break;
		n = read(h.err_fd, h.errbuf + h.errlen,
		    sizeof(h.errbuf) - 1 - h.errlen);
		if (n <= 0) {
			close(h.err_fd);
			h.err_fd = -1;
			break;
		}
		h.errlen += (size_t)n;
		h.errbuf[h.errlen] = '\0';
		timeout_ms = 0;
	}
}

static _Noreturn void fail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static _Noreturn void
fail(const char *fmt, ...)
{
	va_list ap;

	drain_stderr(200);
	fprintf(stderr, "FAIL: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n--- notify messages received ---\n%s"
	    "--- daemon stderr ---\n%s---\n", h.msgs, h.errbuf);
	cleanup();
	exit(1);
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
		fail("cannot write %s: %s", path, strerror(errno));
}

static void
setup(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	snprintf(h.dir, sizeof(h.dir), "/tmp/pcd-sdtest.XXXXXX");
	if (mkdtemp(h.dir) == NULL) {
		h.dir[0] = '\0';
		fail("mkdtemp: %s", strerror(errno));
	}
	snprintf(h.notify_path, sizeof(h.notify_path), "%s/notify", h.dir);
	snprintf(h.control_path, sizeof(h.control_path), "%s/control.sock",
	    h.dir);
	snprintf(h.vmm_path, sizeof(h.vmm_path), "%s/vmm.sock", h.dir);
	snprintf(h.conf_path, sizeof(h.conf_path), "%s/postcopyd.conf", h.dir);
	write_file(h.conf_path, "# sdtest\n");

	h.notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (h.notify_fd < 0)
		fail("socket(AF_UNIX, SOCK_DGRAM): %s", strerror(errno));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", h.notify_path);
	if (bind(h.notify_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		fail("bind %s: %s", h.notify_path, strerror(errno));
}

/* Starts argv with env (NAME=VALUE strings, NULL-terminated) added to ours;
 * "WATCHDOG_PID=self" becomes the child's own pid. */
static void
spawn(char *const argv[], const char *const env[], bool as_nobody)
{
	int pfd[2];

	if (pipe2(pfd, O_CLOEXEC) < 0)
		fail("pipe: %s", strerror(errno));
	if ((h.pid = fork()) < 0)
		fail("fork: %s", strerror(errno));
	if (h.pid == 0) {
		char pidbuf[32];

		dup2(pfd[1], STDERR_FILENO);
		unsetenv("NOTIFY_SOCKET");
		unsetenv("JOURNAL_STREAM");
		unsetenv("WATCHDOG_USEC");
		unsetenv("WATCHDOG_PID");
		for (size_t i = 0; env != NULL && env[i] != NULL; i++) {
			if (strcmp(env[i], "WATCHDOG_PID=self") == 0) {
				snprintf(pidbuf, sizeof(pidbuf), "%d",
				    (int)getpid());
				setenv("WATCHDOG_PID", pidbuf, 1);
			} else
				putenv((char *)env[i]);
		}
		if (as_nobody) {
			gid_t g = 65534;

			if (setgroups(1, &g) < 0 || setresgid(g, g, g) < 0 ||
			    setresuid(65534, 65534, 65534) < 0) {
				perror("sdtest: cannot become nobody");
				_exit(126);
			}
		}
		execv(argv[0], argv);
		fprintf(stderr, "sdtest: exec %s: %s\n", argv[0],
		    strerror(errno));
		_exit(127);
	}
	close(pfd[1]);
	h.err_fd = pfd[0];
}

/* Moves every datagram waiting on the notify socket to the queue. */
static void
collect(void)
{
	char buf[512];
	ssize_t n;

	while ((n = recv(h.notify_fd, buf, sizeof(buf) - 1, MSG_DONTWAIT)) >= 0) {
		buf[n] = '\0';
		if (h.qtail - h.qhead >= sizeof(h.q) / sizeof(h.q[0]))
			fail("more than %zu notify messages not looked at",
			    sizeof(h.q) / sizeof(h.q[0]));
		memcpy(h.q[h.qtail++ % (sizeof(h.q) / sizeof(h.q[0]))], buf,
		    (size_t)n + 1);
		if (h.msglen + (size_t)n + 2 < sizeof(h.msgs)) {
			memcpy(h.msgs + h.msglen, buf, (size_t)n);
			h.msglen += (size_t)n;
			h.msgs[h.msglen++] = '\n';
			h.msgs[h.msglen++] = '\n';
			h.msgs[h.msglen] = '\0';
		}
	}
	if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		fail("recv on the notify socket: %s", strerror(errno));
}

/* Waits for the next notify message; 0 and the text in buf, or -1 on
 * timeout. */
static int
recv_msg(char *buf, size_t len, int timeout_ms)
{
	struct pollfd p[2] = {
		{ .fd = h.notify_fd, .events = POLLIN },
		{ .fd = h.err_fd, .events = POLLIN },
	};
	uint64_t end = now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		uint64_t now = now_ms();

		collect();
		if (h.qhead != h.qtail)
			break;
		if (now >= end)
			return -1;
		p[1].fd = h.err_fd;
		if (poll(p, 2, (int)(end - now)) < 0 && errno != EINTR)
			fail("poll: %s", strerror(errno));
		if (p[1].revents != 0)
			drain_stderr(0);
	}
	snprintf(buf, len, "%s",
	    h.q[h.qhead++ % (sizeof(h.q) / sizeof(h.q[0]))]);
	return 0;
}

/* Does the message carry the assignment `line` (e.g. "READY=1") or, when
 * line ends in '=', any assignment of that variable? */
static bool
has_line(const char *msg, const char *line)
{
	size_t len = strlen(line);
	const char *p = msg;

	while (p != NULL && *p != '\0') {
		if (strncmp(p, line, len) == 0 &&
		    (line[len - 1] == '=' || p[len] == '\n' || p[len] == '\0'))
			return true;
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return false;
}

/* Waits for a message carrying `line`, skipping WATCHDOG=1 pings and status
 * updates; copies it to out (may be NULL). */
static void
expect(const char *line, int timeout_ms, char *out, size_t outlen)
{
	char buf[4096];
	uint64_t end = now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		uint64_t now = now_ms();

		if (now >= end || recv_msg(buf, sizeof(buf),
		    (int)(end - now)) < 0)
			fail("no %s within %d ms", line, timeout_ms);
		if (has_line(buf, line))
			break;
		if (has_line(buf, "WATCHDOG=1") || (has_line(buf, "STATUS=") &&
		    !has_line(buf, "READY=1") && !has_line(buf, "RELOADING=1") &&
		    !has_line(buf, "STOPPING=1")))
			continue;
		fail("expected %s, got \"%s\"", line, buf);
	}
	if (out != NULL)
		snprintf(out, outlen, "%s", buf);
}

static int
wait_exit(int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;
	int status;
	pid_t r;

	while ((r = waitpid(h.pid, &status, WNOHANG)) == 0) {
		if (now_ms() >= end)
			fail("pid %d did not exit within %d ms",
			    (int)h.pid, timeout_ms);
		collect();
		drain_stderr(20);
	}
	if (r < 0)
		fail("waitpid: %s", strerror(errno));
	h.pid = -1;
	drain_stderr(100);
	return status;
}

static void
expect_exit0(int timeout_ms)
{
	int status = wait_exit(timeout_ms);

	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail("daemon ended with %s %d, want exit 0",
		    WIFEXITED(status) ? "exit" : "signal",
		    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}

/* Every stderr line must start with "<N>" (journal) or "postcopyd: ". */
static void
check_log_lines(bool journal)
{
	size_t lines = 0;
	bool notice = false;

	for (char *p = h.errbuf; *p != '\0'; ) {
		char *nl = strchr(p, '\n');
		size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);

		if (len > 0) {
			lines++;
			if (journal) {
				if (len < 4 || p[0] != '<' || p[1] < '0' ||
				    p[1] > '7' || p[2] != '>')
					fail("log line without a <N> "
					    "priority prefix: %.*s", (int)len, p);
				notice |= p[1] == '5';
			} else if (strncmp(p, "postcopyd: ", 11) != 0)
				fail("plain log line expected, got: %.*s",
				    (int)len, p);
		}
		p += len + (nl != NULL);
	}
	if (lines == 0)
		fail("the daemon logged nothing");
	if (journal && !notice)
		fail("no <5> (notice) line, e.g. \"started\"");
}

static int
connect_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	return fd;
}

/* Runs a tool to completion; its stdout+stderr go to out. Exit code. */
static int
run_tool(char *const argv[], char *out, size_t outlen)
{
	int status, pfd[2];
	size_t n = 0;
	ssize_t r;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		fail("pipe: %s", strerror(errno));
	if ((pid = fork()) < 0)
		fail("fork: %s", strerror(errno));
	if (pid == 0) {
		dup2(pfd[1], STDOUT_FILENO);
		dup2(pfd[1], STDERR_FILENO);
		execv(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(pfd[1]);
	/* Keep reading the daemon's notify messages and stderr meanwhile. */
	for (;;) {
		struct pollfd p[3] = {
			{ .fd = pfd[0], .events = POLLIN },
			{ .fd = h.notify_fd, .events = POLLIN },
			{ .fd = h.err_fd, .events = POLLIN },
		};

		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			fail("poll: %s", strerror(errno));
		}
		if (p[1].revents != 0)
			collect();
		if (p[2].revents != 0)
			drain_stderr(0);
		if (p[0].revents == 0)
			continue;
		if (n >= outlen - 1)
			break;
		if ((r = read(pfd[0], out + n, outlen - 1 - n)) <= 0)
			break;
		n += (size_t)r;
	}
	out[n] = '\0';
	close(pfd[0]);
	if (waitpid(pid, &status, 0) < 0)
		fail("waitpid: %s", strerror(errno));
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* Waits until STATUS= says "N active migration(s)". */
static void
expect_count(size_t want, int timeout_ms)
{
	char buf[4096], text[64];
	uint64_t end = now_ms() + (uint64_t)timeout_ms;

	snprintf(text, sizeof(text), "STATUS=%zu active migration%s", want,
	    want == 1 ? "" : "s");
	for (;;) {
		uint64_t now = now_ms();

		if (now >= end || recv_msg(buf, sizeof(buf), (int)(end - now)) < 0)
			fail("no \"%s\" within %d ms", text, timeout_ms);
		if (strstr(buf, text) != NULL)
			return;
	}
}

static int
cmd_notify(char *daemon, char *ctl, char *gencerts)
{
	char env_notify[120];
	const char *env[] = { env_notify, "WATCHDOG_USEC=300000",
	    "WATCHDOG_PID=self", "JOURNAL_STREAM=8:12345", NULL };
	char *argv[] = { daemon, "-c", h.conf_path, "-s", h.control_path,
	    "-V", h.vmm_path, NULL };
	char buf[4096], out[4096];
	int pings = 0, fd;
	uint64_t t0;

	setup();
	snprintf(env_notify, sizeof(env_notify), "NOTIFY_SOCKET=%s",
	    h.notify_path);
	spawn(argv, env, false);

	expect("READY=1", 15000, buf, sizeof(buf));
	if (!has_line(buf, "STATUS="))
		fail("READY=1 without STATUS=: \"%s\"", buf);
	if (strstr(buf, "STATUS=0 active migrations") == NULL)
		fail("STATUS= should count 0 active migrations: \"%s\"", buf);
	/* READY=1 promises a listening control socket. */
	if ((fd = connect_unix(h.control_path)) < 0)
		fail("READY=1 but connect %s: %s", h.control_path,
		    strerror(-fd));
	close(fd);
	printf("ok: READY=1 with %s; control socket listening\n",
	    strstr(buf, "STATUS="));

	/* 300 ms watchdog: pings every 150 ms; want several in 1 s. */
	t0 = now_ms();
	while (now_ms() - t0 < 1000) {
		if (recv_msg(buf, sizeof(buf), 1000) < 0)
			break;
		if (has_line(buf, "WATCHDOG=1"))
			pings++;
	}
	if (pings < 3)
		fail("%d WATCHDOG=1 pings in 1 s with WATCHDOG_USEC=300000, "
		    "want >= 3 (one per 150 ms)", pings);
	printf("ok: %d WATCHDOG=1 pings in 1 s (WATCHDOG_USEC=300000)\n",
	    pings);

	if (ctl != NULL) {
		char tls[120];
		char *gargv[] = { gencerts, tls, NULL };
		char *pargv[] = { ctl, "-s", h.control_path, "prepare", "sd1",
		    "--listen", "127.0.0.1:0", "--tls-dir", tls, NULL };

		snprintf(h.tls_dir, sizeof(h.tls_dir), "%s/tls", h.dir);
		snprintf(tls, sizeof(tls), "%s", h.tls_dir);
		if (run_tool(gargv, out, sizeof(out)) != 0)
			fail("%s %s: %s", gencerts, tls, out);
		if (run_tool(pargv, out, sizeof(out)) != 0)
			fail("postcopyctl prepare sd1: %s", out);
		expect_count(1, 5000);
		printf("ok: postcopyctl prepare -> STATUS=1 active migration\n");
	}

	/* SIGHUP with a good file: reloaded; with a bad one: kept. */
	write_file(h.conf_path, "log_level = debug\n");
	kill(h.pid, SIGHUP);
	expect("RELOADING=1", 5000, buf, sizeof(buf));
	if (!has_line(buf, "MONOTONIC_USEC="))
		fail("RELOADING=1 without MONOTONIC_USEC=: \"%s\"", buf);
	expect("READY=1", 5000, NULL, 0);
	drain_stderr(100);
	if (strstr(h.errbuf, "configuration reloaded") == NULL)
		fail("SIGHUP did not reload the configuration");
	write_file(h.conf_path, "no_such_key = 1\n");
	kill(h.pid, SIGHUP);
	expect("RELOADING=1", 5000, NULL, 0);
	expect("READY=1", 5000, NULL, 0);
	drain_stderr(100);
	if (strstr(h.errbuf, "configuration not reloaded") == NULL)
		fail("SIGHUP with a bad file: no \"not reloaded\" warning");
	if ((fd = connect_unix(h.control_path)) < 0)
		fail("after a bad reload: connect %s: %s", h.control_path,
		    strerror(-fd));
	close(fd);
	printf("ok: SIGHUP -> RELOADING=1 then READY=1 (good file reloaded, "
	    "bad file refused, still serving)\n");

	t0 = now_ms();
	kill(h.pid, SIGTERM);
	expect("STOPPING=1", 5000, NULL, 0);
	expect_exit0(10000);
	if (ctl != NULL && strstr(h.errbuf, "cancelled 1 migration") == NULL)
		fail("SIGTERM did not cancel the migration that had not "
		    "switched over");
	printf("ok: SIGTERM -> STOPPING=1, exit 0 after %llu ms%s\n",
	    (unsigned long long)(now_ms() - t0), ctl != NULL ?
	    " (waiting migration cancelled)" : "");

	check_log_lines(true);
	printf("ok: every log line has a <N> prefix under JOURNAL_STREAM\n");
	cleanup();
	return 0;
}

static int
cmd_plain(char *daemon)
{
	char *argv[] = { daemon, "-c", h.conf_path, "-s", h.control_path,
	    "-V", h.vmm_path, NULL };
	char buf[4096];

	setup();
	spawn(argv, NULL, false);
	/* No NOTIFY_SOCKET: it must run quietly; give it time to start. */
	for (int i = 0; i < 50 && strstr(h.errbuf, "started") == NULL; i++)
		drain_stderr(100);
	if (strstr(h.errbuf, "started") == NULL)
		fail("no \"started\" line within 5 s");
	if (recv_msg(buf, sizeof(buf), 300) == 0)
		fail("notify message without NOTIFY_SOCKET: \"%s\"", buf);
	kill(h.pid, SIGTERM);
	expect_exit0(10000);
	check_log_lines(false);
	printf("ok: plain log lines, exit 0 on SIGTERM\n");
	cleanup();
	return 0;
}

static int
cmd_activate(char *activate, char *daemon, char *ctl)
{
	char env_notify[120], e_notify[160], listen[120], listen_vmm[120];
	char *argv[] = { activate, listen, listen_vmm, "--fdname=control:vmm",
	    "-E", e_notify, "-E", "JOURNAL_STREAM=8:12345", "--", daemon, "-c",
	    h.conf_path, "-s", h.control_path, "-V", h.vmm_path, NULL };
	struct stat before, after, vmm_before, vmm_after;
	char buf[4096];
	int fd = -1, vfd;

	if (access(activate, X_OK) < 0) {
		printf("SKIP: %s: %s (package systemd)\n", activate,
		    strerror(errno));
		return SKIP;
	}
	setup();
	snprintf(env_notify, sizeof(env_notify), "%s", h.notify_path);
	snprintf(e_notify, sizeof(e_notify), "NOTIFY_SOCKET=%s", env_notify);
	snprintf(listen, sizeof(listen), "--listen=%s", h.control_path);
	snprintf(listen_vmm, sizeof(listen_vmm), "--listen=%s", h.vmm_path);
	spawn(argv, NULL, false);

	/* systemd-socket-activate binds, then execs the daemon on the first
	 * connection (same pid). */
	for (int i = 0; i < 100 && stat(h.control_path, &before) < 0; i++)
		drain_stderr(50);
	if (stat(h.control_path, &before) < 0)
		fail("%s never appeared", h.control_path);
	for (int i = 0; i < 100 && stat(h.vmm_path, &vmm_before) < 0; i++)
		drain_stderr(50);
	if (stat(h.vmm_path, &vmm_before) < 0)
		fail("%s never appeared", h.vmm_path);
	/* The file exists from bind(); listen() follows. */
	for (int i = 0; i < 100; i++) {
		if ((fd = connect_unix(h.control_path)) != -ECONNREFUSED)
			break;
		drain_stderr(50);
	}
	if (fd < 0)
		fail("connect %s: %s", h.control_path, strerror(-fd));

	expect("READY=1", 15000, buf, sizeof(buf));
	drain_stderr(100);
	if (strstr(h.errbuf, "control socket: fd 3 from socket activation") ==
	    NULL)
		fail("the daemon did not say it uses the activated control "
		    "socket (fd 3)");
	if (strstr(h.errbuf, "vmm: listening on fd 4 from socket activation") ==
	    NULL)
		fail("the daemon did not say it uses the activated VMM socket "
		    "(fd 4)");
	if (stat(h.control_path, &after) < 0 || after.st_ino != before.st_ino)
		fail("the daemon replaced the activated socket %s",
		    h.control_path);
	if (stat(h.vmm_path, &vmm_after) < 0 ||
	    vmm_after.st_ino != vmm_before.st_ino)
		fail("the daemon replaced the activated socket %s", h.vmm_path);
	printf("ok: socket-activated, READY=1, sockets kept (control inode "
	    "%lu, VMM inode %lu)\n", (unsigned long)after.st_ino,
	    (unsigned long)vmm_after.st_ino);
	if ((vfd = connect_unix(h.vmm_path)) < 0)
		fail("connect %s: %s", h.vmm_path, strerror(-vfd));
	close(vfd);
	printf("ok: the activated VMM socket accepts connections\n");

	if (ctl != NULL) {
		char *cargv[] = { ctl, "-s", h.control_path, "version", NULL };
		char out[4096];
		int rc = run_tool(cargv, out, sizeof(out));

		if (rc != 0 || strstr(out, "\npostcopyd ") == NULL)
			fail("%s -s %s version: exit %d: %s", ctl,
			    h.control_path, rc, out);
		printf("ok: postcopyctl version over the activated socket: "
		    "%s", out);
	}
	close(fd);

	kill(h.pid, SIGTERM);
	expect("STOPPING=1", 5000, NULL, 0);
	expect_exit0(10000);
	printf("ok: SIGTERM -> exit 0\n");
	cleanup();
	return 0;
}

static int
cmd_nouffd(char *daemon)
{
	char env_notify[160];
	const char *env[] = { env_notify, NULL };
	char *argv[] = { daemon, "-c", h.conf_path, "-s", h.control_path,
	    "-V", h.vmm_path, NULL };
	char buf[4096];
	int status;

	if (geteuid() != 0) {
		printf("SKIP: needs root to start the daemon as nobody\n");
		return SKIP;
	}
	{
		FILE *f = fopen("/proc/sys/vm/unprivileged_userfaultfd", "r");
		int v = 0;

		if (f != NULL) {
			if (fscanf(f, "%d", &v) != 1)
				v = 0;
			fclose(f);
		}
		if (v != 0) {
			printf("SKIP: vm.unprivileged_userfaultfd=1 lets nobody "
			    "create userfaultfds\n");
			return SKIP;
		}
	}
	setup();
	/* nobody must be able to reach the notify socket and the dir. */
	chmod(h.dir, 0777);
	chmod(h.notify_path, 0666);
	snprintf(env_notify, sizeof(env_notify), "NOTIFY_SOCKET=%s",
	    h.notify_path);
	spawn(argv, env, true);
	status = wait_exit(15000);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		fail("the daemon started without userfaultfd access");
	if (WIFEXITED(status) && WEXITSTATUS(status) >= 126) {
		drain_stderr(100);
		printf("SKIP: cannot run %s as nobody: %s", daemon, h.errbuf);
		cleanup();
		return SKIP;
	}
	while (recv_msg(buf, sizeof(buf), 0) == 0)
		if (has_line(buf, "READY=1"))
			fail("READY=1 without userfaultfd access");
	if (strstr(h.errbuf, "/dev/userfaultfd") == NULL)
		fail("the refusal does not name /dev/userfaultfd");
	printf("ok: refused to start without /dev/userfaultfd: %s",
	    h.errbuf);
	cleanup();
	return 0;
}

int
main(int argc, char **argv)
{
	int rc = 2;

	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc == 3 && strcmp(argv[1], "notify") == 0)
		rc = cmd_notify(argv[2], NULL, NULL);
	else if (argc == 5 && strcmp(argv[1], "notify") == 0)
		rc = cmd_notify(argv[2], argv[3], argv[4]);
	else if (argc == 3 && strcmp(argv[1], "plain") == 0)
		rc = cmd_plain(argv[2]);
	else if ((argc == 4 || argc == 5) && strcmp(argv[1], "activate") == 0)
		rc = cmd_activate(argv[2], argv[3], argc == 5 ? argv[4] : NULL);
	else if (argc == 3 && strcmp(argv[1], "nouffd") == 0)
		rc = cmd_nouffd(argv[2]);
	else
		fprintf(stderr, "usage: sdtest notify POSTCOPYD [POSTCOPYCTL "
		    "GENCERTS]\n"
		    "       sdtest plain|nouffd POSTCOPYD\n"
		    "       sdtest activate SOCKET_ACTIVATE POSTCOPYD "
		    "[POSTCOPYCTL]\n");
	return rc;
}
