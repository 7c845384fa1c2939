/* bench_touch.c - what it costs to reach a page of guest memory, per 4 KiB
 * page, on this host: the first touch of a page through a fresh mapping
 * (writable, as a destination's alias is; read-only, as the source's view
 * is), a second touch of the same pages, and pwrite/pread of frame-sized
 * runs (no mapping at all). Nested virtualisation makes the first touch of
 * a mapping dear (the shadow page tables are filled page by page), which
 * is what decides how a daemon should move 4 KiB pages there.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"
#include "util.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ	22
#define MADV_POPULATE_WRITE	23
#endif

/* One read per page; the time per page in us. */
static double
bench_touch_pass(const volatile uint8_t *p, uint64_t pages, uint64_t ps)
{
	uint64_t t0 = now_ns(), sum = 0;

	for (uint64_t i = 0; i < pages; i++)
		sum += p[i * ps];
	(void)sum;
	return (double)(now_ns() - t0) / 1e3 / (double)pages;
}

/* A fresh mapping of the memfd, populated (page table entries present, as
 * the daemons' are), then read twice. */
static int
bench_touch_map(int fd, uint64_t len, uint64_t ps, bool rw, double *first,
    double *again)
{
	uint8_t *p = mmap(NULL, len, rw ? PROT_READ | PROT_WRITE : PROT_READ,
	    MAP_SHARED, fd, 0);

	if (p == MAP_FAILED)
		return -errno;
	madvise(p, len, MADV_NOHUGEPAGE);
	if (madvise(p, len, rw ? MADV_POPULATE_WRITE : MADV_POPULATE_READ) < 0) {
		munmap(p, len);
		return -errno;
	}
	*first = bench_touch_pass(p, len / ps, ps);
	*again = bench_touch_pass(p, len / ps, ps);
	munmap(p, len);
	return 0;
}

/* pwrite (or pread) the memfd in runs of run bytes; us per 4 KiB page. */
static int
bench_touch_io(int fd, uint8_t *buf, uint64_t len, uint64_t run, bool write,
    double *us)
{
	uint64_t t0 = now_ns();

	for (uint64_t off = 0; off < len; off += run)
		if ((write ? pwrite(fd, buf, run, (off_t)off) :
		    pread(fd, buf, run, (off_t)off)) != (ssize_t)run)
			return -EIO;
	*us = (double)(now_ns() - t0) / 1e3 / (double)(len / 4096);
	return 0;
}

int
bench_touch(uint64_t len, struct bench_touch_result *r, char *err,
    size_t errlen)
{
	const uint64_t ps = 4096, run = 64 * ps;
	uint8_t *buf = NULL;
	int fd, rc = 0;

	memset(r, 0, sizeof(*r));
	len -= len % run;
	if ((fd = memfd_create("pcd-bench-touch", MFD_CLOEXEC)) < 0 ||
	    ftruncate(fd, (off_t)len) < 0 ||
	    (buf = malloc(run)) == NULL) {
		rc = -errno;
		goto out;
	}
	memset(buf, 0x5a, run);
	/* Allocated first, as a destination preallocates. */
	if (fallocate(fd, 0, 0, (off_t)len) < 0) {
		rc = -errno;
		goto out;
	}
	if ((rc = bench_touch_io(fd, buf, len, run, true, &r->pwrite_us)) < 0 ||
	    (rc = bench_touch_io(fd, buf, len, run, false, &r->pread_us)) < 0)
		goto out;
	if ((rc = bench_touch_map(fd, len, ps, true, &r->first_rw_us,
	    &r->again_rw_us)) < 0 ||
	    (rc = bench_touch_map(fd, len, ps, false, &r->first_ro_us,
	    &r->again_ro_us)) < 0)
		goto out;
	r->pages = len / ps;
out:
	if (rc < 0)
		snprintf(err, errlen, "page touch baseline: %s", strerror(-rc));
	free(buf);
	if (fd >= 0)
		close(fd);
	return rc;
}
