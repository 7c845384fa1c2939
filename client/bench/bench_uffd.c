/* bench_uffd.c - the floor of a local fault: raw userfaultfd MINOR faults
 * resolved with UFFDIO_CONTINUE.
 *
 * A memfd is mapped twice, as the daemon does: the alias fills every page
 * (so each sits in the page cache), the guest mapping is registered for
 * MINOR faults. A handler thread blocks in read(uffd) and answers each
 * fault with UFFDIO_CONTINUE; the calling thread touches every page and
 * times each access. MADV_DONTNEED on the guest mapping drops its page
 * table entries (not the page cache), so every round faults again.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"
#include "util.h"

struct bench_uffd {
	int		 uffd;
	char		*guest;
	uint64_t	 len;
	uint64_t	 page_size;
	uint64_t	 stop_page;	/* a fault here ends the handler */
	double		*handler_us;
	uint64_t	 max;
	uint64_t	 n;
	int		 rc;
};

static int
bench_uffd_open(void)
{
	int fd;

	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
	if (fd >= 0)
		return fd;
	/* vm.unprivileged_userfaultfd=0 and no CAP_SYS_PTRACE: the device
	 * node hands out the same file. */
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -errno;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC);
	if (fd < 0)
		fd = -errno;
	close(dev);
	return fd;
}

/* On error, drop the registration: that wakes every blocked access and
 * lets later ones fault normally, so the toucher never hangs. */
static void *
bench_uffd_fail(struct bench_uffd *u, int rc)
{
	struct uffdio_range range = {
		.start = (uint64_t)(uintptr_t)u->guest, .len = u->len };

	u->rc = rc;
	ioctl(u->uffd, UFFDIO_UNREGISTER, &range);
	return NULL;
}

static void *
bench_uffd_handler(void *arg)
{
	struct bench_uffd *u = arg;
	struct uffd_msg msg;
	struct uffdio_continue cont;
	uint64_t t0, page;

	for (;;) {
		ssize_t n = read(u->uffd, &msg, sizeof(msg));

		if (n < 0 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof(msg))
			return bench_uffd_fail(u, n < 0 ? -errno : -EIO);
		if (msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		t0 = now_ns();
		page = (msg.arg.pagefault.address - (uint64_t)(uintptr_t)u->guest) /
		    u->page_size;
		memset(&cont, 0, sizeof(cont));
		cont.range.start = (uint64_t)(uintptr_t)u->guest +
		    page * u->page_size;
		cont.range.len = u->page_size;
		if (ioctl(u->uffd, UFFDIO_CONTINUE, &cont) != 0 &&
		    errno != EEXIST)
			return bench_uffd_fail(u, -errno);
		if (u->n < u->max)
			u->handler_us[u->n++] = (double)(now_ns() - t0) / 1e3;
		if (page == u->stop_page)
			return NULL;
	}
}

int
bench_uffd_minor(uint64_t pages, unsigned rounds, struct bench_uffd_result *r,
    char *err, size_t errlen)
{
	struct bench_uffd u = { .uffd = -1 };
	struct uffdio_api api = { .api = UFFD_API,
	    .features = UFFD_FEATURE_MINOR_SHMEM };
	struct uffdio_register reg = { 0 };
	char *alias = MAP_FAILED, *guest = MAP_FAILED;
	double *touch = NULL;
	uint64_t len, i, nt = 0;
	pthread_t th;
	bool started = false;
	unsigned round;
	int memfd = -1, rc;

	memset(r, 0, sizeof(*r));
	if (pages == 0 || rounds == 0) {
		snprintf(err, errlen, "uffd baseline: nothing to measure");
		return -EINVAL;
	}
	u.page_size = (uint64_t)sysconf(_SC_PAGESIZE);
	u.stop_page = pages;			/* one page past the measured ones */
	len = (pages + 1) * u.page_size;
	u.max = pages * rounds + 1;
	u.handler_us = calloc(u.max, sizeof(double));
	touch = calloc(pages * rounds, sizeof(double));
	if (u.handler_us == NULL || touch == NULL) {
		snprintf(err, errlen, "uffd baseline: out of memory");
		rc = -ENOMEM;
		goto out;
	}
	memfd = memfd_create("postcopy-bench-uffd", MFD_CLOEXEC);
	if (memfd < 0 || ftruncate(memfd, (off_t)len) != 0) {
		rc = -errno;
		snprintf(err, errlen, "uffd baseline: memfd of %llu bytes: %s",
		    (unsigned long long)len, strerror(errno));
		goto out;
	}
	alias = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	guest = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (alias == MAP_FAILED || guest == MAP_FAILED) {
		rc = -errno;
		snprintf(err, errlen, "uffd baseline: mmap: %s", strerror(errno));
		goto out;
	}
	/* A huge page would resolve 512 faults at once. */
	madvise(guest, len, MADV_NOHUGEPAGE);
	for (i = 0; i <= pages; i++)
		memset(alias + i * u.page_size, (int)(i & 0xff) | 1,
		    u.page_size);
	u.guest = guest;
	u.len = len;

	if ((u.uffd = bench_uffd_open()) < 0) {
		rc = u.uffd;
		snprintf(err, errlen, "uffd baseline: cannot open a userfaultfd: "
		    "%s", strerror(-rc));
		goto out;
	}
	if (ioctl(u.uffd, UFFDIO_API, &api) != 0 ||
	    !(api.features & UFFD_FEATURE_MINOR_SHMEM)) {
		rc = -EOPNOTSUPP;
		snprintf(err, errlen, "uffd baseline: kernel lacks "
		    "UFFD_FEATURE_MINOR_SHMEM (see kernel/README.md)");
		goto out;
	}
	reg.range.start = (uint64_t)(uintptr_t)guest;
	reg.range.len = len;
	reg.mode = UFFDIO_REGISTER_MODE_MINOR;
	if (ioctl(u.uffd, UFFDIO_REGISTER, &reg) != 0) {
		rc = -errno;
		snprintf(err, errlen, "uffd baseline: cannot register minor "
		    "faults on %p+%llu: %s", (void *)guest,
		    (unsigned long long)len, strerror(errno));
		goto out;
	}
	if ((rc = pthread_create(&th, NULL, bench_uffd_handler, &u)) != 0) {
		snprintf(err, errlen, "uffd baseline: pthread_create: %s",
		    strerror(rc));
		rc = -rc;
		goto out;
	}
	started = true;

	for (round = 0; round < rounds; round++) {
		for (i = 0; i < pages; i++) {
			uint64_t t0 = now_ns();

			(void)*(volatile char *)(guest + i * u.page_size);
			touch[nt++] = (double)(now_ns() - t0) / 1e3;
		}
		if (madvise(guest, pages * u.page_size, MADV_DONTNEED) != 0) {
			rc = -errno;
			snprintf(err, errlen, "uffd baseline: MADV_DONTNEED: %s",
			    strerror(errno));
			goto out;
		}
	}
	rc = 0;
out:
	if (started) {
		/* The stop page's fault ends the handler (a handler that
		 * failed has unregistered: then this access does not fault). */
		(void)*(volatile char *)(guest + pages * u.page_size);
		pthread_join(th, NULL);
		if (rc == 0 && u.rc != 0) {
			rc = u.rc;
			snprintf(err, errlen, "uffd baseline: handler: %s",
			    strerror(-rc));
		}
	}
	if (rc == 0) {
		r->faults = nt;
		r->fault_p99_us = bench_quantile(touch, nt, 0.99);
		r->fault_p50_us = bench_quantile(touch, nt, 0.50);
		r->handler_p50_us = bench_quantile(u.handler_us,
		    u.n > 0 ? u.n - 1 : 0, 0.50);
	}
	if (u.uffd >= 0)
		close(u.uffd);
	if (guest != MAP_FAILED)
		munmap(guest, len);
	if (alias != MAP_FAILED)
		munmap(alias, len);
	if (memfd >= 0)
		close(memfd);
	free(u.handler_us);
	free(touch);
	return rc;
}
