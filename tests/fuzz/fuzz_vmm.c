/* fuzz_vmm.c - the VMM attach socket's decoder (daemon/vmm.c) under
 * libFuzzer: each input is the byte stream a VMM sends, through a real
 * vmm_server on a real Unix socket. The first input byte chooses which
 * descriptors ride with the first bytes (none, a memfd, a memfd and a
 * userfaultfd, a pipe), so well-formed attaches reach the attached state
 * and the frames after them are decoded too. The server must refuse or
 * close, never crash, leak or hang.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "vmm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_INPUT	(64u << 10)

static struct event_base *fz_base;
static char fz_path[108];

static int
fz_attached(void *arg, struct vmm_session *s, struct vmm_guest *g, char *err,
    size_t errlen)
{
	/* Accept, and ask the source to pause (exercises Paused). */
	if (g->memfd >= 0)
		close(g->memfd);
	if (g->uffd >= 0)
		close(g->uffd);
	if (g->role == MIG_ROLE_SOURCE)
		(void)vmm_session_pause(s);
	else
		(void)vmm_session_resume(s, "x", 1);
	return 0;
}

static void
fz_paused(void *arg, struct vmm_session *s, const void *state, size_t len)
{
	(void)vmm_session_complete(s, true, "done");
}

static void
fz_detached(void *arg, struct vmm_session *s)
{
}

static const struct vmm_ops fz_ops = {
	.attached = fz_attached,
	.paused = fz_paused,
	.detached = fz_detached,
};

static void
fz_init(void)
{
	struct vmm_server *srv;
	char dir[] = "/tmp/fuzz_vmm.XXXXXX";

	log_init("fuzz_vmm", LOG_LVL_ERR);
	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(fz_path, sizeof(fz_path), "%s/vmm.sock", dir);
	fz_base = event_base_new();
	if (fz_base == NULL ||
	    vmm_server_open(fz_base, fz_path, -1, &fz_ops, NULL, &srv) < 0)
		abort();
	/* The server lives as long as the process. */
}

static int
fz_fds(uint8_t sel, int *fds)
{
	int n = 0;

	switch (sel % 4) {
	case 1:
	case 2:
		fds[n] = memfd_create("fuzz", MFD_CLOEXEC);
		if (fds[n] >= 0 && ftruncate(fds[n], 64 << 10) == 0)
			n++;
		if (sel % 4 == 2) {
			struct uffdio_api api = { .api = UFFD_API };
			fds[n] = (int)syscall(SYS_userfaultfd, O_CLOEXEC |
			    O_NONBLOCK);
			if (fds[n] >= 0 && ioctl(fds[n], UFFDIO_API, &api) == 0)
				n++;
		}
		break;
	case 3: {
		int p[2];
		if (pipe2(p, O_CLOEXEC) == 0) {
			close(p[1]);
			fds[n++] = p[0];
		}
		break;
	}
	}
	return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int) * 2)];
	} cbuf;
	int fds[2], nfds, fd;
	size_t off = 0;
	char sink[4096];

	if (fz_base == NULL)
		fz_init();
	if (size < 1 || size > FUZZ_MAX_INPUT)
		return 0;
	nfds = fz_fds(data[0], fds);
	data++;
	size--;

	memcpy(sun.sun_path, fz_path, strlen(fz_path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		abort();
	/* Let the server accept before data arrives. */
	event_base_loop(fz_base, EVLOOP_NONBLOCK);

	while (off < size || nfds > 0) {
		struct iovec iov = { (void *)(data + off), size - off };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n;

		if (size == 0) {
			/* fds need a byte to ride on */
			static const uint8_t zero;
			iov.iov_base = (void *)&zero;
			iov.iov_len = 1;
		}
		if (nfds > 0) {
			struct cmsghdr *c;
			memset(&cbuf, 0, sizeof(cbuf));
			msg.msg_control = cbuf.buf;
			msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
			c = CMSG_FIRSTHDR(&msg);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
			memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
		}
		n = sendmsg(fd, &msg, MSG_NOSIGNAL);
		if (n > 0) {
			for (int i = 0; i < nfds; i++)
				close(fds[i]);
			nfds = 0;
			off += size == 0 ? 0 : (size_t)n;
			if (size == 0)
				break;
		} else if (n < 0 && errno != EAGAIN) {
			break;		/* the server closed on us */
		}
		event_base_loop(fz_base, EVLOOP_NONBLOCK);
		while (read(fd, sink, sizeof(sink)) > 0)
			;
	}
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	shutdown(fd, SHUT_WR);
	/* Run the server until it has closed this connection. */
	for (int spins = 0; spins < 10000; spins++) {
		ssize_t n;
		event_base_loop(fz_base, EVLOOP_NONBLOCK);
		n = read(fd, sink, sizeof(sink));
		if (n == 0 || (n < 0 && errno != EAGAIN))
			break;
	}
	close(fd);
	/* Reap the session. */
	event_base_loop(fz_base, EVLOOP_NONBLOCK);
	return 0;
}
