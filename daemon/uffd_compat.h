/* uffd_compat.h - the kernel uAPI for dirty tracking that is newer than the
 * headers the project builds against (Debian 12's linux-libc-dev is 6.1).
 *
 * Precopy tracks the source guest's writes with asynchronous userfaultfd
 * write protection (UFFD_FEATURE_WP_ASYNC, Linux 6.7) and reads the written
 * pages with the PAGEMAP_SCAN ioctl on /proc/PID/pagemap (Linux 6.7). Each
 * definition below is the kernel's documented uAPI (include/uapi/linux/
 * userfaultfd.h and include/uapi/linux/fs.h of 6.7+, and the
 * ioctl_pagemap_scan(2) manual page), given only where the installed
 * headers lack it. The running kernel decides at run time; probe.c says
 * whether it has them (`postcopyd --check-kernel`).
 */
#ifndef PCD_UFFD_COMPAT_H
#define PCD_UFFD_COMPAT_H

#include <stdint.h>
#include <linux/fs.h>
#include <linux/ioctl.h>
#include <linux/types.h>
#include <linux/userfaultfd.h>

/* ---- include/uapi/linux/userfaultfd.h ---- */

/* Write protection of shmem and hugetlbfs mappings (Linux 6.0). */
#ifndef UFFD_FEATURE_WP_HUGETLBFS_SHMEM
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM	(1 << 12)
#endif
/* UFFDIO_WRITEPROTECT also protects pages that were never populated
 * (Linux 6.4); WP_ASYNC implies it. */
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED	(1 << 13)
#endif
/* A write to a protected page is resolved by the kernel (the protection is
 * dropped, no message is queued): the page then reads as written in
 * PAGEMAP_SCAN (Linux 6.7). */
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC		(1 << 15)
#endif
/* Set in a userfaultfd's fdinfo features once UFFDIO_API has been done
 * (kernel-internal bit, visible in /proc/PID/fdinfo since 6.5). */
#ifndef UFFD_FEATURE_INITIALIZED
#define UFFD_FEATURE_INITIALIZED	((uint64_t)1 << 31)
#endif

/* ---- include/uapi/linux/fs.h: the pagemap ioctl ---- */

#ifndef PAGEMAP_SCAN

#ifndef PROCFS_IOCTL_MAGIC
#define PROCFS_IOCTL_MAGIC	'f'
#endif

/* Categories: given in pm_scan_arg's masks, reported in
 * page_region.categories. */
#define PAGE_IS_WPALLOWED	(1 << 0)	/* async WP enabled */
#define PAGE_IS_WRITTEN		(1 << 1)	/* written since protected */
#define PAGE_IS_FILE		(1 << 2)
#define PAGE_IS_PRESENT		(1 << 3)
#define PAGE_IS_SWAPPED		(1 << 4)
#define PAGE_IS_PFNZERO		(1 << 5)
#define PAGE_IS_HUGE		(1 << 6)
#define PAGE_IS_SOFT_DIRTY	(1 << 7)	/* Linux 6.8 */

/* One returned run of pages with the same categories, [start, end). */
struct page_region {
	__u64 start;
	__u64 end;
	__u64 categories;
};

/* Operations. */
#define PM_SCAN_WP_MATCHING	(1 << 0)	/* write-protect what matched */
#define PM_SCAN_CHECK_WPASYNC	(1 << 1)	/* fail (EPERM) on a VMA without
						 * async WP */

struct pm_scan_arg {
	__u64 size;		/* sizeof(struct pm_scan_arg) */
	__u64 flags;		/* PM_SCAN_* */
	__u64 start;		/* page-aligned */
	__u64 end;		/* exclusive */
	__u64 walk_end;		/* out: where the walk stopped */
	__u64 vec;		/* struct page_region[vec_len] */
	__u64 vec_len;
	__u64 max_pages;	/* 0: no limit */
	__u64 category_inverted;
	__u64 category_mask;	/* every one of these must match */
	__u64 category_anyof_mask;
	__u64 return_mask;	/* categories reported in page_region */
};

#define PAGEMAP_SCAN	_IOWR(PROCFS_IOCTL_MAGIC, 16, struct pm_scan_arg)

#endif /* PAGEMAP_SCAN */

/* The uAPI's sizes and numbers are ABI: catch a mistyped copy at build. */
_Static_assert(sizeof(struct page_region) == 24, "struct page_region");
_Static_assert(sizeof(struct pm_scan_arg) == 96, "struct pm_scan_arg");
_Static_assert(PAGEMAP_SCAN == 0xc0606610, "PAGEMAP_SCAN ioctl number");

#endif
