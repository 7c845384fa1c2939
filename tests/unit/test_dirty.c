/* test_dirty.c - the source's dirty tracker (daemon/dirty.c) against real
 * memory of another process, as the daemon sees a source VMM: a child
 * creates a memfd guest mapping and a userfaultfd, passes the userfaultfd
 * and its own /proc/self/pagemap over a socketpair, and writes pages when
 * told to. The test scans through the passed descriptors and checks that
 * exactly the written pages are reported, that a scan re-protects them,
 * that never-populated pages are caught, and that closing the tracker
 * leaves the child's memory and mapping as they were. Needs Linux >= 6.7
 * (WP_ASYNC, PAGEMAP_SCAN) and a userfaultfd: skipped (77) otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "dirty.h"
#include "probe.h"
#include "testlib.h"
#include "uffd_compat.h"

#define PSZ		4096u
#define NPAGES		4096u	/* 16 MiB: more runs than one region array */
#define PREPOP		64u	/* pages the child writes before tracking */
#define BM_WORDS	(NPAGES / 64)

/* ---- the child: a stand-in source VMM ---- */

enum { VMM_API_NONE, VMM_API_PLAIN, VMM_API_WP };

struct cmd {
	char		op;	/* w write, r read, c check, s smaps, q quit */
	uint8_t		val;
	uint32_t	page;
};

struct vmm {
	pid_t		pid;
	int		sock;
	int		uffd, pagemap;	/* received */
	uint64_t	base;
};

static void
child_send(int sock, uint64_t base, int uffd, int pagemap)
{
	char cbuf[CMSG_SPACE(2 * sizeof(int))];
	struct iovec iov = { .iov_base = &base, .iov_len = sizeof(base) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
	    .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	int fds[2] = { uffd, pagemap };

	memset(cbuf, 0, sizeof(cbuf));
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(c), fds, sizeof(fds));
	if (sendmsg(sock, &mh, 0) != sizeof(base))
		_exit(3);
}

static uint8_t
child_do(char *map, const struct cmd *c)
{
	volatile char *p = map + (size_t)c->page * PSZ + 100;

	switch (c->op) {
	case 'w':
		*p = (char)c->val;
		return 1;
	case 'r':
		return (uint8_t)*p;
	case 'c':
		return (uint8_t)*p == c->val;
	case 's':
		return (uint8_t)testlib_vmflag(map, "uw");
	}
	return 0xff;
}

static void
child_main(int sock, int api)
{
	struct uffdio_api a = { .api = UFFD_API };
	struct cmd c;
	char *map;
	int memfd, uffd, pagemap;

	memfd = memfd_create("test-dirty", MFD_CLOEXEC);
	if (memfd < 0 || ftruncate(memfd, (off_t)NPAGES * PSZ) < 0)
		_exit(2);
	map = mmap(NULL, (size_t)NPAGES * PSZ, PROT_READ | PROT_WRITE,
	    MAP_SHARED, memfd, 0);
	if (map == MAP_FAILED)
		_exit(2);
	for (uint32_t i = 0; i < PREPOP; i++)
		map[(size_t)i * PSZ + 100] = (char)(i + 1);
	if ((uffd = probe_uffd_open(O_CLOEXEC | O_NONBLOCK, NULL)) < 0)
		_exit(2);
	if (api != VMM_API_NONE) {
		a.features = api == VMM_API_WP ? (UFFD_FEATURE_WP_ASYNC |
		    UFFD_FEATURE_WP_HUGETLBFS_SHMEM) : 0;
		if (ioctl(uffd, UFFDIO_API, &a) < 0)
			_exit(2);
	}
	if ((pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC)) < 0)
		_exit(2);
	child_send(sock, (uint64_t)(uintptr_t)map, uffd, pagemap);
	close(uffd);
	close(pagemap);
	while (read(sock, &c, sizeof(c)) == (ssize_t)sizeof(c) && c.op != 'q') {
		uint8_t r = child_do(map, &c);

		if (write(sock, &r, 1) != 1)
			_exit(3);
	}
	_exit(0);
}

static struct vmm
vmm_start(int api)
{
	char cbuf[CMSG_SPACE(2 * sizeof(int))];
	struct vmm v = { .uffd = -1, .pagemap = -1 };
	struct iovec iov = { .iov_base = &v.base, .iov_len = sizeof(v.base) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
	    .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;
	int sv[2], fds[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
	    0);
	v.pid = fork();
	assert_true(v.pid >= 0);
	if (v.pid == 0) {
		close(sv[0]);
		child_main(sv[1], api);
	}
	close(sv[1]);
	v.sock = sv[0];
	assert_int_equal(recvmsg(v.sock, &mh, MSG_CMSG_CLOEXEC),
	    sizeof(v.base));
	c = CMSG_FIRSTHDR(&mh);
	assert_non_null(c);
	assert_int_equal(c->cmsg_len, CMSG_LEN(sizeof(fds)));
	memcpy(fds, CMSG_DATA(c), sizeof(fds));
	v.uffd = fds[0];
	v.pagemap = fds[1];
	return v;
}

static uint8_t
vmm_cmd(struct vmm *v, char op, uint32_t page, uint8_t val)
{
	struct cmd c = { .op = op, .val = val, .page = page };
	uint8_t r = 0xee;

	assert_int_equal(write(v->sock, &c, sizeof(c)), sizeof(c));
	assert_int_equal(read(v->sock, &r, 1), 1);
	return r;
}

static void
vmm_stop(struct vmm *v)
{
	struct cmd c = { .op = 'q' };
	int st;

	assert_int_equal(write(v->sock, &c, sizeof(c)), sizeof(c));
	assert_int_equal(waitpid(v->pid, &st, 0), v->pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(v->sock);
}

static struct dirty *
vmm_track(struct vmm *v)
{
	struct dirty *d = NULL;
	char err[512] = "";
	int rc;

	rc = dirty_open(v->uffd, v->pagemap, v->base, (uint64_t)NPAGES * PSZ,
	    PSZ, &d, err, sizeof(err));
	if (rc < 0)
		printf("  dirty_open: %s\n", err);
	assert_int_equal(rc, 0);
	assert_int_equal(dirty_npages(d), NPAGES);
	return d;
}

/* ---- helpers ---- */

static bool
bit(const uint64_t *bm, uint32_t i)
{
	return (bm[i / 64] >> (i % 64)) & 1;
}

static uint32_t
count(const uint64_t *bm)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < BM_WORDS; i++)
		n += (uint32_t)__builtin_popcountll(bm[i]);
	return n;
}

/* Scans; checks the report is exactly pages[0..n). */
static void
scan_expect(struct dirty *d, const uint32_t *pages, uint32_t n)
{
	uint64_t bm[BM_WORDS], got = 0;

	memset(bm, 0, sizeof(bm));
	assert_int_equal(dirty_scan(d, bm, &got), 0);
	printf("  scan: %u page(s) reported, want %u\n", count(bm), n);
	for (uint32_t i = 0; i < n; i++) {
		if (!bit(bm, pages[i]))
			printf("  page %u not reported\n", pages[i]);
		assert_true(bit(bm, pages[i]));
	}
	assert_int_equal(count(bm), n);
	assert_int_equal(got, n);
}

static int
setup_kernel(void **state)
{
	char why[512];
	int rc = dirty_selftest(why, sizeof(why));

	if (rc < 0) {
		printf("SKIP: this kernel cannot track dirty pages: %s\n", why);
		exit(77);
	}
	return 0;
}

/* ---- cases ---- */

static void
test_dirty_selftest(void **state)
{
	char why[512] = "x";

	assert_int_equal(dirty_selftest(why, sizeof(why)), 0);
	assert_string_equal(why, "");
}

/* Written pages, and only those; a re-scan reports nothing; writing again
 * reports again; reads are not writes; never-populated pages written are
 * reported. */
static void
test_dirty_exact(void **state)
{
	struct vmm v = vmm_start(VMM_API_NONE);
	struct dirty *d = vmm_track(&v);
	const uint32_t w1[] = { 3, 64, 65, 200, NPAGES - 1 };
	const uint32_t w2[] = { 3 };
	const uint32_t w3[] = { 10, 2000 };
	uint64_t scans = 0, reported = 0;

	assert_int_equal(dirty_start(d), 0);
	scan_expect(d, NULL, 0);	/* nothing written since the protect */
	for (size_t i = 0; i < sizeof(w1) / sizeof(w1[0]); i++)
		assert_int_equal(vmm_cmd(&v, 'w', w1[i], 0x5a), 1);
	(void)vmm_cmd(&v, 'r', 10, 0);		/* populated, read */
	(void)vmm_cmd(&v, 'r', 1000, 0);	/* never populated, read */
	scan_expect(d, w1, 5);
	scan_expect(d, NULL, 0);		/* re-protected by the scan */
	assert_int_equal(vmm_cmd(&v, 'w', 3, 0x5b), 1);
	scan_expect(d, w2, 1);
	/* A page read (so mapped read-only) then written, and one read
	 * before tracking was reported above as not written. */
	assert_int_equal(vmm_cmd(&v, 'w', 10, 0x11), 1);
	assert_int_equal(vmm_cmd(&v, 'w', 2000, 0x12), 1);
	scan_expect(d, w3, 2);
	dirty_counters(d, &scans, &reported);
	assert_int_equal(scans, 5);
	assert_int_equal(reported, 8);
	dirty_close(d);
	vmm_stop(&v);
}

/* Every other page written: more runs than one region array holds, so
 * the scan loops on walk_end; and the bits land where they belong. */
static void
test_dirty_many_runs(void **state)
{
	struct vmm v = vmm_start(VMM_API_NONE);
	struct dirty *d = vmm_track(&v);
	static uint32_t pages[NPAGES / 2];

	assert_int_equal(dirty_start(d), 0);
	for (uint32_t i = 0; i < NPAGES / 2; i++) {
		pages[i] = 2 * i + 1;
		assert_int_equal(vmm_cmd(&v, 'w', pages[i], 7), 1);
	}
	scan_expect(d, pages, NPAGES / 2);
	scan_expect(d, NULL, 0);
	dirty_close(d);
	vmm_stop(&v);
}

/* Closing (as a cancelled migration does) removes the protection and the
 * registration: the child's memory holds what it wrote, it keeps writing
 * without any fault reaching anyone, and its mapping has no uffd-wp flag. */
static void
test_dirty_close_leaves_guest(void **state)
{
	struct vmm v = vmm_start(VMM_API_NONE);
	struct dirty *d = vmm_track(&v);

	assert_int_equal(vmm_cmd(&v, 's', 0, 0), 1);	/* registered: uw */
	assert_int_equal(dirty_start(d), 0);
	assert_int_equal(vmm_cmd(&v, 'w', 5, 0x42), 1);
	assert_int_equal(dirty_stop(d), 0);
	assert_int_equal(dirty_stop(d), 0);		/* idempotent */
	dirty_close(d);
	assert_int_equal(vmm_cmd(&v, 's', 0, 0), 0);	/* uw gone */
	for (uint32_t i = 0; i < PREPOP; i++)
		assert_int_equal(vmm_cmd(&v, 'c', i, i == 5 ? 0x42 : i + 1), 1);
	assert_int_equal(vmm_cmd(&v, 'w', 6, 0x43), 1);
	assert_int_equal(vmm_cmd(&v, 'w', 3000, 0x44), 1);
	assert_int_equal(vmm_cmd(&v, 'c', 6, 0x43), 1);
	assert_int_equal(vmm_cmd(&v, 'c', 3000, 0x44), 1);
	vmm_stop(&v);
}

/* The VMM did the handshake itself: with the tracking features that is
 * accepted; without them it is refused, saying why. */
static void
test_dirty_vmm_handshake(void **state)
{
	struct vmm v = vmm_start(VMM_API_WP);
	struct dirty *d = vmm_track(&v);
	const uint32_t w[] = { 77 };
	char err[512] = "";

	assert_int_equal(dirty_start(d), 0);
	assert_int_equal(vmm_cmd(&v, 'w', 77, 1), 1);
	scan_expect(d, w, 1);
	dirty_close(d);
	vmm_stop(&v);

	v = vmm_start(VMM_API_PLAIN);
	assert_int_equal(dirty_open(v.uffd, v.pagemap, v.base,
	    (uint64_t)NPAGES * PSZ, PSZ, &d, err, sizeof(err)), -EINVAL);
	printf("  plain handshake: %s\n", err);
	assert_null(d);
	assert_non_null(strstr(err, "UFFD_FEATURE_WP_ASYNC"));
	assert_non_null(strstr(err, "leave the handshake to the daemon"));
	vmm_stop(&v);
}

/* Descriptors that do not fit: a pagemap of another process (ours), a
 * descriptor that is not a userfaultfd, a range the VMM has not mapped,
 * a bad range. Each is refused with a message naming the problem. */
static void
test_dirty_refusals(void **state)
{
	struct vmm v = vmm_start(VMM_API_NONE);
	struct dirty *d = NULL;
	char err[512] = "";
	int own, pipefd[2];

	own = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	assert_true(own >= 0);
	assert_int_equal(dirty_open(v.uffd, own, v.base, (uint64_t)NPAGES * PSZ,
	    PSZ, &d, err, sizeof(err)), -EINVAL);
	printf("  foreign pagemap: %s\n", err);
	assert_non_null(strstr(err, "not the VMM's own /proc/self/pagemap"));
	assert_null(d);
	vmm_stop(&v);	/* its descriptors were taken (closed) by dirty_open */

	assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
	own = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	assert_int_equal(dirty_open(pipefd[0], own, 1ull << 30, PSZ, PSZ, &d,
	    err, sizeof(err)), -EINVAL);
	printf("  pipe: %s\n", err);
	assert_non_null(strstr(err, "is not a userfaultfd"));
	close(pipefd[1]);

	v = vmm_start(VMM_API_NONE);
	assert_int_equal(dirty_open(v.uffd, v.pagemap, v.base +
	    (uint64_t)NPAGES * PSZ * 1024, PSZ, PSZ, &d, err, sizeof(err)),
	    -EINVAL);
	printf("  unmapped: %s\n", err);
	assert_non_null(strstr(err, "not mapped in the VMM"));
	vmm_stop(&v);

	own = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	assert_int_equal(dirty_open(dup(own), own, 4095, PSZ, PSZ, &d, err,
	    sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "bad range"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dirty_selftest),
		cmocka_unit_test(test_dirty_exact),
		cmocka_unit_test(test_dirty_many_runs),
		cmocka_unit_test(test_dirty_close_leaves_guest),
		cmocka_unit_test(test_dirty_vmm_handshake),
		cmocka_unit_test(test_dirty_refusals),
	};

	return cmocka_run_group_tests(tests, setup_kernel, NULL);
}
