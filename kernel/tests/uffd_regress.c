/* uffd_regress.c - pins, on the running kernel, the userfaultfd/shmem
 * behaviour postcopyd's destination relies on (see kernel/README.md).
 *
 *   uffd_regress CASE      run one case: exit 0 pass, 1 fail, 77 skipped
 *   uffd_regress list      the case names
 *
 * Every case prints what it found ("found: ...") next to what it expects,
 * so a log shows the kernel's behaviour even when everything passes. Real
 * userfaultfd, real memfd, real threads; nothing is simulated.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <linux/kvm.h>
#include <linux/userfaultfd.h>

#include "uffd_compat.h"	/* daemon/: WP_ASYNC, PAGEMAP_SCAN (6.7 uAPI) */

#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW	_IO(0xAA, 0x00)
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT		21
#endif

#define PSZ		4096ul
#define HPSZ		(2ul << 20)
#define WAIT_MS		5000	/* an event that must come */
#define QUIET_MS	200	/* an event that must not come */
#define SKIP		77

static int failures;

static void __attribute__((format(printf, 1, 2)))
say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

/* expect(cond, "what was found", ...): prints ok/FAIL and counts. */
static bool __attribute__((format(printf, 2, 3)))
expect(bool ok, const char *fmt, ...)
{
	va_list ap;

	printf("  %s ", ok ? "ok  " : "FAIL");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	if (!ok)
		failures++;
	return ok;
}

static void
die(const char *what)
{
	printf("  FAIL %s: %s\n", what, strerror(errno));
	exit(1);
}

/* Kernel release as major*1000+minor ("6.18.44-..." -> 6018). */
static int
kver(void)
{
	struct utsname u;
	int maj = 0, min = 0;

	if (uname(&u) == 0)
		sscanf(u.release, "%d.%d", &maj, &min);
	return maj * 1000 + min;
}

static const char *
krelease(void)
{
	static struct utsname u;

	if (uname(&u) != 0)
		return "unknown";
	return u.release;
}

/* ---- userfaultfd and memory helpers ---- */

static int
uffd_new(uint64_t features)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	int dev, fd = -1;

	if ((dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC)) >= 0) {
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		close(dev);
	}
	if (fd < 0)
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	return fd;
}

static int
uffd_register(int uffd, void *p, size_t len, uint64_t mode, uint64_t *ioctls)
{
	struct uffdio_register r = {
		.range = { .start = (uintptr_t)p, .len = len }, .mode = mode };

	if (ioctl(uffd, UFFDIO_REGISTER, &r) < 0)
		return -errno;
	if (ioctls != NULL)
		*ioctls = r.ioctls;
	return 0;
}

/* CONTINUE; returns 0 or -errno, *mapped gets the field as the kernel left
 * it (the caller's sentinel when the kernel did not write it). */
static int
uffd_continue(int uffd, void *p, size_t len, uint64_t mode, int64_t *mapped)
{
	struct uffdio_continue c = {
		.range = { .start = (uintptr_t)p, .len = len }, .mode = mode,
		.mapped = 0x5a5a };
	int rc = ioctl(uffd, UFFDIO_CONTINUE, &c) < 0 ? -errno : 0;

	if (mapped != NULL)
		*mapped = c.mapped;
	return rc;
}

/* Waits up to ms for one page-fault event. 0, or -ETIMEDOUT. */
static int
uffd_wait(int uffd, struct uffd_msg *m, int ms)
{
	struct pollfd pfd = { .fd = uffd, .events = POLLIN };

	for (;;) {
		int n = poll(&pfd, 1, ms);

		if (n == 0)
			return -ETIMEDOUT;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (read(uffd, m, sizeof(*m)) == (ssize_t)sizeof(*m))
			return 0;
		if (errno != EAGAIN)
			return -errno;
	}
}

static const char *
fault_kind(const struct uffd_msg *m)
{
	if (m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_MINOR)
		return "MINOR";
	if (m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP)
		return "WP";
	return "MISSING";
}

static int
memfd_new(size_t size)
{
	int fd = memfd_create("uffd-regress", MFD_CLOEXEC);

	if (fd < 0)
		die("memfd_create");
	if (ftruncate(fd, (off_t)size) < 0)
		die("ftruncate");
	return fd;
}

/* A mapping aligned to align (for THP cases), or any address (align 0). */
static char *
map_at(int fd, size_t len, int prot, int flags, size_t align)
{
	char *p, *a;

	if (align == 0) {
		p = mmap(NULL, len, prot, flags, fd, 0);
		if (p == MAP_FAILED)
			die("mmap");
		return p;
	}
	p = mmap(NULL, len + align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
	    -1, 0);
	if (p == MAP_FAILED)
		die("mmap (reserve)");
	a = (char *)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1));
	if (mmap(a, len, prot, flags | MAP_FIXED, fd, 0) == MAP_FAILED)
		die("mmap (fixed)");
	return a;
}

/* /proc/self/pagemap entry of one address: bit 63 present, 62 swapped,
 * 61 file-page or shared-anon. */
static uint64_t
pagemap(const void *p)
{
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		die("open /proc/self/pagemap");
	if (pread(fd, &e, sizeof(e), (off_t)((uintptr_t)p / PSZ * 8)) !=
	    (ssize_t)sizeof(e))
		die("pread /proc/self/pagemap");
	close(fd);
	return e;
}

static bool
pte_present(const void *p)
{
	return (pagemap(p) >> 63) & 1;
}

/* A field ("ShmemPmdMapped:", "FilePmdMapped:") of the smaps entry of the
 * mapping that starts at p, in kB; -1 if absent. */
static long
smaps_kb(const void *p, const char *field)
{
	char line[512], want[32];
	bool in = false;
	long kb = -1;
	FILE *f = fopen("/proc/self/smaps", "re");

	if (f == NULL)
		die("open /proc/self/smaps");
	snprintf(want, sizeof(want), "%lx-", (unsigned long)(uintptr_t)p);
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, want, strlen(want)) == 0) {
			in = true;
			continue;
		}
		if (in && strncmp(line, field, strlen(field)) == 0) {
			sscanf(line + strlen(field), "%ld", &kb);
			break;
		}
		if (in && strncmp(line, "VmFlags:", 8) == 0)
			break;
	}
	fclose(f);
	return kb;
}

/* smaps "PmdMapped" of a shmem/file mapping (whichever field exists). */
static long
pmd_mapped_kb(const void *p)
{
	long a = smaps_kb(p, "ShmemPmdMapped:");
	long b = smaps_kb(p, "FilePmdMapped:");

	return (a > 0 ? a : 0) + (b > 0 ? b : 0);
}

/* ---- a thread that touches guest memory ---- */

struct toucher {
	pthread_t		t;
	volatile char		*addr;
	bool			write;
	char			wval;
	char			seen;
	atomic_bool		done;
};

static void *
toucher_main(void *arg)
{
	struct toucher *t = arg;

	if (t->write)
		t->addr[0] = t->wval;
	else
		t->seen = t->addr[0];
	atomic_store(&t->done, true);
	return NULL;
}

static void
toucher_start(struct toucher *t, volatile char *addr, bool write, char wval)
{
	memset(t, 0, sizeof(*t));
	t->addr = addr;
	t->write = write;
	t->wval = wval;
	atomic_init(&t->done, false);
	if (pthread_create(&t->t, NULL, toucher_main, t) != 0)
		die("pthread_create");
}

/* Waits up to ms for the toucher to finish; true if it did. */
static bool
toucher_wait(struct toucher *t, int ms)
{
	struct timespec ts = { 0, 1000000 };

	for (int i = 0; i < ms && !atomic_load(&t->done); i++)
		nanosleep(&ts, NULL);
	return atomic_load(&t->done);
}

/* ---- the cases ---- */

/* memfd mapped twice; MINOR on the guest mapping only. A read of a page in
 * the page cache raises MINOR; CONTINUE maps it; the reader sees the bytes
 * written through the alias. */
static int
case_minor_alias(void)
{
	size_t len = 4 * PSZ;
	int memfd = memfd_new(len), uffd, rc;
	char *guest = map_at(memfd, len, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
	char *alias = map_at(memfd, len, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
	struct uffd_msg m;
	struct toucher t;
	int64_t mapped;

	if ((uffd = uffd_new(UFFD_FEATURE_MINOR_SHMEM)) < 0)
		die("userfaultfd");
	rc = uffd_register(uffd, guest, len, UFFDIO_REGISTER_MODE_MINOR, NULL);
	expect(rc == 0, "register MINOR on the guest mapping: %s",
	    rc ? strerror(-rc) : "ok");
	memset(alias + PSZ, 0x5c, PSZ);		/* page 1 now in the page cache */
	expect(!pte_present(guest + PSZ),
	    "found: page 1 not mapped in the guest mapping after the alias write");
	toucher_start(&t, guest + PSZ + 123, false, 0);
	rc = uffd_wait(uffd, &m, WAIT_MS);
	expect(rc == 0 && m.event == UFFD_EVENT_PAGEFAULT,
	    "found: a fault event (%s)", rc ? strerror(-rc) : "event");
	if (rc == 0) {
		expect(strcmp(fault_kind(&m), "MINOR") == 0,
		    "found: %s fault (flags 0x%llx), expected MINOR",
		    fault_kind(&m), (unsigned long long)m.arg.pagefault.flags);
		expect(m.arg.pagefault.address == (uintptr_t)(guest + PSZ),
		    "found: fault address guest+0x%llx, expected the page "
		    "guest+0x1000", (unsigned long long)
		    (m.arg.pagefault.address - (uintptr_t)guest));
	}
	expect(!atomic_load(&t.done), "found: reader blocked until CONTINUE");
	rc = uffd_continue(uffd, guest + PSZ, PSZ, 0, &mapped);
	expect(rc == 0 && mapped == (int64_t)PSZ,
	    "found: CONTINUE rc %s mapped %lld, expected ok 4096",
	    rc ? strerror(-rc) : "ok", (long long)mapped);
	expect(toucher_wait(&t, WAIT_MS), "found: reader woken by CONTINUE");
	pthread_join(t.t, NULL);
	expect(t.seen == 0x5c, "found: reader saw 0x%02x, alias wrote 0x5c",
	    (unsigned char)t.seen);
	/* The mapping now shares the page cache: a later alias write shows. */
	alias[PSZ + 7] = 0x21;
	expect(guest[PSZ + 7] == 0x21,
	    "found: later alias write visible in the guest (0x%02x)",
	    (unsigned char)guest[PSZ + 7]);
	close(uffd);
	return 0;
}

/* MISSING|MINOR: a hole raises MISSING; write it through the alias, then
 * CONTINUE resolves it. */
static int
case_missing_minor(void)
{
	size_t len = 4 * PSZ;
	int memfd = memfd_new(len), uffd, rc;
	char *guest = map_at(memfd, len, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
	char *alias = map_at(memfd, len, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
	uint64_t ioctls = 0;
	struct uffd_msg m;
	struct toucher t;
	int64_t mapped;

	if ((uffd = uffd_new(UFFD_FEATURE_MINOR_SHMEM |
	    UFFD_FEATURE_MISSING_SHMEM)) < 0)
		die("userfaultfd");
	rc = uffd_register(uffd, guest, len, UFFDIO_REGISTER_MODE_MISSING |
	    UFFDIO_REGISTER_MODE_MINOR, &ioctls);
	expect(rc == 0, "register MISSING|MINOR: %s, ioctls 0x%llx",
	    rc ? strerror(-rc) : "ok", (unsigned long long)ioctls);
	expect((ioctls & (1ull << _UFFDIO_CONTINUE)) &&
	    (ioctls & (1ull << _UFFDIO_COPY)) && (ioctls & (1ull << _UFFDIO_WAKE)),
	    "found: CONTINUE, COPY and WAKE granted");

	for (int w = 0; w < 2; w++) {	/* a read, then a write, on holes */
		char *page = guest + (size_t)(2 + w) * PSZ;

		toucher_start(&t, page, w == 1, 0x77);
		rc = uffd_wait(uffd, &m, WAIT_MS);
		expect(rc == 0, "found: a fault event for the %s of a hole",
		    w ? "write" : "read");
		if (rc == 0) {
			expect(strcmp(fault_kind(&m), "MISSING") == 0,
			    "found: %s fault, expected MISSING", fault_kind(&m));
			expect(!!(m.arg.pagefault.flags &
			    UFFD_PAGEFAULT_FLAG_WRITE) == (w == 1),
			    "found: WRITE flag %s", (m.arg.pagefault.flags &
			    UFFD_PAGEFAULT_FLAG_WRITE) ? "set" : "clear");
			expect(m.arg.pagefault.address == (uintptr_t)page,
			    "found: address is the page");
		}
		memset(alias + (size_t)(2 + w) * PSZ, 0x33, PSZ);
		rc = uffd_continue(uffd, page, PSZ, 0, &mapped);
		expect(rc == 0 && mapped == (int64_t)PSZ,
		    "found: CONTINUE after the alias write: %s, mapped %lld",
		    rc ? strerror(-rc) : "ok", (long long)mapped);
		expect(toucher_wait(&t, WAIT_MS), "found: toucher woken");
		pthread_join(t.t, NULL);
		if (w == 0)
			expect(t.seen == 0x33, "found: reader saw 0x%02x, "
			    "expected 0x33", (unsigned char)t.seen);
		else
			expect(alias[3 * PSZ] == 0x77, "found: the guest's "
			    "write reached the memfd (0x%02x)",
			    (unsigned char)alias[3 * PSZ]);
	}
	close(uffd);
	return 0;
}

static void
expect_err(const char *what, int rc, int64_t mapped, int want_errno,
    int64_t want_mapped)
{
	expect(rc == -want_errno && mapped == want_mapped,
	    "%s: found %s, mapped %lld; expected %s, mapped %lld", what,
	    rc ? strerror(-rc) : "success", (long long)mapped,
	    want_errno ? strerror(want_errno) : "success",
	    (long long)want_mapped);
}

/* The error paths (the seed patch's point), errno and the mapped field. */
static int
case_errors(void)
{
	size_t size = 4 * PSZ, len = 8 * PSZ;	/* mapping twice the file */
	int memfd = memfd_new(size), uffd, rc, beyond, falloc;
	char *guest = map_at(memfd, len, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
	char *alias = map_at(memfd, size, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
	char *anon;
	int64_t mapped;

	if ((uffd = uffd_new(UFFD_FEATURE_MINOR_SHMEM |
	    UFFD_FEATURE_MISSING_SHMEM)) < 0)
		die("userfaultfd");
	rc = uffd_register(uffd, guest, len, UFFDIO_REGISTER_MODE_MISSING |
	    UFFDIO_REGISTER_MODE_MINOR, NULL);
	expect(rc == 0, "register 8 pages over a 4-page memfd: %s",
	    rc ? strerror(-rc) : "ok");

	/* page 0: a hole (never written) */
	rc = uffd_continue(uffd, guest, PSZ, 0, &mapped);
	expect_err("CONTINUE on a hole", rc, mapped, EFAULT, -EFAULT);

	/* page 1: in the page cache, CONTINUE twice */
	alias[PSZ] = 1;
	rc = uffd_continue(uffd, guest + PSZ, PSZ, 0, &mapped);
	expect_err("CONTINUE on a cached page", rc, mapped, 0, (int64_t)PSZ);
	rc = uffd_continue(uffd, guest + PSZ, PSZ, 0, &mapped);
	expect_err("CONTINUE on an already mapped page", rc, mapped, EEXIST,
	    -EEXIST);

	/* unaligned ranges and bad modes are refused before the page walk:
	 * mapped keeps what the caller put there (0x5a5a) */
	alias[2 * PSZ] = 2;
	rc = uffd_continue(uffd, guest + 2 * PSZ + 1, PSZ, 0, &mapped);
	expect_err("CONTINUE with an unaligned start", rc, mapped, EINVAL,
	    0x5a5a);
	rc = uffd_continue(uffd, guest + 2 * PSZ, PSZ - 1, 0, &mapped);
	expect_err("CONTINUE with an unaligned length", rc, mapped, EINVAL,
	    0x5a5a);
	rc = uffd_continue(uffd, guest + 2 * PSZ, PSZ, 1ull << 7, &mapped);
	expect_err("CONTINUE with an unknown mode bit", rc, mapped, EINVAL,
	    0x5a5a);
	rc = uffd_continue(uffd, guest + 2 * PSZ, 0, 0, &mapped);
	expect_err("CONTINUE of length 0", rc, mapped, EINVAL, 0x5a5a);

	/* MINOR registration on anonymous memory */
	anon = mmap(NULL, PSZ, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (anon == MAP_FAILED)
		die("mmap anon");
	rc = uffd_register(uffd, anon, PSZ, UFFDIO_REGISTER_MODE_MINOR, NULL);
	expect(rc == -EINVAL, "register MINOR on anonymous memory: found %s, "
	    "expected %s", rc ? strerror(-rc) : "success", strerror(EINVAL));
	rc = uffd_register(uffd, anon, PSZ, UFFDIO_REGISTER_MODE_MISSING, NULL);
	expect(rc == 0, "register MISSING on the same anonymous page: found %s"
	    " (control: the range itself is fine)", rc ? strerror(-rc) : "ok");
	munmap(anon, PSZ);

	/* page 5 of the mapping lies beyond i_size (4 pages): mainline
	 * looks the page up with shmem_get_folio/shmem_getpage, which refuses
	 * an index past i_size with EINVAL before the install helper's own
	 * i_size check (EFAULT) is reached. */
	rc = beyond = uffd_continue(uffd, guest + 5 * PSZ, PSZ, 0, &mapped);
	expect_err("CONTINUE beyond i_size", rc, mapped, EINVAL, -EINVAL);
	if (rc == -EFAULT)
		say("  note: EFAULT here is the install helper's i_size check "
		    "(the carried v4 patch's find_lock_page path)");

	/* page 3: fallocated, never written. 5.19 made the lookup
	 * SGP_NOALLOC: the page is zeroed and mapped. Before: EFAULT. */
	if (fallocate(memfd, 0, 3 * PSZ, PSZ) < 0)
		die("fallocate");
	rc = falloc = uffd_continue(uffd, guest + 3 * PSZ, PSZ, 0, &mapped);
	if (kver() >= 5019) {
		expect_err("CONTINUE on a fallocated, unwritten page (kernel "
		    ">= 5.19)", rc, mapped, 0, (int64_t)PSZ);
		if (rc == 0)
			expect(guest[3 * PSZ] == 0 && guest[4 * PSZ - 1] == 0,
			    "found: it reads as zeroes");
	} else {
		expect_err("CONTINUE on a fallocated, unwritten page (kernel "
		    "< 5.19)", rc, mapped, EFAULT, -EFAULT);
	}
	say("  found on %s: beyond i_size -> %s; fallocated-unwritten -> %s",
	    krelease(), beyond ? strerror(-beyond) : "success",
	    falloc ? strerror(-falloc) : "success (zero page mapped)");
	close(uffd);
	return 0;
}

/* MAP_PRIVATE guest mapping (the case the seed patch fixed): after CONTINUE
 * a read sees the page cache; a write copies on write, the memfd keeps its
 * bytes. */
static int
case_private(void)
{
	size_t len = 2 * PSZ;
	int memfd = memfd_new(len), uffd, rc;
	char *guest = map_at(memfd, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, 0);
	char *alias = map_at(memfd, len, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
	struct uffd_msg m;
	struct toucher t;
	int64_t mapped;
	uint64_t pm;
	char c = 0;

	if ((uffd = uffd_new(UFFD_FEATURE_MINOR_SHMEM)) < 0)
		die("userfaultfd");
	rc = uffd_register(uffd, guest, len, UFFDIO_REGISTER_MODE_MINOR, NULL);
	expect(rc == 0, "register MINOR on a MAP_PRIVATE memfd mapping: %s",
	    rc ? strerror(-rc) : "ok");
	memset(alias, 0x41, PSZ);
	toucher_start(&t, guest + 10, false, 0);
	rc = uffd_wait(uffd, &m, WAIT_MS);
	expect(rc == 0 && strcmp(fault_kind(&m), "MINOR") == 0,
	    "found: %s fault on the private mapping",
	    rc ? "no" : fault_kind(&m));
	rc = uffd_continue(uffd, guest, PSZ, 0, &mapped);
	expect_err("CONTINUE on the private mapping", rc, mapped, 0,
	    (int64_t)PSZ);
	expect(toucher_wait(&t, WAIT_MS), "found: reader woken");
	pthread_join(t.t, NULL);
	expect(t.seen == 0x41, "found: read sees the page cache (0x%02x)",
	    (unsigned char)t.seen);
	pm = pagemap(guest);
	expect(((pm >> 63) & 1) && ((pm >> 61) & 1),
	    "found: pagemap present=%d file=%d (the page-cache page is mapped)",
	    (int)((pm >> 63) & 1), (int)((pm >> 61) & 1));
	/* The write runs on a thread: if the kernel ever raised a fault for
	 * it, the test must fail, not hang. */
	toucher_start(&t, guest + 10, true, 0x42);
	if (!expect(toucher_wait(&t, WAIT_MS), "found: the write completes "
	    "without a userfault (copy on write)")) {
		(void)uffd_wait(uffd, &m, 0);
		rc = uffd_continue(uffd, guest, PSZ, 0, NULL);
	}
	pthread_join(t.t, NULL);
	pm = pagemap(guest);
	if (pread(memfd, &c, 1, 10) != 1)
		die("pread memfd");
	expect(guest[10] == 0x42, "found: the guest reads its own write (0x%02x)",
	    (unsigned char)guest[10]);
	expect(c == 0x41 && alias[10] == 0x41,
	    "found: memfd unchanged (0x%02x), alias 0x%02x", (unsigned char)c,
	    (unsigned char)alias[10]);
	expect(((pm >> 63) & 1) && !((pm >> 61) & 1),
	    "found: pagemap present=%d file=%d (now a private anonymous copy)",
	    (int)((pm >> 63) & 1), (int)((pm >> 61) & 1));
	close(uffd);
	return 0;
}

/* No fault-around: resolving one page leaves its cached neighbours
 * unmapped, and they still fault. A control mapping without userfaultfd
 * shows what fault-around would otherwise do. */
static int
case_no_faultaround(void)
{
	const int n = 16, mid = 8;
	size_t len = (size_t)n * PSZ;
	int memfd = memfd_new(len), uffd, rc, around = 0, mappedn = 0;
	char *guest = map_at(memfd, len, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
	char *alias = map_at(memfd, len, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
	char *ctl = map_at(memfd, len, PROT_READ, MAP_SHARED, 0);
	struct uffd_msg m;
	struct toucher t;
	volatile char sink;

	memset(alias, 0x11, len);		/* every page cached */
	sink = ctl[mid * PSZ];
	(void)sink;
	for (int i = 0; i < n; i++)
		around += pte_present(ctl + (size_t)i * PSZ);
	say("  found: control (no userfaultfd): one read mapped %d of %d "
	    "cached pages (fault-around %s)", around, n,
	    around > 1 ? "active" : "inactive");

	if ((uffd = uffd_new(UFFD_FEATURE_MINOR_SHMEM)) < 0)
		die("userfaultfd");
	rc = uffd_register(uffd, guest, len, UFFDIO_REGISTER_MODE_MINOR, NULL);
	expect(rc == 0, "register MINOR");
	toucher_start(&t, guest + (size_t)mid * PSZ, false, 0);
	rc = uffd_wait(uffd, &m, WAIT_MS);
	expect(rc == 0, "found: MINOR fault on page %d", mid);
	rc = uffd_continue(uffd, guest + (size_t)mid * PSZ, PSZ, 0, NULL);
	expect(rc == 0, "CONTINUE page %d", mid);
	toucher_wait(&t, WAIT_MS);
	pthread_join(t.t, NULL);
	for (int i = 0; i < n; i++)
		mappedn += pte_present(guest + (size_t)i * PSZ);
	expect(mappedn == 1 && pte_present(guest + (size_t)mid * PSZ),
	    "found: %d of %d pages mapped after resolving one (expected 1)",
	    mappedn, n);
	for (int d = -1; d <= 1; d += 2) {
		char *nb = guest + (size_t)(mid + d) * PSZ;

		toucher_start(&t, nb, false, 0);
		rc = uffd_wait(uffd, &m, WAIT_MS);
		expect(rc == 0 && m.arg.pagefault.address == (uintptr_t)nb &&
		    strcmp(fault_kind(&m), "MINOR") == 0,
		    "found: neighbour page %d still raises its own MINOR fault",
		    mid + d);
		(void)uffd_continue(uffd, nb, PSZ, 0, NULL);
		toucher_wait(&t, WAIT_MS);
		pthread_join(t.t, NULL);
	}
	close(uffd);
	return 0;
}

/* MADV_PAGEOUT a cached page; it still faults MINOR and CONTINUE brings it
 * back. shmem pages can only go to swap. */
static int
case_pageout(void)
{
	char line[256];
	int swaps = 0, memfd, uffd, rc;
	FILE *f = fopen("/proc/swaps", "re");
	size_t len = 2 * PSZ;
	char *guest, *alias;
	struct uffd_msg m;
	struct toucher t;
	uint64_t pm;

	if (f != NULL) {
		while (fgets(line, sizeof(line), f) != NULL)
			swaps++;
		fclose(f);
		swaps--;	/* header */
	}
	if (swaps <= 0) {
		say("SKIP: no swap on this machine (/proc/swaps lists none): "
		    "MADV_PAGEOUT can only push shmem pages out to swap, so "
		    "a swapped-out MINOR fault cannot be produced here");
		return SKIP;
	}
	memfd = memfd_new(len);
	guest = map_at(memfd, len, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
	alias = map_at(memfd, len, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
	memset(alias, 0x6b, PSZ);
	rc = madvise(alias, PSZ, MADV_PAGEOUT);
	expect(rc == 0, "MADV_PAGEOUT: %s", rc ? strerror(errno) : "ok");
	pm = pagemap(alias);
	say("  found: after MADV_PAGEOUT the alias pagemap says present=%d "
	    "swapped=%d", (int)((pm >> 63) & 1), (int)((pm >> 62) & 1));
	if ((pm >> 63) & 1) {
		say("SKIP: the kernel kept the page resident despite "
		    "MADV_PAGEOUT (swap full or reclaim refused)");
		return SKIP;
	}
	if ((uffd = uffd_new(UFFD_FEATURE_MINOR_SHMEM)) < 0)
		die("userfaultfd");
	rc = uffd_register(uffd, guest, len, UFFDIO_REGISTER_MODE_MINOR, NULL);
	expect(rc == 0, "register MINOR");
	toucher_start(&t, guest + 5, false, 0);
	rc = uffd_wait(uffd, &m, WAIT_MS);
	expect(rc == 0 && strcmp(fault_kind(&m), "MINOR") == 0,
	    "found: %s fault for the swapped-out page",
	    rc ? "no" : fault_kind(&m));
	rc = uffd_continue(uffd, guest, PSZ, 0, NULL);
	expect(rc == 0, "found: CONTINUE swaps it in: %s",
	    rc ? strerror(-rc) : "ok");
	expect(toucher_wait(&t, WAIT_MS), "found: reader woken");
	pthread_join(t.t, NULL);
	expect(t.seen == 0x6b, "found: reader saw 0x%02x, expected 0x6b",
	    (unsigned char)t.seen);
	close(uffd);
	return 0;
}

/* CONTINUE with DONTWAKE maps without waking; UFFDIO_WAKE wakes. */
static int
case_dontwake_wake(void)
{
	size_t len = 2 * PSZ;
	int memfd = memfd_new(len), uffd, rc;
	char *guest = map_at(memfd, len, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
	char *alias = map_at(memfd, len, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
	struct uffdio_range wake = { .start = (uintptr_t)guest, .len = PSZ };
	struct uffd_msg m;
	struct toucher t;
	int64_t mapped;

	if ((uffd = uffd_new(UFFD_FEATURE_MINOR_SHMEM)) < 0)
		die("userfaultfd");
	rc = uffd_register(uffd, guest, len, UFFDIO_REGISTER_MODE_MINOR, NULL);
	expect(rc == 0, "register MINOR");
	alias[0] = 0x19;
	toucher_start(&t, guest, false, 0);
	rc = uffd_wait(uffd, &m, WAIT_MS);
	expect(rc == 0, "found: MINOR fault");
	rc = uffd_continue(uffd, guest, PSZ, UFFDIO_CONTINUE_MODE_DONTWAKE,
	    &mapped);
	expect_err("CONTINUE with DONTWAKE", rc, mapped, 0, (int64_t)PSZ);
	expect(pte_present(guest), "found: the page is mapped");
	expect(!toucher_wait(&t, QUIET_MS),
	    "found: the reader is still asleep %d ms later", QUIET_MS);
	rc = ioctl(uffd, UFFDIO_WAKE, &wake) < 0 ? -errno : 0;
	expect(rc == 0, "UFFDIO_WAKE: %s", rc ? strerror(-rc) : "ok");
	expect(toucher_wait(&t, WAIT_MS), "found: UFFDIO_WAKE woke the reader");
	pthread_join(t.t, NULL);
	expect(t.seen == 0x19, "found: reader saw 0x%02x", (unsigned char)t.seen);
	close(uffd);
	return 0;
}

/* "pending:" and "total:" of the userfaultfd's fdinfo. */
static void
uffd_waiters(int uffd, long *pending, long *total)
{
	char path[64], line[128];
	FILE *f;

	*pending = *total = -1;
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", uffd);
	if ((f = fopen(path, "re")) == NULL)
		die("open fdinfo");
	while (fgets(line, sizeof(line), f) != NULL) {
		sscanf(line, "pending: %ld", pending);
		sscanf(line, "total: %ld", total);
	}
	fclose(f);
}

/* Many threads fault on one page; one CONTINUE wakes them all. */
static int
case_many_waiters(void)
{
	enum { NT = 16 };
	size_t len = 2 * PSZ;
	int memfd = memfd_new(len), uffd, rc, woken = 0, events = 0;
	char *guest = map_at(memfd, len, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
	char *alias = map_at(memfd, len, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
	struct toucher t[NT];
	struct uffd_msg m;
	long pending = 0, total = 0;
	struct timespec ts = { 0, 1000000 };

	if ((uffd = uffd_new(UFFD_FEATURE_MINOR_SHMEM)) < 0)
		die("userfaultfd");
	rc = uffd_register(uffd, guest, len, UFFDIO_REGISTER_MODE_MINOR, NULL);
	expect(rc == 0, "register MINOR");
	memset(alias + PSZ, 0x2a, PSZ);
	for (int i = 0; i < NT; i++)
		toucher_start(&t[i], guest + PSZ + (size_t)i * 8, false, 0);
	/* Wait until every thread sleeps in the fault (fdinfo "total"). */
	for (int ms = 0; ms < WAIT_MS; ms++) {
		uffd_waiters(uffd, &pending, &total);
		if (total >= NT)
			break;
		nanosleep(&ts, NULL);
	}
	while (uffd_wait(uffd, &m, 0) == 0)
		events++;
	expect(total == NT, "found: %ld threads waiting in the fault (fdinfo "
	    "total), %d events read", total, events);
	rc = uffd_continue(uffd, guest + PSZ, PSZ, 0, NULL);
	expect(rc == 0, "one CONTINUE: %s", rc ? strerror(-rc) : "ok");
	for (int i = 0; i < NT; i++) {
		if (toucher_wait(&t[i], WAIT_MS) && t[i].seen == 0x2a)
			woken++;
	}
	expect(woken == NT, "found: %d of %d threads woken with the right "
	    "byte", woken, NT);
	for (int i = 0; i < NT; i++) {
		if (!atomic_load(&t[i].done))
			(void)ioctl(uffd, UFFDIO_WAKE, &(struct uffdio_range){
			    (uintptr_t)guest, len });
		pthread_join(t[i].t, NULL);
	}
	uffd_waiters(uffd, &pending, &total);
	expect(total == 0, "found: %ld waiters left", total);
	close(uffd);
	return 0;
}

/* ---- shmem THP ---- */

static void
read_sys(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, len - 1);

	if (fd >= 0)
		close(fd);
	if (n <= 0) {
		snprintf(buf, len, "(absent)");
		return;
	}
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
}

struct resolver {
	pthread_t	t;
	int		uffd;
	char		*base;
	size_t		len;
	int		faults;
	int		bad;		/* not MINOR, or not 4 KiB aligned */
	bool		*seen;		/* per 4 KiB page */
	int		dup;		/* same page faulted twice */
	atomic_bool	stop;		/* the toucher is done */
};

static void *
resolver_main(void *arg)
{
	struct resolver *r = arg;
	struct uffd_msg m;

	for (;;) {
		uintptr_t a;
		size_t idx;

		if (uffd_wait(r->uffd, &m, 20) < 0) {
			if (atomic_load(&r->stop))
				break;
			continue;
		}
		a = (uintptr_t)m.arg.pagefault.address;
		idx = (a - (uintptr_t)r->base) / PSZ;

		r->faults++;
		if (strcmp(fault_kind(&m), "MINOR") != 0 || (a & (PSZ - 1)) ||
		    idx >= r->len / PSZ) {
			r->bad++;
			continue;
		}
		if (r->seen[idx])
			r->dup++;
		r->seen[idx] = true;
		(void)uffd_continue(r->uffd, (void *)a, PSZ, 0, NULL);
	}
	return NULL;
}

/* The guard check on one file: the alias writes 2 MiB (unguarded when
 * want_huge, so the file may get a huge page), then the guest mapping,
 * MINOR-registered and guarded with MADV_NOHUGEPAGE, touches every 4 KiB
 * page: each must raise its own 4 KiB MINOR fault and nothing may be
 * PMD-mapped in the guest. */
static void
thp_guard_check(const char *label, int fd, bool guard)
{
	char *alias = map_at(fd, HPSZ, PROT_READ | PROT_WRITE, MAP_SHARED, HPSZ);
	char *guest = map_at(fd, HPSZ, PROT_READ | PROT_WRITE, MAP_SHARED, HPSZ);
	struct resolver r = { .uffd = -1 };
	long alias_pmd, guest_pmd;
	volatile char sink = 0;
	int rc;

	(void)madvise(alias, HPSZ, MADV_HUGEPAGE);	/* "advise" settings */
	memset(alias, 0x55, HPSZ);
	alias_pmd = pmd_mapped_kb(alias);
	say("  found: %s: unguarded alias write -> %ld kB PMD-mapped "
	    "(file %s backed by a huge page here)", label, alias_pmd,
	    alias_pmd > 0 ? "IS" : "is not");

	if (guard) {
		rc = madvise(guest, HPSZ, MADV_NOHUGEPAGE); /* the daemon's guard */
		expect(rc == 0, "%s: MADV_NOHUGEPAGE on the guest mapping",
		    label);
	} else {
		(void)madvise(guest, HPSZ, MADV_HUGEPAGE);
	}
	r.uffd = uffd_new(UFFD_FEATURE_MINOR_SHMEM);
	if (r.uffd < 0)
		die("userfaultfd");
	rc = uffd_register(r.uffd, guest, HPSZ, UFFDIO_REGISTER_MODE_MINOR,
	    NULL);
	expect(rc == 0, "%s: register MINOR on the %s guest mapping: %s",
	    label, guard ? "guarded" : "unguarded", rc ? strerror(-rc) : "ok");
	r.base = guest;
	r.len = HPSZ;
	atomic_init(&r.stop, false);
	r.seen = calloc(HPSZ / PSZ, sizeof(bool));
	if (r.seen == NULL || pthread_create(&r.t, NULL, resolver_main, &r))
		die("resolver");
	for (size_t off = 0; off < HPSZ; off += PSZ)
		sink += guest[off];
	(void)sink;
	guest_pmd = pmd_mapped_kb(guest);
	atomic_store(&r.stop, true);
	pthread_join(r.t, NULL);
	if (guard) {
		expect(r.faults == (int)(HPSZ / PSZ) && r.bad == 0 &&
		    r.dup == 0, "%s: found %d faults (%d not 4 KiB MINOR, %d "
		    "repeated) for %lu pages: every fault at 4 KiB", label,
		    r.faults, r.bad, r.dup, HPSZ / PSZ);
		expect(guest_pmd == 0, "%s: found %ld kB PMD-mapped in the "
		    "guarded guest mapping", label, guest_pmd);
	} else {
		say("  found: %s, control WITHOUT the guard (MADV_HUGEPAGE): "
		    "%d faults for %lu pages, %ld kB PMD-mapped (reported, not "
		    "asserted)", label, r.faults, HPSZ / PSZ, guest_pmd);
	}
	free(r.seen);
	close(r.uffd);
	munmap(alias, HPSZ);
	munmap(guest, HPSZ);
}

/* A tmpfs mounted huge=always in a private mount namespace: a shmem file
 * that does get huge pages even where shmem_enabled=never, to show the
 * guard holds against a real huge folio. Runs in a child. Returns its exit
 * status, SKIP when the mount cannot be made. */
static int
thp_tmpfs_child(void)
{
	char dir[] = "/tmp/uffd-regress-XXXXXX", path[64];
	pid_t pid;
	int st;

	fflush(stdout);
	if ((pid = fork()) < 0)
		die("fork");
	if (pid == 0) {
		int fd;

		if (unshare(CLONE_NEWNS) < 0 ||
		    mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
			say("  found: private mount namespace: %s; tmpfs "
			    "huge=always part skipped", strerror(errno));
			_exit(SKIP);
		}
		if (mkdtemp(dir) == NULL)
			die("mkdtemp");
		if (mount("tmpfs", dir, "tmpfs", 0, "huge=always,size=8m") < 0) {
			say("  found: tmpfs huge=always: %s; part skipped",
			    strerror(errno));
			rmdir(dir);
			_exit(SKIP);
		}
		snprintf(path, sizeof(path), "%s/guest", dir);
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0 || ftruncate(fd, HPSZ) < 0)
			die("tmpfs file");
		thp_guard_check("tmpfs huge=always", fd, true);
		thp_guard_check("tmpfs huge=always", fd, false);
		close(fd);
		umount2(dir, MNT_DETACH);
		rmdir(dir);
		_exit(failures ? 1 : 0);
	}
	if (waitpid(pid, &st, 0) != pid)
		die("waitpid");
	return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

static int
case_thp(void)
{
	char global[128], pmd[128];
	int memfd, rc;

	read_sys("/sys/kernel/mm/transparent_hugepage/shmem_enabled", global,
	    sizeof(global));
	read_sys("/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/"
	    "shmem_enabled", pmd, sizeof(pmd));
	say("  found: shmem_enabled: %s; hugepages-2048kB/shmem_enabled: %s",
	    global, pmd);
	if (strcmp(global, "(absent)") == 0)
		say("  found: no transparent hugepages in this kernel");

	memfd = memfd_new(HPSZ);
	thp_guard_check("memfd", memfd, true);
	if (strstr(global, "[never]") != NULL || strstr(global, "[deny]") != NULL)
		say("  found: a memfd cannot be backed by huge pages here "
		    "(shmem_enabled never/deny)");
	close(memfd);

	rc = thp_tmpfs_child();
	if (rc == SKIP)
		say("  note: the huge=always tmpfs part was skipped (see above);"
		    " the memfd part ran");
	else
		expect(rc == 0, "tmpfs huge=always part: exit %d", rc);
	return 0;
}

/* ---- asynchronous write protection: precopy's dirty tracking ----
 *
 * The source daemon tracks the guest's writes through the VMM's own
 * userfaultfd and /proc/self/pagemap, passed to it (daemon/dirty.c). */

#define WPA_FEATURES	(UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED | \
	UFFD_FEATURE_WP_HUGETLBFS_SHMEM)
#define WPA_PAGES	16

/* 77 unless this kernel has WP_ASYNC (6.7). */
static int
wpa_check(void)
{
	int fd = uffd_new(WPA_FEATURES);

	if (fd < 0) {
		say("SKIP: UFFDIO_API with WP_ASYNC|WP_UNPOPULATED|"
		    "WP_HUGETLBFS_SHMEM: %s (kernel %s; needs Linux >= 6.7)",
		    strerror(-fd), krelease());
		return SKIP;
	}
	close(fd);
	return 0;
}

/* Registers [p, p+len) for WP through uffd and write-protects it. */
static void
wpa_protect(int uffd, void *p, size_t len)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = (uintptr_t)p, .len = len },
		.mode = UFFDIO_WRITEPROTECT_MODE_WP };
	uint64_t ioctls = 0;
	int rc;

	rc = uffd_register(uffd, p, len, UFFDIO_REGISTER_MODE_WP, &ioctls);
	expect(rc == 0, "register WP: %s", rc ? strerror(-rc) : "ok");
	expect(ioctls & ((uint64_t)1 << _UFFDIO_WRITEPROTECT),
	    "found: UFFDIO_WRITEPROTECT granted (ioctls 0x%llx)",
	    (unsigned long long)ioctls);
	rc = ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) < 0 ? -errno : 0;
	expect(rc == 0, "UFFDIO_WRITEPROTECT: %s", rc ? strerror(-rc) : "ok");
}

/* PAGEMAP_SCAN for PAGE_IS_WRITTEN over at most 64 pages at p: a bitmap
 * of written pages, or -errno. wp: PM_SCAN_WP_MATCHING (re-protect). */
static int64_t
wpa_scan(int pagemap, const void *p, size_t npages, bool wp)
{
	struct page_region vec[WPA_PAGES * 4];
	struct pm_scan_arg a = {
		.size = sizeof(a),
		.flags = PM_SCAN_CHECK_WPASYNC | (wp ? PM_SCAN_WP_MATCHING : 0),
		.start = (uintptr_t)p, .end = (uintptr_t)p + npages * PSZ,
		.vec = (uintptr_t)vec, .vec_len = sizeof(vec) / sizeof(vec[0]),
		.category_mask = PAGE_IS_WRITTEN,
		.return_mask = PAGE_IS_WRITTEN };
	uint64_t bits = 0;
	int n = ioctl(pagemap, PAGEMAP_SCAN, &a);

	if (n < 0)
		return -errno;
	for (int i = 0; i < n; i++)
		for (uint64_t q = vec[i].start; q < vec[i].end; q += PSZ)
			bits |= (uint64_t)1 << ((q - (uintptr_t)p) / PSZ);
	return (int64_t)bits;
}

static void
wpa_expect(const char *what, int64_t got, uint64_t want)
{
	if (got < 0) {
		expect(false, "%s: PAGEMAP_SCAN: %s", what, strerror((int)-got));
		return;
	}
	expect((uint64_t)got == want, "%s: found written pages 0x%llx "
	    "(want 0x%llx)", what, (unsigned long long)got,
	    (unsigned long long)want);
}

static int
pagemap_open(void)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		die("open /proc/self/pagemap");
	return fd;
}

/* The child of wp_async_cross: a VMM with a memfd guest, half populated.
 * Sends a userfaultfd it did no handshake on and its own pagemap, then
 * writes the pages it is told to (one byte each; 0xff ends). */
static void __attribute__((noreturn))
wpa_child(int sock)
{
	char cbuf[CMSG_SPACE(2 * sizeof(int))];
	size_t len = WPA_PAGES * PSZ;
	int memfd = memfd_new(len), fds[2];
	char *g = map_at(memfd, len, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
	uint64_t base = (uintptr_t)g;
	struct iovec iov = { .iov_base = &base, .iov_len = sizeof(base) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
	    .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	unsigned char page;

	for (size_t i = 0; i < WPA_PAGES / 2; i++)
		g[i * PSZ] = 1;
	fds[0] = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	fds[1] = pagemap_open();
	if (fds[0] < 0)
		_exit(2);
	memset(cbuf, 0, sizeof(cbuf));
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(c), fds, sizeof(fds));
	if (sendmsg(sock, &mh, 0) != (ssize_t)sizeof(base))
		_exit(2);
	while (read(sock, &page, 1) == 1 && page != 0xff) {
		g[(size_t)page * PSZ + 7] = (char)page;
		if (write(sock, &page, 1) != 1)
			_exit(2);
	}
	_exit(0);
}

static void
wpa_child_write(int sock, unsigned char page)
{
	unsigned char ack = 0;
	struct pollfd p = { .fd = sock, .events = POLLIN };

	if (write(sock, &page, 1) != 1)
		die("write to the child");
	expect(poll(&p, 1, WAIT_MS) == 1 && read(sock, &ack, 1) == 1 &&
	    ack == page, "found: the child wrote page %u without blocking",
	    page);
}

/* Another process's memory, through its passed userfaultfd (handshake
 * done here) and its passed /proc/self/pagemap. */
static int
case_wp_async_cross(void)
{
	char cbuf[CMSG_SPACE(2 * sizeof(int))];
	uint64_t base = 0;
	struct iovec iov = { .iov_base = &base, .iov_len = sizeof(base) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
	    .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct uffdio_api api = { .api = UFFD_API, .features = WPA_FEATURES };
	int sv[2], fds[2], st = 0;
	unsigned char quit = 0xff;
	pid_t pid;

	if (wpa_check() == SKIP)
		return SKIP;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		die("socketpair");
	if ((pid = fork()) < 0)
		die("fork");
	if (pid == 0) {
		close(sv[0]);
		wpa_child(sv[1]);
	}
	close(sv[1]);
	if (recvmsg(sv[0], &mh, MSG_CMSG_CLOEXEC) != (ssize_t)sizeof(base) ||
	    CMSG_FIRSTHDR(&mh) == NULL)
		die("receiving the child's descriptors");
	memcpy(fds, CMSG_DATA(CMSG_FIRSTHDR(&mh)), sizeof(fds));
	expect(ioctl(fds[0], UFFDIO_API, &api) == 0, "UFFDIO_API with "
	    "WP_ASYNC on the child's userfaultfd, from this process");
	wpa_protect(fds[0], (void *)(uintptr_t)base, WPA_PAGES * PSZ);
	wpa_expect("after the protect", wpa_scan(fds[1],
	    (void *)(uintptr_t)base, WPA_PAGES, true), 0);
	wpa_child_write(sv[0], 2);		/* populated */
	wpa_child_write(sv[0], 9);		/* never populated */
	wpa_child_write(sv[0], 15);
	wpa_expect("child wrote 2, 9, 15", wpa_scan(fds[1],
	    (void *)(uintptr_t)base, WPA_PAGES, true),
	    1u << 2 | 1u << 9 | 1u << 15);
	wpa_expect("re-scan", wpa_scan(fds[1], (void *)(uintptr_t)base,
	    WPA_PAGES, true), 0);
	wpa_child_write(sv[0], 9);
	wpa_expect("child wrote 9 again", wpa_scan(fds[1],
	    (void *)(uintptr_t)base, WPA_PAGES, true), 1u << 9);
	if (write(sv[0], &quit, 1) != 1 || waitpid(pid, &st, 0) != pid)
		die("ending the child");
	expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "found: child exit %d",
	    WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	close(fds[0]);
	close(fds[1]);
	close(sv[0]);
	return 0;
}

/* Pages never populated: protected by UFFDIO_WRITEPROTECT (shmem: PTE
 * markers; anonymous: WP_UNPOPULATED), reported once written, not when
 * only read. */
static void
wpa_unpopulated(const char *kind, char *p, int pagemap)
{
	int uffd = uffd_new(WPA_FEATURES);
	struct uffd_msg m;
	volatile char sink;

	if (uffd < 0)
		die("userfaultfd");
	wpa_protect(uffd, p, WPA_PAGES * PSZ);
	sink = p[1 * PSZ];		/* read-only touch */
	(void)sink;
	p[3 * PSZ] = 3;
	p[4 * PSZ + 100] = 4;
	p[12 * PSZ] = 12;
	printf("  %s:\n", kind);
	wpa_expect("  wrote 3, 4, 12 (never populated), read 1",
	    wpa_scan(pagemap, p, WPA_PAGES, true),
	    1u << 3 | 1u << 4 | 1u << 12);
	wpa_expect("  re-scan", wpa_scan(pagemap, p, WPA_PAGES, true), 0);
	expect(read(uffd, &m, sizeof(m)) < 0 && errno == EAGAIN,
	    "  found: no message queued on the userfaultfd (async)");
	close(uffd);
}

static int
case_wp_async_unpopulated(void)
{
	size_t len = WPA_PAGES * PSZ;
	int memfd, pagemap;
	char *shm, *anon;

	if (wpa_check() == SKIP)
		return SKIP;
	memfd = memfd_new(len);
	pagemap = pagemap_open();
	shm = map_at(memfd, len, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
	anon = map_at(-1, len, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, 0);
	wpa_unpopulated("memfd (shmem)", shm, pagemap);
	wpa_unpopulated("anonymous", anon, pagemap);
	munmap(shm, len);
	munmap(anon, len);
	close(memfd);
	close(pagemap);
	return 0;
}

/* A scan with PM_SCAN_WP_MATCHING protects again what it reports; one
 * without leaves it written. CHECK_WPASYNC refuses unregistered memory. */
static int
case_wp_async_reprotect(void)
{
	size_t len = WPA_PAGES * PSZ;
	int memfd, pagemap, uffd;
	char *g, *other;
	int64_t r;

	if (wpa_check() == SKIP)
		return SKIP;
	memfd = memfd_new(len);
	pagemap = pagemap_open();
	g = map_at(memfd, len, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
	other = map_at(memfd, len, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
	memset(g, 1, len);		/* all populated */
	if ((uffd = uffd_new(WPA_FEATURES)) < 0)
		die("userfaultfd");
	wpa_protect(uffd, g, len);
	wpa_expect("after the protect", wpa_scan(pagemap, g, WPA_PAGES, true),
	    0);
	g[5 * PSZ] = 5;
	wpa_expect("wrote 5, scan without WP_MATCHING", wpa_scan(pagemap, g,
	    WPA_PAGES, false), 1u << 5);
	wpa_expect("again without WP_MATCHING (still written)",
	    wpa_scan(pagemap, g, WPA_PAGES, false), 1u << 5);
	wpa_expect("with WP_MATCHING", wpa_scan(pagemap, g, WPA_PAGES, true),
	    1u << 5);
	wpa_expect("after it (re-protected)", wpa_scan(pagemap, g, WPA_PAGES,
	    true), 0);
	g[5 * PSZ] = 6;
	g[0] = 6;
	wpa_expect("wrote 0 and 5 again", wpa_scan(pagemap, g, WPA_PAGES,
	    true), 1u << 0 | 1u << 5);
	other[7 * PSZ] = 7;		/* the alias is not tracked */
	wpa_expect("wrote 7 through another mapping of the memfd",
	    wpa_scan(pagemap, g, WPA_PAGES, true), 0);
	expect(g[7 * PSZ] == 7, "found: the guest mapping sees it");
	r = wpa_scan(pagemap, other, WPA_PAGES, true);
	expect(r == -EPERM, "CHECK_WPASYNC on an unregistered mapping: %s",
	    r < 0 ? strerror((int)-r) : "no error");
	close(uffd);
	munmap(g, len);
	munmap(other, len);
	close(memfd);
	close(pagemap);
	return 0;
}

/* 16-bit real-mode program at GPA 0: inc byte [0x1000]; hlt. */
static const uint8_t wpa_kvm_prog[] = { 0xfe, 0x06, 0x00, 0x10, 0xf4 };

/* Runs the vCPU from GPA 0 to its hlt. 0, or -errno / -EIO. */
static int
wpa_kvm_run(int vcpu, struct kvm_run *run)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;

	if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	sregs.ds.base = 0;
	sregs.ds.selector = 0;
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0)
		return -errno;
	memset(&regs, 0, sizeof(regs));
	regs.rip = 0;
	regs.rflags = 2;
	if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
		return -errno;
	if (ioctl(vcpu, KVM_RUN, 0) < 0)
		return -errno;
	return run->exit_reason == KVM_EXIT_HLT ? 0 : -EIO;
}

/* A write a KVM vCPU makes through the EPT/NPT to a page it had mapped
 * writable before the protect is caught (KVM drops its writable mapping
 * when the host PTE is write-protected). */
static int
case_wp_async_kvm(void)
{
	size_t len = WPA_PAGES * PSZ;
	struct kvm_userspace_memory_region slot = { .slot = 0,
	    .guest_phys_addr = 0, .memory_size = len };
	int kvm, vm, vcpu, memfd, pagemap, uffd, n;
	struct kvm_run *run;
	char *g;

	if (wpa_check() == SKIP)
		return SKIP;
	if ((kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC)) < 0) {
		say("SKIP: /dev/kvm: %s (no KVM here: the vCPU-write case "
		    "cannot run)", strerror(errno));
		return SKIP;
	}
	memfd = memfd_new(len);
	pagemap = pagemap_open();
	g = map_at(memfd, len, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
	memcpy(g, wpa_kvm_prog, sizeof(wpa_kvm_prog));
	slot.userspace_addr = (uintptr_t)g;
	if ((vm = ioctl(kvm, KVM_CREATE_VM, 0)) < 0 ||
	    ioctl(vm, KVM_SET_USER_MEMORY_REGION, &slot) < 0 ||
	    (vcpu = ioctl(vm, KVM_CREATE_VCPU, 0)) < 0 ||
	    (n = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0)) <= 0 ||
	    (run = mmap(NULL, (size_t)n, PROT_READ | PROT_WRITE, MAP_SHARED,
	    vcpu, 0)) == MAP_FAILED) {
		say("SKIP: cannot set up a KVM vCPU: %s", strerror(errno));
		return SKIP;
	}
	expect(wpa_kvm_run(vcpu, run) == 0 && g[0x1000] == 1,
	    "found: first run: the vCPU wrote page 1 (now %d)", g[0x1000]);
	if ((uffd = uffd_new(WPA_FEATURES)) < 0)
		die("userfaultfd");
	wpa_protect(uffd, g, len);
	wpa_expect("after the protect", wpa_scan(pagemap, g, WPA_PAGES, true),
	    0);
	expect(wpa_kvm_run(vcpu, run) == 0 && g[0x1000] == 2,
	    "found: second run: the vCPU wrote page 1 (now %d)", g[0x1000]);
	wpa_expect("after the vCPU's write", wpa_scan(pagemap, g, WPA_PAGES,
	    true), 1u << 1);
	wpa_expect("re-scan", wpa_scan(pagemap, g, WPA_PAGES, true), 0);
	munmap(run, (size_t)n);
	close(vcpu);
	close(vm);
	close(kvm);
	close(uffd);
	munmap(g, len);
	close(memfd);
	close(pagemap);
	return 0;
}

/* ---- main ---- */

static const struct {
	const char *name;
	int (*fn)(void);
	const char *what;
} cases[] = {
	{ "minor_alias", case_minor_alias,
	  "memfd mapped twice: MINOR fault, CONTINUE, reader sees alias bytes" },
	{ "missing_minor", case_missing_minor,
	  "MISSING|MINOR: hole -> MISSING; alias write + CONTINUE resolves" },
	{ "errors", case_errors,
	  "error paths: errno and the mapped field" },
	{ "private", case_private,
	  "MAP_PRIVATE: CONTINUE reads the page cache, writes copy" },
	{ "no_faultaround", case_no_faultaround,
	  "resolving one page maps only that page" },
	{ "pageout", case_pageout,
	  "MADV_PAGEOUT'd page still faults MINOR; CONTINUE works" },
	{ "dontwake_wake", case_dontwake_wake,
	  "CONTINUE_MODE_DONTWAKE + UFFDIO_WAKE" },
	{ "many_waiters", case_many_waiters,
	  "many threads on one page, one CONTINUE wakes all" },
	{ "thp", case_thp,
	  "shmem THP here, and MADV_NOHUGEPAGE keeps faults at 4 KiB" },
	{ "wp_async_cross", case_wp_async_cross,
	  "WP_ASYNC + PAGEMAP_SCAN of another process's memory, through "
	  "its passed uffd and pagemap" },
	{ "wp_async_unpopulated", case_wp_async_unpopulated,
	  "never-populated pages written after the protect are reported" },
	{ "wp_async_reprotect", case_wp_async_reprotect,
	  "PM_SCAN_WP_MATCHING re-protects what it reports" },
	{ "wp_async_kvm", case_wp_async_kvm,
	  "a KVM vCPU's write through the EPT is reported" },
};

int
main(int argc, char **argv)
{
	int fd, rc;

	if (argc != 2) {
		fprintf(stderr, "usage: %s CASE|list\n", argv[0]);
		return 2;
	}
	if (strcmp(argv[1], "list") == 0) {
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
			printf("%-16s %s\n", cases[i].name, cases[i].what);
		return 0;
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (strcmp(argv[1], cases[i].name) != 0)
			continue;
		say("case %s: %s (kernel %s)", cases[i].name, cases[i].what,
		    krelease());
		if ((fd = uffd_new(UFFD_FEATURE_MINOR_SHMEM)) < 0) {
			say("SKIP: cannot create a userfaultfd with "
			    "UFFD_FEATURE_MINOR_SHMEM: %s", strerror(-fd));
			return SKIP;
		}
		close(fd);
		rc = cases[i].fn();
		if (rc == SKIP)
			return SKIP;
		say("case %s: %s (%d failed checks)", cases[i].name,
		    failures ? "FAILED" : "passed", failures);
		return failures ? 1 : 0;
	}
	fprintf(stderr, "%s: unknown case '%s' (try 'list')\n", argv[0],
	    argv[1]);
	return 2;
}
