/* test_faultproxy.c - checks the fault-injection proxy itself: bytes pass
 * intact when delivered in tiny pieces, and cuts reset connections at the
 * configured volume so a reconnecting client sees them.
 *
 *   test_faultproxy PATH_TO_FAULTPROXY
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define FAIL(...) do { fprintf(stderr, "FAIL: " __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)

static int
listen_any(uint16_t *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
	    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 16) < 0 || getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		FAIL("echo listen: %s", strerror(errno));
	*port = ntohs(sa.sin_port);
	return fd;
}

static void *
echo_server(void *arg)
{
	int lfd = *(int *)arg;
	char buf[65536];

	for (;;) {
		int c = accept(lfd, NULL, NULL);
		ssize_t n;
		if (c < 0)
			return NULL;
		while ((n = read(c, buf, sizeof(buf))) > 0)
			if (write(c, buf, (size_t)n) != n)
				break;
		close(c);
	}
}

static int
connect_port(uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
	    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	for (int i = 0; i < 200; i++) {
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
		usleep(10000);
	}
	FAIL("connect to the proxy: %s", strerror(errno));
}

/* Sends len bytes and reads them back; returns bytes echoed intact before
 * the connection broke (len when it never did). */
static size_t
roundtrip(int fd, size_t len)
{
	char out[4096], in[4096];
	size_t done = 0;

	while (done < len) {
		size_t n = len - done < sizeof(out) ? len - done : sizeof(out), got = 0;
		for (size_t i = 0; i < n; i++)
			out[i] = (char)((done + i) * 31 + 7);
		if (write(fd, out, n) != (ssize_t)n)
			return done;
		while (got < n) {
			ssize_t r = read(fd, in + got, n - got);
			if (r <= 0)
				return done;
			got += (size_t)r;
		}
		if (memcmp(in, out, n) != 0)
			FAIL("bytes changed in transit at offset %zu", done);
		done += n;
	}
	return done;
}

static pid_t
start_proxy(const char *bin, uint16_t target, const char *dir, char *const extra[])
{
	char connect_to[64], port_file[256];
	const char *argv[32] = { bin, "--listen", "127.0.0.1:0", "--connect" };
	int n = 4;
	pid_t pid;

	snprintf(connect_to, sizeof(connect_to), "127.0.0.1:%u", target);
	snprintf(port_file, sizeof(port_file), "%s/port", dir);
	unlink(port_file);
	argv[n++] = connect_to;
	argv[n++] = "--port-file";
	argv[n++] = port_file;
	argv[n++] = "--stats";
	argv[n++] = "stats";
	for (int i = 0; extra[i]; i++)
		argv[n++] = extra[i];
	if ((pid = fork()) == 0) {
		if (chdir(dir) < 0)
			_exit(127);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	return pid;
}

static uint16_t
read_port(const char *dir)
{
	char path[256];
	unsigned p = 0;

	snprintf(path, sizeof(path), "%s/port", dir);
	for (int i = 0; i < 500; i++) {
		FILE *f = fopen(path, "r");
		if (f != NULL) {
			int ok = fscanf(f, "%u", &p);
			fclose(f);
			if (ok == 1 && p)
				return (uint16_t)p;
		}
		usleep(10000);
	}
	FAIL("proxy did not report its port");
}

static unsigned long
stop_proxy(pid_t pid, const char *dir)
{
	char path[256];
	unsigned long cuts = 0, bytes = 0;
	int st;
	FILE *f;

	kill(pid, SIGTERM);
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		FAIL("proxy exited badly (status %d)", st);
	snprintf(path, sizeof(path), "%s/stats", dir);
	if ((f = fopen(path, "r")) == NULL || fscanf(f, "cuts=%lu bytes=%lu", &cuts, &bytes) != 2)
		FAIL("proxy wrote no stats");
	fclose(f);
	return cuts;
}

int
main(int argc, char **argv)
{
	char dir[] = "/tmp/faultproxy.XXXXXX";
	uint16_t echo_port;
	int lfd;
	pthread_t th;
	pid_t pid;
	unsigned long cuts;

	if (argc != 2)
		FAIL("usage: test_faultproxy FAULTPROXY");
	signal(SIGPIPE, SIG_IGN);
	if (mkdtemp(dir) == NULL)
		FAIL("mkdtemp");
	lfd = listen_any(&echo_port);
	pthread_create(&th, NULL, echo_server, &lfd);

	/* 1. Tiny pieces: 256 KiB in chunks of at most 7 bytes, intact. */
	pid = start_proxy(argv[1], echo_port, dir, (char *[]){ "--chunk", "7", NULL });
	{
		int fd = connect_port(read_port(dir));
		size_t got = roundtrip(fd, 256 * 1024);
		if (got != 256 * 1024)
			FAIL("tiny pieces: connection broke after %zu bytes", got);
		close(fd);
	}
	cuts = stop_proxy(pid, dir);
	if (cuts != 0)
		FAIL("tiny pieces: %lu unexpected cuts", cuts);
	printf("ok: 256 KiB echoed intact through 7-byte pieces\n");

	/* 2. Cuts: about every 64 KiB, at most 5; a reconnecting client sees
	 * exactly 5 breaks, then a clean run. */
	pid = start_proxy(argv[1], echo_port, dir,
	    (char *[]){ "--cut-every", "64K", "--max-cuts", "5", "--seed", "3", NULL });
	{
		uint16_t port = read_port(dir);
		int breaks = 0;
		for (int attempt = 0; attempt < 10; attempt++) {
			int fd = connect_port(port);
			size_t got = roundtrip(fd, 512 * 1024);
			close(fd);
			if (got == 512 * 1024)
				break;
			breaks++;
		}
		if (breaks != 5)
			FAIL("cuts: saw %d broken connections, want 5", breaks);
	}
	cuts = stop_proxy(pid, dir);
	if (cuts != 5)
		FAIL("cuts: proxy counted %lu cuts, want 5", cuts);
	printf("ok: 5 cuts seen by a reconnecting client, then a clean transfer\n");
	close(lfd);
	return 0;
}
