/* pcd-foreignuffd - a VMM that attaches to postcopyd as a destination with
 * a userfaultfd some other process created (issue 13 item 11). Such a uffd
 * acts on that process's address space, not on the guest memory the VMM
 * names, so the daemon must refuse the attach and say why.
 *
 *   pcd-foreignuffd VMM_SOCKET ID SIZE forked|unmapped
 *
 * forked: the uffd comes from a child forked after the guest was mapped,
 * so the child maps the same memfd at the same address (the hard case: the
 * range registers fine, in the wrong process). unmapped: from a child
 * forked before, which has nothing there. Prints the daemon's answer; exit
 * 0 when the attach was refused, 1 when it was accepted, 2 on setup error.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/userfaultfd.h>

#include "pcvmm.h"
#include "probe.h"
#include "util.h"

static void
die(const char *what)
{
	fprintf(stderr, "pcd-foreignuffd: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void
send_fd(int sock, int fd)
{
	char c = 'u';
	struct iovec iov = { &c, 1 };
	union {
		struct cmsghdr	h;
		char		b[CMSG_SPACE(sizeof(int))];
	} u;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
	    .msg_control = u.b, .msg_controllen = sizeof(u.b) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);

	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	if (sendmsg(sock, &msg, 0) != 1)
		die("sendmsg");
}

static int
recv_fd(int sock)
{
	char c;
	struct iovec iov = { &c, 1 };
	union {
		struct cmsghdr	h;
		char		b[CMSG_SPACE(sizeof(int))];
	} u;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
	    .msg_control = u.b, .msg_controllen = sizeof(u.b) };
	struct cmsghdr *cm = NULL;
	int fd;

	if (recvmsg(sock, &msg, 0) != 1 || (cm = CMSG_FIRSTHDR(&msg)) == NULL)
		die("recvmsg");
	memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	return fd;
}

/* The child: makes a uffd (its own mm), hands it over, waits. */
static int
child_uffd(int sock)
{
	struct uffdio_api api = { .api = UFFD_API,
	    .features = UFFD_FEATURE_MINOR_SHMEM | UFFD_FEATURE_MISSING_SHMEM };
	int uffd = probe_uffd_open(O_CLOEXEC | O_NONBLOCK, NULL);
	char c;

	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) < 0)
		die("userfaultfd");
	send_fd(sock, uffd);
	if (read(sock, &c, 1) < 0)	/* until the parent is done */
		_exit(1);
	_exit(0);
}

static pid_t
spawn(int *uffd, int *keep)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		die("socketpair");
	if ((pid = fork()) < 0)
		die("fork");
	if (pid == 0) {
		close(sv[0]);
		child_uffd(sv[1]);
	}
	close(sv[1]);
	*uffd = recv_fd(sv[0]);
	*keep = sv[0];
	return pid;
}

int
main(int argc, char **argv)
{
	struct pcvmm_attach_args a = { 0 };
	struct pcvmm *v = NULL;
	char err[1024];
	uint64_t size;
	void *base;
	int memfd, uffd = -1, keep = -1, r;
	pid_t child = -1;
	bool forked;

	if (argc != 5 || parse_size(argv[3], &size) < 0 ||
	    (strcmp(argv[4], "forked") != 0 && strcmp(argv[4], "unmapped") != 0)) {
		fprintf(stderr, "usage: pcd-foreignuffd VMM_SOCKET ID SIZE "
		    "forked|unmapped\n");
		return 2;
	}
	forked = strcmp(argv[4], "forked") == 0;
	if (!forked)
		child = spawn(&uffd, &keep);
	if ((memfd = memfd_create("guest", MFD_CLOEXEC)) < 0 ||
	    ftruncate(memfd, (off_t)size) < 0)
		die("memfd");
	base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (base == MAP_FAILED)
		die("mmap");
	if (forked)
		child = spawn(&uffd, &keep);
	a.socket_path = argv[1];
	a.id = argv[2];
	a.role = PCVMM_ROLE_DEST;
	a.mode = PCVMM_MODE_MINOR;
	a.base = base;
	a.size = size;
	a.memfd = memfd;
	a.uffd = uffd;
	r = pcvmm_attach(&a, &v, err, sizeof(err));
	if (r == 0) {
		printf("attached (a userfaultfd of pid %d was accepted)\n",
		    (int)child);
		pcvmm_detach(v, "test over");
	} else {
		printf("refused: %s\n", err);
	}
	close(keep);
	waitpid(child, NULL, 0);
	return r == 0 ? 1 : 0;
}
