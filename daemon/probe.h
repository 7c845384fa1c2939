/* probe.h - does the running kernel do what the destination relies on?
 *
 * The destination maps pages into the guest with UFFDIO_CONTINUE on a memfd
 * (shmem) mapping registered for MISSING|MINOR faults. That needs
 * UFFD_FEATURE_MINOR_SHMEM and UFFD_FEATURE_MISSING_SHMEM (mainline 5.14+)
 * and a registration that grants UFFDIO_CONTINUE, UFFDIO_COPY and
 * UFFDIO_WAKE. kernel/README.md says which kernels have it and carries the
 * patch series for those that do not.
 *
 * probe_kernel() checks this once, at daemon start (and for
 * `postcopyd --check-kernel`), with a userfaultfd and a small memfd of the
 * daemon's own. probe_uffd() checks a VMM's userfaultfd at attach time:
 * UFFDIO_API can be done only once per userfaultfd and the VMM has done it,
 * so it never calls UFFDIO_API; it reads the features the VMM enabled from
 * /proc/self/fdinfo and registers the guest range through that userfaultfd
 * (see probe_uffd below). No function here keeps state between calls.
 */
#ifndef PCD_PROBE_H
#define PCD_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What probe_kernel() checks, in the order --check-kernel prints it. */
enum probe_feature {
	PROBE_USERFAULTFD,	/* a userfaultfd can be created */
	PROBE_UFFD_API,		/* UFFDIO_API handshake (API 0xAA) */
	PROBE_MISSING_SHMEM,	/* UFFD_FEATURE_MISSING_SHMEM */
	PROBE_MINOR_SHMEM,	/* UFFD_FEATURE_MINOR_SHMEM */
	PROBE_REGISTER,		/* UFFDIO_REGISTER MISSING|MINOR of a memfd */
	PROBE_CONTINUE,		/* ... grants UFFDIO_CONTINUE */
	PROBE_COPY,		/* ... grants UFFDIO_COPY */
	PROBE_WAKE,		/* ... grants UFFDIO_WAKE */
	PROBE_NFEATURES
};

#define PROBE_DETAIL_MAX	128

struct probe_report {
	char		release[65];	/* uname -r */
	bool		checked[PROBE_NFEATURES];	/* false: an earlier
							 * step failed */
	bool		present[PROBE_NFEATURES];
	char		detail[PROBE_NFEATURES][PROBE_DETAIL_MAX];
	uint64_t	api_features;	/* what UFFDIO_API reported */
	uint64_t	range_ioctls;	/* what UFFDIO_REGISTER granted */
	char		shmem_thp[32];	/* shmem_enabled's selected value */
	/* Precopy's dirty tracking (UFFD_FEATURE_WP_ASYNC, PAGEMAP_SCAN;
	 * Linux >= 6.7): optional, so not one of the features above and
	 * not part of the result line or --check-kernel's exit code. */
	bool		precopy;
	char		precopy_detail[2 * PROBE_DETAIL_MAX];
};

/* Name of a feature as printed ("UFFD_FEATURE_MINOR_SHMEM"). */
const char *probe_feature_name(enum probe_feature f);

/* Fills r. Returns 0 when every feature is present, -ENOTSUP when one is
 * missing (r says which), -errno when the probe itself could not run (no
 * memory for a memfd, ...). Opens a userfaultfd through /dev/userfaultfd
 * (USERFAULTFD_IOC_NEW) and falls back to the userfaultfd(2) syscall. */
int probe_kernel(struct probe_report *r);

/* One line per feature: "NAME: present|MISSING|not checked (detail)", then
 * the precopy dirty-tracking line, the kernel release, the shmem THP
 * setting and a result line. Returns the number of features not present
 * (precopy's line does not count: postcopy-only works without it). */
int probe_report_print(const struct probe_report *r, int fd);

/* The refusal message: names every missing feature (and how many could not
 * be checked), the running kernel and kernel/README.md. Empty string when
 * everything is present. */
void probe_report_missing(const struct probe_report *r, char *buf,
    size_t len);

/* Can a migration run precopy here (dirty tracking with asynchronous
 * userfaultfd write protection and PAGEMAP_SCAN, Linux >= 6.7)? Tracks a
 * small mapping of the daemon's own (dirty_selftest). 0, or -ENOTSUP (or
 * -errno) with why saying what is missing, the running kernel and that
 * postcopy-only still works: the reason a precopy request is refused. */
int probe_precopy(char *why, size_t len);
/* Test only: PCD_TEST_HIDE_WP_ASYNC=1 in the daemon's environment makes
 * the dirty-tracking handshake (and so probe_precopy and every VMM's
 * attach) behave as on a kernel without UFFD_FEATURE_WP_ASYNC. */
bool probe_test_hide_wp_async(void);

/* Checks a VMM's userfaultfd at attach time, without UFFDIO_API:
 *  - uffd is a userfaultfd (its /proc/self/fd link), and its fdinfo "API:"
 *    line is readable; the features the VMM enabled go to *features (may be
 *    NULL). Bit 31 there means "handshake done" on recent kernels.
 *  - when len > 0: registers [base, base+len) of the VMM's address space
 *    (a userfaultfd acts on its creator's mm, whoever calls the ioctl) with
 *    mode (UFFDIO_REGISTER_MODE_MISSING|UFFDIO_REGISTER_MODE_MINOR for a
 *    memfd guest, MISSING alone for the anonymous COPY baseline) and checks
 *    the granted ioctls: WAKE and COPY always, CONTINUE when mode has MINOR.
 *    Registering an already registered range with the same userfaultfd and
 *    mode is a no-op in the kernel; the range stays registered on success
 *    (it is the registration the fault loop needs, so the caller need not
 *    register again).
 * Returns 0, or -errno with err naming the missing feature, the running
 * kernel and kernel/README.md (or what else is wrong with the fd/range). */
int probe_uffd(int uffd, uint64_t base, uint64_t len, uint64_t mode,
    uint64_t *features, char *err, size_t errlen);

/* The destination's THP guard: MADV_NOHUGEPAGE on [addr, addr+len) so every
 * fault and every page-cache allocation through this mapping is 4 KiB, and
 * the system's shmem THP setting (the selected value of
 * /sys/kernel/mm/transparent_hugepage/shmem_enabled: never, advise,
 * within_size, always, deny, force; "unknown" without THP) in state.
 * *forced (may be NULL) is set for "force", which the kernel documents as
 * forcing huge pages on all shmem: the caller should warn then. Returns 0 or
 * -errno of madvise. */
int probe_thp_guard(void *addr, size_t len, char *state, size_t statelen,
    bool *forced);

/* Opens a userfaultfd with flags (O_CLOEXEC|O_NONBLOCK...): /dev/userfaultfd
 * first, then the syscall. Returns the fd or -errno. *how (may be NULL)
 * tells which way worked. */
int probe_uffd_open(int flags, const char **how);

#endif
