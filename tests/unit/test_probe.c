/* test_probe.c - the kernel probe (daemon/probe.c) on the real kernel:
 * probe_kernel, the refusal message, probe_uffd on good and bad fds and on a
 * userfaultfd handed over by another process (as a VMM does), and the THP
 * guard. Needs a userfaultfd: skipped (77) where none can be created.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <linux/userfaultfd.h>

#include <cmocka.h>

#include "probe.h"
#include "testlib.h"

#define PSZ	4096u
#define MM	(UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR)

static int
api_uffd(uint64_t features)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	int fd = probe_uffd_open(O_CLOEXEC, NULL);

	assert_true(fd >= 0);
	assert_int_equal(ioctl(fd, UFFDIO_API, &api), 0);
	return fd;
}

static void *
map_memfd(int *memfd, size_t len)
{
	void *p;

	*memfd = memfd_create("test-probe", MFD_CLOEXEC);
	assert_true(*memfd >= 0);
	assert_int_equal(ftruncate(*memfd, (off_t)len), 0);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, *memfd, 0);
	assert_true(p != MAP_FAILED);
	return p;
}

static void
test_probe_kernel_all_present(void **state)
{
	struct probe_report r;
	char msg[512];

	assert_int_equal(probe_kernel(&r), 0);
	for (int f = 0; f < PROBE_NFEATURES; f++) {
		printf("  %s: %s (%s)\n", probe_feature_name(f),
		    r.present[f] ? "present" : "MISSING", r.detail[f]);
		assert_true(r.present[f]);
		assert_true(r.checked[f]);
	}
	assert_true(r.api_features & UFFD_FEATURE_MINOR_SHMEM);
	assert_true(r.range_ioctls & ((uint64_t)1 << _UFFDIO_CONTINUE));
	assert_true(r.release[0] != '\0');
	probe_report_missing(&r, msg, sizeof(msg));
	assert_string_equal(msg, "");
	printf("  precopy: %s (%s)\n", r.precopy ? "present" : "MISSING",
	    r.precopy_detail);
	assert_true(r.precopy_detail[0] != '\0');
}

/* Precopy's dirty tracking: present from 6.7 (this machine runs 6.18);
 * on an older kernel the refusal names 6.7 and says postcopy works. */
static void
test_probe_precopy(void **state)
{
	char why[512] = "";
	int maj = 0, min = 0, rc;
	struct probe_report r;

	assert_int_equal(probe_kernel(&r), 0);
	sscanf(r.release, "%d.%d", &maj, &min);
	rc = probe_precopy(why, sizeof(why));
	printf("  kernel %s: probe_precopy %d: %s\n", r.release, rc, why);
	if (maj > 6 || (maj == 6 && min >= 7)) {
		assert_int_equal(rc, 0);
		assert_true(r.precopy);
	} else {
		assert_int_equal(rc, -ENOTSUP);
		assert_non_null(strstr(why, "Linux >= 6.7"));
		assert_non_null(strstr(why, "postcopy-only"));
		assert_false(r.precopy);
	}
}

static void
test_probe_missing_message(void **state)
{
	struct probe_report r;
	char msg[1024];

	assert_int_equal(probe_kernel(&r), 0);
	/* As an old kernel would report it. */
	r.present[PROBE_MINOR_SHMEM] = false;
	snprintf(r.detail[PROBE_MINOR_SHMEM], PROBE_DETAIL_MAX,
	    "not reported by UFFDIO_API (mainline 5.14+)");
	r.present[PROBE_CONTINUE] = false;
	r.checked[PROBE_CONTINUE] = false;
	probe_report_missing(&r, msg, sizeof(msg));
	printf("  message: %s\n", msg);
	assert_non_null(strstr(msg, "UFFD_FEATURE_MINOR_SHMEM (not reported"));
	assert_null(strstr(msg, "UFFDIO_CONTINUE"));
	assert_non_null(strstr(msg, "1 more not checked"));
	assert_non_null(strstr(msg, r.release));
	assert_non_null(strstr(msg, "kernel/README.md"));
}

static void
test_probe_uffd_not_a_uffd(void **state)
{
	char err[512];
	int efd = eventfd(0, EFD_CLOEXEC);

	assert_true(efd >= 0);
	assert_int_equal(probe_uffd(efd, 0, 0, MM, NULL, err, sizeof(err)),
	    -EBADF);
	printf("  eventfd: %s\n", err);
	assert_non_null(strstr(err, "is not a userfaultfd"));
	close(efd);
	assert_int_equal(probe_uffd(efd, 0, 0, MM, NULL, err, sizeof(err)),
	    -ENOENT);
}

static void
test_probe_uffd_own_memfd(void **state)
{
	char err[512] = "";
	uint64_t feat = 0;
	int memfd, uffd = api_uffd(UFFD_FEATURE_MINOR_SHMEM |
	    UFFD_FEATURE_MISSING_SHMEM);
	void *p = map_memfd(&memfd, 4 * PSZ);

	assert_int_equal(probe_uffd(uffd, (uintptr_t)p, 4 * PSZ, MM, &feat, err,
	    sizeof(err)), 0);
	printf("  features from fdinfo: 0x%llx\n", (unsigned long long)feat);
	assert_true(feat & UFFD_FEATURE_MINOR_SHMEM);
	assert_true(feat & UFFD_FEATURE_MISSING_SHMEM);
	/* A second call is harmless: same uffd, same mode. */
	assert_int_equal(probe_uffd(uffd, (uintptr_t)p, 4 * PSZ, MM, NULL, err,
	    sizeof(err)), 0);
	munmap(p, 4 * PSZ);
	close(memfd);
	close(uffd);
}

static void
test_probe_uffd_refusals(void **state)
{
	char err[512];
	int memfd, uffd, raw;
	void *p = map_memfd(&memfd, 2 * PSZ), *anon;

	/* VMM skipped UFFDIO_API. */
	raw = probe_uffd_open(O_CLOEXEC, NULL);
	assert_true(raw >= 0);
	assert_int_equal(probe_uffd(raw, (uintptr_t)p, 2 * PSZ, MM, NULL, err,
	    sizeof(err)), -EINVAL);
	printf("  no handshake: %s\n", err);
	assert_non_null(strstr(err, "has not done the UFFDIO_API handshake"));
	assert_non_null(strstr(err, "kernel/README.md"));
	close(raw);

	/* Anonymous memory cannot take MINOR faults. */
	uffd = api_uffd(0);
	anon = mmap(NULL, PSZ, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(anon != MAP_FAILED);
	assert_int_equal(probe_uffd(uffd, (uintptr_t)anon, PSZ, MM, NULL, err,
	    sizeof(err)), -EINVAL);
	printf("  anonymous: %s\n", err);
	assert_non_null(strstr(err, "UFFD_FEATURE_MINOR_SHMEM"));
	assert_non_null(strstr(err, "MISSING|MINOR"));
	/* ... but the anonymous COPY baseline registers MISSING alone. */
	assert_int_equal(probe_uffd(uffd, (uintptr_t)anon, PSZ,
	    UFFDIO_REGISTER_MODE_MISSING, NULL, err, sizeof(err)), 0);

	/* Registered with another userfaultfd already. */
	{
		int other = api_uffd(0);

		assert_int_equal(probe_uffd(other, (uintptr_t)p, 2 * PSZ, MM, NULL,
		    err, sizeof(err)), 0);
		assert_int_equal(probe_uffd(uffd, (uintptr_t)p, 2 * PSZ, MM, NULL,
		    err, sizeof(err)), -EBUSY);
		printf("  busy: %s\n", err);
		assert_non_null(strstr(err, "another userfaultfd"));
		close(other);
	}
	munmap(anon, PSZ);
	munmap(p, 2 * PSZ);
	close(memfd);
	close(uffd);
}

static int
send_fds(int sock, int fd1, int fd2, uint64_t base)
{
	char cbuf[CMSG_SPACE(2 * sizeof(int))];
	struct iovec iov = { .iov_base = &base, .iov_len = sizeof(base) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
	    .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	int fds[2] = { fd1, fd2 };

	memset(cbuf, 0, sizeof(cbuf));
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(c), fds, sizeof(fds));
	return sendmsg(sock, &mh, 0) == sizeof(base) ? 0 : -1;
}

static int
recv_fds(int sock, int *fd1, int *fd2, uint64_t *base)
{
	char cbuf[CMSG_SPACE(2 * sizeof(int))];
	struct iovec iov = { .iov_base = base, .iov_len = sizeof(*base) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
	    .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;
	int fds[2];

	if (recvmsg(sock, &mh, MSG_CMSG_CLOEXEC) != sizeof(*base))
		return -1;
	c = CMSG_FIRSTHDR(&mh);
	if (c == NULL || c->cmsg_type != SCM_RIGHTS ||
	    c->cmsg_len != CMSG_LEN(sizeof(fds)))
		return -1;
	memcpy(fds, CMSG_DATA(c), sizeof(fds));
	*fd1 = fds[0];
	*fd2 = fds[1];
	return 0;
}

/* The child plays the VMM: creates the uffd (UFFDIO_API done) and the
 * memfd guest mapping, hands both over, then reads its guest page. The
 * parent plays the daemon: probe_uffd registers the child's range, the
 * child's read raises a MINOR fault the parent resolves with CONTINUE
 * after writing the page through its own alias mapping. */
static void
test_probe_uffd_from_other_process(void **state)
{
	int sv[2], uffd = -1, memfd = -1, status;
	uint64_t base = 0, feat = 0;
	char err[512] = "", go = 'g';
	pid_t pid;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
	    sv), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int u, m;
		volatile uint32_t *g;
		char c;

		close(sv[0]);
		u = api_uffd(UFFD_FEATURE_MINOR_SHMEM |
		    UFFD_FEATURE_MISSING_SHMEM);
		g = map_memfd(&m, PSZ);
		if (send_fds(sv[1], u, m, (uintptr_t)g) < 0)
			_exit(2);
		close(u);
		if (read(sv[1], &c, 1) != 1)	/* registered: go */
			_exit(3);
		_exit(g[0] == 0xfeedf00d ? 0 : 1);	/* MINOR fault */
	}
	close(sv[1]);
	assert_int_equal(recv_fds(sv[0], &uffd, &memfd, &base), 0);
	assert_int_equal(probe_uffd(uffd, base, PSZ, MM, &feat, err, sizeof(err)),
	    0);
	{
		struct uffd_msg msg;
		struct uffdio_continue cont;
		struct pollfd pfd = { .fd = uffd, .events = POLLIN };
		uint32_t *alias = mmap(NULL, PSZ, PROT_READ | PROT_WRITE,
		    MAP_SHARED, memfd, 0);

		assert_true(alias != MAP_FAILED);
		alias[0] = 0xfeedf00d;		/* now in the page cache */
		assert_int_equal(write(sv[0], &go, 1), 1);
		assert_int_equal(poll(&pfd, 1, 10000), 1);
		assert_int_equal(read(uffd, &msg, sizeof(msg)), sizeof(msg));
		assert_int_equal(msg.event, UFFD_EVENT_PAGEFAULT);
		printf("  fault in the VMM at 0x%llx flags 0x%llx\n",
		    (unsigned long long)msg.arg.pagefault.address,
		    (unsigned long long)msg.arg.pagefault.flags);
		assert_true(msg.arg.pagefault.flags &
		    UFFD_PAGEFAULT_FLAG_MINOR);
		assert_int_equal(msg.arg.pagefault.address & ~(uint64_t)(PSZ - 1),
		    base);
		memset(&cont, 0, sizeof(cont));
		cont.range.start = base;
		cont.range.len = PSZ;
		assert_int_equal(ioctl(uffd, UFFDIO_CONTINUE, &cont), 0);
		assert_int_equal(cont.mapped, PSZ);
		munmap(alias, PSZ);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	close(uffd);
	close(memfd);
	close(sv[0]);
}

static void
test_probe_thp_guard(void **state)
{
	char st[32];
	bool forced = true;
	int memfd;
	void *p = map_memfd(&memfd, 4 * PSZ);

	assert_int_equal(probe_thp_guard(p, 4 * PSZ, st, sizeof(st), &forced),
	    0);
	printf("  shmem_enabled: %s\n", st);
	assert_true(st[0] != '\0');
	assert_int_equal(forced, strcmp(st, "force") == 0);
	/* The mapping now carries VM_NOHUGEPAGE ("nh" in smaps VmFlags). */
	assert_int_equal(testlib_vmflag(p, "nh"), 1);
	assert_int_equal(probe_thp_guard(NULL, PSZ, st, sizeof(st), NULL),
	    -ENOMEM);
	munmap(p, 4 * PSZ);
	close(memfd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_probe_kernel_all_present),
		cmocka_unit_test(test_probe_missing_message),
		cmocka_unit_test(test_probe_precopy),
		cmocka_unit_test(test_probe_uffd_not_a_uffd),
		cmocka_unit_test(test_probe_uffd_own_memfd),
		cmocka_unit_test(test_probe_uffd_refusals),
		cmocka_unit_test(test_probe_uffd_from_other_process),
		cmocka_unit_test(test_probe_thp_guard),
	};
	int fd = probe_uffd_open(O_CLOEXEC, NULL);

	if (fd < 0) {
		printf("SKIP: cannot create a userfaultfd here: %s\n",
		    strerror(-fd));
		return 77;
	}
	close(fd);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
