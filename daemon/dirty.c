/* dirty.c - the source's dirty-page tracker (see dirty.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/utsname.h>

#include "dirty.h"
#include "probe.h"
#include "uffd_compat.h"

#define DIRTY_VEC_LEN	1024	/* page_region entries per PAGEMAP_SCAN */
#define DIRTY_FEATURES	(UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED | \
	UFFD_FEATURE_WP_HUGETLBFS_SHMEM)

struct dirty {
	int			 uffd;
	int			 pagemap;
	uint64_t		 base, size;
	uint32_t		 page_size;
	uint64_t		 npages;
	bool			 registered;
	bool			 protected;
	uint64_t		 scans, reported;
	struct page_region	 vec[DIRTY_VEC_LEN];
};

static const char *
dirty_release(struct utsname *u)
{
	return uname(u) == 0 ? u->release : "unknown";
}

/* The UFFDIO_API handshake with the tracking features, or a check of the
 * one the VMM already did (the kernel allows one per userfaultfd). */
static int
dirty_api(int uffd, char *err, size_t errlen)
{
	struct uffdio_api api;
	struct utsname u;
	uint64_t feat = 0;
	int rc;

	/* Is it a userfaultfd; what does its fdinfo say? */
	if ((rc = probe_uffd(uffd, 0, 0, 0, &feat, err, errlen)) < 0)
		return rc == -EBADF ? -EINVAL : rc;
	if (probe_test_hide_wp_async()) {
		snprintf(err, errlen, "UFFD_FEATURE_WP_ASYNC hidden by "
		    "PCD_TEST_HIDE_WP_ASYNC=1 (a test setting: as on a kernel "
		    "older than 6.7, %s)", dirty_release(&u));
		return -ENOTSUP;
	}
	if (feat & UFFD_FEATURE_INITIALIZED) {
		if ((feat & DIRTY_FEATURES) == DIRTY_FEATURES)
			return 0;
		snprintf(err, errlen, "the VMM already did the UFFDIO_API "
		    "handshake on the dirty-tracking userfaultfd, with "
		    "features 0x%" PRIx64 " that lack %s: leave the handshake "
		    "to the daemon (VMM-PROTOCOL.md)", feat,
		    DIRTY_UFFD_FEATURES_NAMES);
		return -EINVAL;
	}
	memset(&api, 0, sizeof(api));
	api.api = UFFD_API;
	api.features = DIRTY_FEATURES;
	if (ioctl(uffd, UFFDIO_API, &api) == 0)
		return 0;
	rc = -errno;
	if (rc == -EINVAL) {
		snprintf(err, errlen, "UFFDIO_API with %s: %s (kernel %s lacks "
		    "asynchronous write protection, Linux >= 6.7; or the VMM "
		    "already did the handshake)", DIRTY_UFFD_FEATURES_NAMES,
		    strerror(-rc), dirty_release(&u));
		return -ENOTSUP;
	}
	snprintf(err, errlen, "UFFDIO_API on the dirty-tracking userfaultfd: "
	    "%s", strerror(-rc));
	return rc;
}

static int
dirty_register(struct dirty *d, char *err, size_t errlen)
{
	struct uffdio_register reg;
	int rc;

	memset(&reg, 0, sizeof(reg));
	reg.range.start = d->base;
	reg.range.len = d->size;
	reg.mode = UFFDIO_REGISTER_MODE_WP;
	if (ioctl(d->uffd, UFFDIO_REGISTER, &reg) < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot register 0x%" PRIx64 "+0x%" PRIx64
		    " for write protection: %s%s", d->base, d->size,
		    strerror(-rc), rc == -ENOMEM ? " (not mapped in the VMM)" :
		    rc == -EBUSY ? " (registered with another userfaultfd)" :
		    rc == -EINVAL ? " (not mapped in the VMM, or not a shmem "
		    "or anonymous mapping)" : "");
		return rc;
	}
	d->registered = true;
	if ((reg.ioctls & ((uint64_t)1 << _UFFDIO_WRITEPROTECT)) == 0) {
		snprintf(err, errlen, "UFFDIO_REGISTER of 0x%" PRIx64 "+0x%"
		    PRIx64 " did not grant UFFDIO_WRITEPROTECT (ioctls 0x%llx)",
		    d->base, d->size, (unsigned long long)reg.ioctls);
		return -ENOTSUP;
	}
	return 0;
}

static int
dirty_ioctl_scan(struct dirty *d, struct pm_scan_arg *arg)
{
	int n;

	arg->size = sizeof(*arg);
	arg->vec = (uint64_t)(uintptr_t)d->vec;
	arg->vec_len = DIRTY_VEC_LEN;
	do
		n = ioctl(d->pagemap, PAGEMAP_SCAN, arg);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

/* One scan of the registered range, asking only which pages allow async
 * WP: in the VMM's address space every page of the range does. If the
 * pagemap belongs to another process, the range is not (all) there. */
static int
dirty_check_pagemap(struct dirty *d, char *err, size_t errlen)
{
	struct pm_scan_arg arg;
	struct utsname u;
	int n;

	memset(&arg, 0, sizeof(arg));
	arg.flags = PM_SCAN_CHECK_WPASYNC;
	arg.start = d->base;
	arg.end = d->base + d->size;
	arg.category_mask = PAGE_IS_WPALLOWED;
	arg.return_mask = PAGE_IS_WPALLOWED;
	n = dirty_ioctl_scan(d, &arg);
	if (n == -ENOTTY || n == -EOPNOTSUPP) {
		snprintf(err, errlen, "PAGEMAP_SCAN: %s (kernel %s lacks it, "
		    "Linux >= 6.7)", strerror(-n), dirty_release(&u));
		return -ENOTSUP;
	}
	if (n < 0) {
		snprintf(err, errlen, "PAGEMAP_SCAN of 0x%" PRIx64 "+0x%" PRIx64
		    " through the VMM's pagemap: %s%s", d->base, d->size,
		    strerror(-n), n == -EPERM ? " (the pagemap is not the "
		    "same process as the userfaultfd)" : "");
		return n == -ENOTSUP ? -EINVAL : n;
	}
	if (n != 1 || d->vec[0].start != d->base ||
	    d->vec[0].end != d->base + d->size) {
		snprintf(err, errlen, "the pagemap descriptor does not show the "
		    "guest mapping 0x%" PRIx64 "+0x%" PRIx64 " registered "
		    "through the userfaultfd (%d region%s, first 0x%llx-0x%llx): "
		    "it is not the VMM's own /proc/self/pagemap", d->base,
		    d->size, n, n == 1 ? "" : "s",
		    n > 0 ? (unsigned long long)d->vec[0].start : 0ull,
		    n > 0 ? (unsigned long long)d->vec[0].end : 0ull);
		return -EINVAL;
	}
	return 0;
}

int
dirty_open(int uffd, int pagemap_fd, uint64_t base, uint64_t size,
    uint32_t page_size, struct dirty **out, char *err, size_t errlen)
{
	struct dirty *d;
	int rc;

	*out = NULL;
	if (page_size == 0 || (page_size & (page_size - 1)) != 0 ||
	    base % page_size != 0 || size == 0 || size % page_size != 0 ||
	    base + size < base) {
		snprintf(err, errlen, "dirty tracking: bad range 0x%" PRIx64
		    "+0x%" PRIx64 " (page size %u)", base, size, page_size);
		close(uffd);
		close(pagemap_fd);
		return -EINVAL;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		snprintf(err, errlen, "dirty tracking: out of memory");
		close(uffd);
		close(pagemap_fd);
		return -ENOMEM;
	}
	d->uffd = uffd;
	d->pagemap = pagemap_fd;
	d->base = base;
	d->size = size;
	d->page_size = page_size;
	d->npages = size / page_size;
	if ((rc = dirty_api(uffd, err, errlen)) < 0 ||
	    (rc = dirty_register(d, err, errlen)) < 0 ||
	    (rc = dirty_check_pagemap(d, err, errlen)) < 0) {
		dirty_close(d);
		return rc;
	}
	*out = d;
	return 0;
}

static int
dirty_protect(struct dirty *d, bool on)
{
	struct uffdio_writeprotect wp;

	memset(&wp, 0, sizeof(wp));
	wp.range.start = d->base;
	wp.range.len = d->size;
	wp.mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0;
	if (ioctl(d->uffd, UFFDIO_WRITEPROTECT, &wp) < 0)
		return -errno;
	return 0;
}

int
dirty_start(struct dirty *d)
{
	int rc;

	if ((rc = dirty_protect(d, true)) < 0)
		return rc;
	d->protected = true;
	return 0;
}

/* Sets bits [first, first+count) of bitmap. */
static void
dirty_bits_set(uint64_t *bitmap, uint64_t first, uint64_t count)
{
	uint64_t end = first + count;

	while (first < end && (first & 63) != 0)
		bitmap[first / 64] |= (uint64_t)1 << (first & 63), first++;
	for (; first + 64 <= end; first += 64)
		bitmap[first / 64] = ~(uint64_t)0;
	for (; first < end; first++)
		bitmap[first / 64] |= (uint64_t)1 << (first & 63);
}

/* Records one batch of regions; returns the pages they hold. */
static uint64_t
dirty_record(struct dirty *d, int n, uint64_t *bitmap)
{
	uint64_t total = 0, lo = d->base, hi = d->base + d->size;

	for (int i = 0; i < n; i++) {
		uint64_t s = d->vec[i].start, e = d->vec[i].end;

		if (s < lo)
			s = lo;
		if (e > hi)
			e = hi;
		if (s >= e)
			continue;
		dirty_bits_set(bitmap, (s - lo) / d->page_size,
		    (e - s) / d->page_size);
		total += (e - s) / d->page_size;
	}
	return total;
}

int
dirty_scan(struct dirty *d, uint64_t *bitmap, uint64_t *npages)
{
	struct pm_scan_arg arg;
	uint64_t addr = d->base, end = d->base + d->size, total = 0;
	int n;

	if (!d->protected)
		return -EINVAL;
	while (addr < end) {
		memset(&arg, 0, sizeof(arg));
		arg.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC;
		arg.start = addr;
		arg.end = end;
		arg.category_mask = PAGE_IS_WRITTEN;
		arg.return_mask = PAGE_IS_WRITTEN;
		if ((n = dirty_ioctl_scan(d, &arg)) < 0)
			return n;
		total += dirty_record(d, n, bitmap);
		/* The walk stops early only when the region array is full;
		 * what it reported before walk_end is protected again. */
		if (arg.walk_end <= addr || arg.walk_end > end)
			return -EIO;
		addr = arg.walk_end;
	}
	d->scans++;
	d->reported += total;
	if (npages != NULL)
		*npages = total;
	return 0;
}

int
dirty_stop(struct dirty *d)
{
	int rc;

	if (!d->protected)
		return 0;
	if ((rc = dirty_protect(d, false)) < 0)
		return rc;
	d->protected = false;
	return 0;
}

void
dirty_close(struct dirty *d)
{
	struct uffdio_range r;

	if (d == NULL)
		return;
	/* The VMM may be gone (its mm too): nothing is left to undo then. */
	(void)dirty_stop(d);
	if (d->registered) {
		r.start = d->base;
		r.len = d->size;
		(void)ioctl(d->uffd, UFFDIO_UNREGISTER, &r);
	}
	close(d->uffd);
	close(d->pagemap);
	free(d);
}

uint64_t
dirty_npages(const struct dirty *d)
{
	return d->npages;
}

void
dirty_counters(const struct dirty *d, uint64_t *scans, uint64_t *reported)
{
	if (scans != NULL)
		*scans = d->scans;
	if (reported != NULL)
		*reported = d->reported;
}

/* Tracks a two-page memfd mapping of our own: page 1 written after
 * dirty_start must be the only page reported, and a second scan must
 * report nothing. */
static int
dirty_selftest_run(char *map, long psz, int uffd, int pagemap, char *why,
    size_t len)
{
	struct dirty *d;
	uint64_t bits = 0, n = 0;
	int rc;

	rc = dirty_open(uffd, pagemap, (uint64_t)(uintptr_t)map,
	    2 * (uint64_t)psz, (uint32_t)psz, &d, why, len);
	if (rc < 0)
		return rc;
	if ((rc = dirty_start(d)) < 0) {
		snprintf(why, len, "UFFDIO_WRITEPROTECT: %s", strerror(-rc));
		goto out;
	}
	map[psz] = 1;
	if ((rc = dirty_scan(d, &bits, &n)) < 0) {
		snprintf(why, len, "PAGEMAP_SCAN: %s", strerror(-rc));
		goto out;
	}
	if (bits != 2 || n != 1) {
		snprintf(why, len, "PAGEMAP_SCAN reported pages 0x%" PRIx64
		    " (%" PRIu64 ") after a write to page 1", bits, n);
		rc = -ENOTSUP;
		goto out;
	}
	bits = 0;
	if ((rc = dirty_scan(d, &bits, &n)) == 0 && bits != 0) {
		snprintf(why, len, "a second PAGEMAP_SCAN reported pages 0x%"
		    PRIx64 " again (not re-protected)", bits);
		rc = -ENOTSUP;
	}
out:
	dirty_close(d);
	return rc;
}

int
dirty_selftest(char *why, size_t len)
{
	long psz = sysconf(_SC_PAGESIZE);
	char *map = MAP_FAILED;
	int memfd = -1, uffd, pagemap, rc;

	why[0] = '\0';
	if ((uffd = probe_uffd_open(O_CLOEXEC | O_NONBLOCK, NULL)) < 0) {
		snprintf(why, len, "userfaultfd: %s", strerror(-uffd));
		return uffd;
	}
	if ((pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC)) < 0) {
		rc = -errno;
		snprintf(why, len, "/proc/self/pagemap: %s", strerror(-rc));
		close(uffd);
		return rc;
	}
	if ((memfd = memfd_create("postcopyd-dirty", MFD_CLOEXEC)) < 0 ||
	    ftruncate(memfd, 2 * psz) < 0 ||
	    (map = mmap(NULL, 2 * (size_t)psz, PROT_READ | PROT_WRITE,
	    MAP_SHARED, memfd, 0)) == MAP_FAILED) {
		rc = -errno;
		snprintf(why, len, "a memfd mapping: %s", strerror(-rc));
		close(uffd);
		close(pagemap);
		goto out;
	}
	rc = dirty_selftest_run(map, psz, uffd, pagemap, why, len);
out:
	if (map != MAP_FAILED)
		munmap(map, 2 * (size_t)psz);
	if (memfd >= 0)
		close(memfd);
	return rc;
}
