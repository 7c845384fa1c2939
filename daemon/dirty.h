/* dirty.h - the source's dirty-page tracker for precopy.
 *
 * The source VMM hands the daemon a userfaultfd it created for the purpose
 * and its own /proc/self/pagemap (VMM-PROTOCOL.md, "Dirty tracking"). A
 * userfaultfd acts on its creator's address space and a pagemap fd on its
 * opener's, whoever issues the ioctls, so the daemon tracks the guest
 * mapping of another process:
 *
 *   UFFDIO_API      WP_ASYNC | WP_UNPOPULATED | WP_HUGETLBFS_SHMEM (done
 *                   here unless the VMM did it with those features)
 *   UFFDIO_REGISTER mode WP on [base, base+size) of the VMM
 *   UFFDIO_WRITEPROTECT the range            (dirty_start: tracking begins)
 *   PAGEMAP_SCAN    PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC, category
 *                   PAGE_IS_WRITTEN: the pages written since the last scan,
 *                   write-protected again in the same call    (dirty_scan)
 *
 * With WP_ASYNC a write to a protected page never blocks nor queues a
 * message: the kernel drops the protection and the page reads as written.
 * So the source guest never waits for the daemon, even if the daemon dies.
 * dirty_stop/dirty_close remove the protection and the registration: a
 * cancelled migration leaves the guest as it was. Linux >= 6.7.
 *
 * One thread at a time per tracker (the scanning thread; close after it
 * stopped). Functions return 0 or -errno.
 */
#ifndef PCD_DIRTY_H
#define PCD_DIRTY_H

#include <stddef.h>
#include <stdint.h>

struct dirty;

/* What UFFDIO_API must enable for tracking. */
#define DIRTY_UFFD_FEATURES_NAMES \
	"UFFD_FEATURE_WP_ASYNC|WP_UNPOPULATED|WP_HUGETLBFS_SHMEM"

/* Takes uffd and pagemap_fd (closed by dirty_close, or here on failure).
 * Does the UFFDIO_API handshake (or checks the features of one the VMM
 * did), registers the range for WP and checks with one PAGEMAP_SCAN that
 * the pagemap belongs to the same process as the userfaultfd. Nothing is
 * protected yet. Errors: -ENOTSUP when the kernel lacks the features
 * (err names them and the running kernel: run postcopy-only), -EINVAL /
 * -EPERM / -ENOMEM ... for descriptors or a range that do not fit (err
 * says which). */
int dirty_open(int uffd, int pagemap_fd, uint64_t base, uint64_t size,
    uint32_t page_size, struct dirty **out, char *err, size_t errlen);

/* Write-protects the whole range: every page written from now on is
 * reported by the next scan (pages never populated too). */
int dirty_start(struct dirty *d);

/* Sets, in bitmap (one bit per page from base, 64 per word, the caller's,
 * not cleared), the pages written since dirty_start or the previous scan,
 * and protects them again, in one PAGEMAP_SCAN per region array. *npages
 * (may be NULL) gets the number of pages reported. A page written during
 * the scan is reported now or by the next scan, never lost. */
int dirty_scan(struct dirty *d, uint64_t *bitmap, uint64_t *npages);

/* Ends tracking: removes the write protection from the whole range
 * (idempotent). The registration stays until dirty_close. */
int dirty_stop(struct dirty *d);

/* dirty_stop, unregisters the range, closes both descriptors. NULL is
 * fine. */
void dirty_close(struct dirty *d);

/* The guest range and geometry. */
uint64_t dirty_npages(const struct dirty *d);

/* Counters: scans done, pages reported in total. */
void dirty_counters(const struct dirty *d, uint64_t *scans,
    uint64_t *reported);

/* Can this kernel track at all? Opens a userfaultfd of the daemon's own,
 * tracks a two-page memfd mapping through /proc/self/pagemap and checks
 * that exactly the written page is reported. 0, or -ENOTSUP (or -errno)
 * with why naming what is missing and the running kernel. */
int dirty_selftest(char *why, size_t len);

#endif
