/* probe.c - checks the kernel's userfaultfd/shmem support (see probe.h). */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <linux/userfaultfd.h>

#include "dirty.h"
#include "log.h"
#include "probe.h"
#include "util.h"

/* UFFDIO_CONTINUE's number changed in 5.13-rc8 (_IOR -> _IOWR): headers
 * older than that would build a binary that asks every kernel for the wrong
 * ioctl. */
#ifndef UFFDIO_CONTINUE
#error "build against Linux >= 5.13 UAPI headers (UFFDIO_CONTINUE); see kernel/README.md"
#endif
_Static_assert(UFFDIO_CONTINUE == _IOWR(UFFDIO, _UFFDIO_CONTINUE,
    struct uffdio_continue), "UAPI headers from 5.13-rc1..rc7 carry the old "
    "UFFDIO_CONTINUE number; build against >= 5.13 headers");
#ifndef UFFD_FEATURE_MINOR_SHMEM
#define UFFD_FEATURE_MINOR_SHMEM	(1 << 10)
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW		_IO(0xAA, 0x00)
#endif

#define PROBE_README	"kernel/README.md"
/* Set in a userfaultfd's fdinfo features once UFFDIO_API is done (recent
 * kernels; older ones show only the requested features). */
#define PROBE_FEATURE_INITIALIZED	((uint64_t)1 << 31)
#define PROBE_THP_PATH	"/sys/kernel/mm/transparent_hugepage/shmem_enabled"

static const char *const probe_names[PROBE_NFEATURES] = {
	[PROBE_USERFAULTFD]	= "userfaultfd",
	[PROBE_UFFD_API]	= "UFFDIO_API",
	[PROBE_MISSING_SHMEM]	= "UFFD_FEATURE_MISSING_SHMEM",
	[PROBE_MINOR_SHMEM]	= "UFFD_FEATURE_MINOR_SHMEM",
	[PROBE_REGISTER]	= "UFFDIO_REGISTER MISSING|MINOR on memfd",
	[PROBE_CONTINUE]	= "UFFDIO_CONTINUE",
	[PROBE_COPY]		= "UFFDIO_COPY",
	[PROBE_WAKE]		= "UFFDIO_WAKE",
};

const char *
probe_feature_name(enum probe_feature f)
{
	if ((unsigned)f >= PROBE_NFEATURES)
		return "unknown";
	return probe_names[f];
}

int
probe_uffd_open(int flags, const char **how)
{
	int dev, fd, err;

	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev >= 0) {
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
		err = errno;
		close(dev);
		if (fd >= 0) {
			if (how != NULL)
				*how = "/dev/userfaultfd";
			return fd;
		}
		errno = err;
	}
	fd = (int)syscall(SYS_userfaultfd, flags);
	if (fd < 0)
		return -errno;
	if (how != NULL)
		*how = "userfaultfd(2)";
	return fd;
}

static void
probe_set(struct probe_report *r, enum probe_feature f, bool present,
    const char *fmt, ...) PCD_PRINTF(4, 5);

static void
probe_set(struct probe_report *r, enum probe_feature f, bool present,
    const char *fmt, ...)
{
	va_list ap;

	r->checked[f] = true;
	r->present[f] = present;
	va_start(ap, fmt);
	vsnprintf(r->detail[f], sizeof(r->detail[f]), fmt, ap);
	va_end(ap);
}

/* The bracketed word of shmem_enabled ("always within_size [never] ..."). */
static void
probe_thp_state(char *state, size_t len)
{
	char buf[256], *open_b, *close_b;
	ssize_t n;
	int fd;

	str_copy(state, "unknown", len);
	if ((fd = open(PROBE_THP_PATH, O_RDONLY | O_CLOEXEC)) < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	if ((open_b = strchr(buf, '[')) == NULL ||
	    (close_b = strchr(open_b, ']')) == NULL)
		return;
	*close_b = '\0';
	str_copy(state, open_b + 1, len);
}

static int
probe_api(int uffd, uint64_t want, struct uffdio_api *api)
{
	memset(api, 0, sizeof(*api));
	api->api = UFFD_API;
	api->features = want;
	if (ioctl(uffd, UFFDIO_API, api) < 0)
		return -errno;
	return 0;
}

/* Registers a one-page memfd mapping of our own; fills the register and
 * ioctl features. The uffd has done UFFDIO_API already. */
static int
probe_register(struct probe_report *r, int uffd)
{
	struct uffdio_register reg;
	long psz = sysconf(_SC_PAGESIZE);
	void *map = MAP_FAILED;
	int memfd, rc = 0;
	static const struct {
		enum probe_feature f;
		int bit;
	} bits[] = {
		{ PROBE_CONTINUE, _UFFDIO_CONTINUE },
		{ PROBE_COPY, _UFFDIO_COPY },
		{ PROBE_WAKE, _UFFDIO_WAKE },
	};

	if ((memfd = memfd_create("postcopyd-probe", MFD_CLOEXEC)) < 0) {
		rc = -errno;
		probe_set(r, PROBE_REGISTER, false, "memfd_create: %s",
		    strerror(-rc));
		return rc;
	}
	if (ftruncate(memfd, psz) < 0 ||
	    (map = mmap(NULL, (size_t)psz, PROT_READ | PROT_WRITE, MAP_SHARED,
	    memfd, 0)) == MAP_FAILED) {
		rc = -errno;
		probe_set(r, PROBE_REGISTER, false, "mapping a memfd: %s",
		    strerror(-rc));
		goto out;
	}
	memset(&reg, 0, sizeof(reg));
	reg.range.start = (uintptr_t)map;
	reg.range.len = (uint64_t)psz;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR;
	if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) {
		probe_set(r, PROBE_REGISTER, false, "%s", strerror(errno));
		for (size_t i = 0; i < ARRAY_SIZE(bits); i++)
			probe_set(r, bits[i].f, false,
			    "not granted: registration failed");
		goto out;
	}
	r->range_ioctls = reg.ioctls;
	probe_set(r, PROBE_REGISTER, true, "ioctls 0x%" PRIx64,
	    (uint64_t)reg.ioctls);
	for (size_t i = 0; i < ARRAY_SIZE(bits); i++) {
		bool ok = (reg.ioctls & ((uint64_t)1 << bits[i].bit)) != 0;

		probe_set(r, bits[i].f, ok, "%s",
		    ok ? "granted" : "not granted by UFFDIO_REGISTER");
	}
out:
	if (map != MAP_FAILED)
		munmap(map, (size_t)psz);
	close(memfd);
	return rc;
}

int
probe_kernel(struct probe_report *r)
{
	struct utsname u;
	struct uffdio_api api;
	const char *how = NULL;
	uint64_t want;
	int uffd = -1, rc;

	memset(r, 0, sizeof(*r));
	for (int f = 0; f < PROBE_NFEATURES; f++)
		str_copy(r->detail[f], "an earlier step failed",
		    sizeof(r->detail[f]));
	if (uname(&u) == 0)
		str_copy(r->release, u.release, sizeof(r->release));
	else
		str_copy(r->release, "unknown", sizeof(r->release));
	probe_thp_state(r->shmem_thp, sizeof(r->shmem_thp));

	/* First handshake with no features: the kernel reports all it has. */
	if ((uffd = probe_uffd_open(O_CLOEXEC | O_NONBLOCK, &how)) < 0) {
		probe_set(r, PROBE_USERFAULTFD, false, "%s%s", strerror(-uffd),
		    uffd == -EPERM ? " (needs CAP_SYS_PTRACE, access to "
		    "/dev/userfaultfd or vm.unprivileged_userfaultfd=1)" :
		    uffd == -ENOSYS ? " (kernel built without "
		    "CONFIG_USERFAULTFD)" : "");
		goto done;
	}
	probe_set(r, PROBE_USERFAULTFD, true, "%s", how);
	if ((rc = probe_api(uffd, 0, &api)) < 0) {
		probe_set(r, PROBE_UFFD_API, false, "%s", strerror(-rc));
		goto done;
	}
	r->api_features = api.features;
	probe_set(r, PROBE_UFFD_API, true, "api 0x%llx, features 0x%llx",
	    (unsigned long long)api.api, (unsigned long long)api.features);
	probe_set(r, PROBE_MISSING_SHMEM,
	    (api.features & UFFD_FEATURE_MISSING_SHMEM) != 0, "%s",
	    (api.features & UFFD_FEATURE_MISSING_SHMEM) ? "reported" :
	    "not reported by UFFDIO_API");
	probe_set(r, PROBE_MINOR_SHMEM,
	    (api.features & UFFD_FEATURE_MINOR_SHMEM) != 0, "%s",
	    (api.features & UFFD_FEATURE_MINOR_SHMEM) ? "reported" :
	    "not reported by UFFDIO_API (mainline 5.14+)");
	close(uffd);

	/* Second userfaultfd asking for what the daemon uses, as a VMM would;
	 * a kernel without MINOR_SHMEM gets the request it can take, and the
	 * MINOR registration then tells what fails. */
	if ((uffd = probe_uffd_open(O_CLOEXEC | O_NONBLOCK, NULL)) < 0) {
		probe_set(r, PROBE_REGISTER, false, "second userfaultfd: %s",
		    strerror(-uffd));
		goto done;
	}
	want = (UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_MINOR_SHMEM) &
	    r->api_features;
	if ((rc = probe_api(uffd, want, &api)) < 0) {
		probe_set(r, PROBE_REGISTER, false,
		    "UFFDIO_API with features 0x%llx: %s",
		    (unsigned long long)want, strerror(-rc));
		goto done;
	}
	if ((rc = probe_register(r, uffd)) < 0)
		goto done_err;
done:
	r->precopy = probe_precopy(r->precopy_detail,
	    sizeof(r->precopy_detail)) == 0;
	rc = 0;
	for (int f = 0; f < PROBE_NFEATURES; f++)
		if (!r->present[f])
			rc = -ENOTSUP;
done_err:
	if (uffd >= 0)
		close(uffd);
	return rc;
}

static const char *
probe_state(const struct probe_report *r, int f)
{
	if (r->present[f])
		return "present";
	return r->checked[f] ? "MISSING" : "not checked";
}

int
probe_report_print(const struct probe_report *r, int fd)
{
	int missing = 0;

	for (int f = 0; f < PROBE_NFEATURES; f++) {
		dprintf(fd, "%s: %s (%s)\n", probe_names[f], probe_state(r, f),
		    r->detail[f]);
		if (!r->present[f])
			missing++;
	}
	dprintf(fd, "precopy dirty tracking (UFFD_FEATURE_WP_ASYNC, "
	    "PAGEMAP_SCAN): %s (%s)\n", r->precopy ? "present" : "MISSING",
	    r->precopy_detail);
	dprintf(fd, "kernel: %s\n", r->release);
	dprintf(fd, "shmem THP: %s (guest memory is guarded with "
	    "MADV_NOHUGEPAGE%s)\n", r->shmem_thp,
	    strcmp(r->shmem_thp, "force") == 0 ? "; 'force' may override it" :
	    "");
	if (missing == 0)
		dprintf(fd, "result: all %d features present\n",
		    PROBE_NFEATURES);
	else
		dprintf(fd, "result: %d of %d features not present; see %s\n",
		    missing, PROBE_NFEATURES, PROBE_README);
	return missing;
}

void
probe_report_missing(const struct probe_report *r, char *buf, size_t len)
{
	size_t off = 0;
	int n, unchecked = 0;

	if (len == 0)
		return;
	buf[0] = '\0';
	for (int f = 0; f < PROBE_NFEATURES; f++) {
		if (r->present[f])
			continue;
		if (!r->checked[f]) {
			unchecked++;
			continue;
		}
		n = snprintf(buf + off, len - off, "%s%s (%s)",
		    off == 0 ? "userfaultfd support missing: " : ", ",
		    probe_names[f], r->detail[f]);
		if (n < 0 || (size_t)n >= len - off)
			return;
		off += (size_t)n;
	}
	if (off == 0 && unchecked == 0)
		return;
	n = snprintf(buf + off, len - off, "%s%d more not checked; running "
	    "kernel %s; see %s", off == 0 ? "" : "; ", unchecked, r->release,
	    PROBE_README);
	(void)n;
}

bool
probe_test_hide_wp_async(void)
{
	const char *e = getenv("PCD_TEST_HIDE_WP_ASYNC");

	return e != NULL && strcmp(e, "1") == 0;
}

int
probe_precopy(char *why, size_t len)
{
	struct utsname u;
	char detail[2 * PROBE_DETAIL_MAX];
	int rc = dirty_selftest(detail, sizeof(detail));

	if (rc == 0) {
		snprintf(why, len, "a written page of a memfd mapping was "
		    "reported and re-protected");
		return 0;
	}
	snprintf(why, len, "%s: %s; running kernel %s; postcopy-only "
	    "migrations work", rc == -ENOTSUP ? "precopy needs Linux >= 6.7 "
	    "(UFFD_FEATURE_WP_ASYNC, PAGEMAP_SCAN)" : "precopy's dirty "
	    "tracking could not be set up", detail,
	    uname(&u) == 0 ? u.release : "unknown");
	return rc;
}

static const char *
probe_mode_name(uint64_t mode)
{
	switch (mode & (UFFDIO_REGISTER_MODE_MISSING |
	    UFFDIO_REGISTER_MODE_MINOR)) {
	case UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR:
		return "MISSING|MINOR";
	case UFFDIO_REGISTER_MODE_MINOR:
		return "MINOR";
	case UFFDIO_REGISTER_MODE_MISSING:
		return "MISSING";
	default:
		return "no";
	}
}

/* The "API:\t<api>:<features>:<ioctls>" line of /proc/self/fdinfo/<fd>. */
static int
probe_fdinfo_features(int fd, uint64_t *features)
{
	char path[64], line[256];
	unsigned long long api, feat, ioctls;
	FILE *f;
	int rc = -ENOENT;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	if ((f = fopen(path, "re")) == NULL)
		return -errno;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "API:\t%llx:%llx:%llx", &api, &feat,
		    &ioctls) == 3) {
			*features = feat;
			rc = 0;
			break;
		}
	}
	fclose(f);
	return rc;
}

int
probe_uffd(int uffd, uint64_t base, uint64_t len, uint64_t mode,
    uint64_t *features, char *err, size_t errlen)
{
	struct uffdio_register reg;
	struct utsname u;
	char path[64], link[128];
	const char *rel;
	uint64_t feat = 0, need;
	ssize_t n;
	int rc;

	rel = uname(&u) == 0 ? u.release : "unknown";
	snprintf(path, sizeof(path), "/proc/self/fd/%d", uffd);
	if ((n = readlink(path, link, sizeof(link) - 1)) < 0) {
		rc = -errno;
		snprintf(err, errlen, "fd %d: %s", uffd, strerror(-rc));
		return rc;
	}
	link[n] = '\0';
	if (strcmp(link, "anon_inode:[userfaultfd]") != 0) {
		snprintf(err, errlen, "fd %d is not a userfaultfd (it is %s)",
		    uffd, link);
		return -EBADF;
	}
	if ((rc = probe_fdinfo_features(uffd, &feat)) < 0) {
		snprintf(err, errlen, "userfaultfd %d: cannot read its "
		    "features from /proc/self/fdinfo: %s", uffd, strerror(-rc));
		return rc;
	}
	if (features != NULL)
		*features = feat;
	if (len == 0)
		return 0;

	memset(&reg, 0, sizeof(reg));
	reg.range.start = base;
	reg.range.len = len;
	reg.mode = mode;
	if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) {
		rc = -errno;
		switch (rc) {
		case -EINVAL:
			if ((feat & PROBE_FEATURE_INITIALIZED) == 0) {
				snprintf(err, errlen, "cannot register "
				    "0x%" PRIx64 "+0x%" PRIx64 ": %s (the VMM "
				    "has not done the UFFDIO_API handshake on "
				    "this userfaultfd: its features are 0x%"
				    PRIx64 "; older kernels do not mark "
				    "the handshake there; running kernel %s; "
				    "see " PROBE_README ")", base, len,
				    strerror(-rc), feat, rel);
				break;
			}
			snprintf(err, errlen, "cannot register %s "
			    "faults on 0x%" PRIx64 "+0x%" PRIx64 ": %s (the "
			    "range is not page-aligned or not a memfd/shmem "
			    "mapping, or the "
			    "kernel lacks UFFD_FEATURE_MINOR_SHMEM; VMM "
			    "features 0x%" PRIx64 "; running kernel %s; see "
			    PROBE_README ")", probe_mode_name(mode), base, len,
			    strerror(-rc), feat, rel);
			break;
		case -EBUSY:
			snprintf(err, errlen, "cannot register 0x%" PRIx64
			    "+0x%" PRIx64 ": %s (already registered with "
			    "another userfaultfd)", base, len, strerror(-rc));
			break;
		case -ENOMEM:
			snprintf(err, errlen, "cannot register 0x%" PRIx64
			    "+0x%" PRIx64 ": %s (not mapped in the VMM)",
			    base, len, strerror(-rc));
			break;
		default:
			snprintf(err, errlen, "cannot register 0x%" PRIx64
			    "+0x%" PRIx64 " through the VMM's userfaultfd: %s",
			    base, len, strerror(-rc));
			break;
		}
		return rc;
	}
	need = (uint64_t)1 << _UFFDIO_COPY | (uint64_t)1 << _UFFDIO_WAKE;
	if (mode & UFFDIO_REGISTER_MODE_MINOR)
		need |= (uint64_t)1 << _UFFDIO_CONTINUE;
	if ((reg.ioctls & need) != need) {
		snprintf(err, errlen, "kernel lacks%s%s%s on 0x%" PRIx64
		    "+0x%" PRIx64 " (granted ioctls 0x%llx); running kernel "
		    "%s; see " PROBE_README,
		    (reg.ioctls & need & (uint64_t)1 << _UFFDIO_CONTINUE) ||
		    !(need & (uint64_t)1 << _UFFDIO_CONTINUE) ? "" :
		    " UFFDIO_CONTINUE",
		    (reg.ioctls & (uint64_t)1 << _UFFDIO_COPY) ? "" :
		    " UFFDIO_COPY",
		    (reg.ioctls & (uint64_t)1 << _UFFDIO_WAKE) ? "" :
		    " UFFDIO_WAKE", base, len,
		    (unsigned long long)reg.ioctls, rel);
		return -ENOTSUP;
	}
	return 0;
}

int
probe_thp_guard(void *addr, size_t len, char *state, size_t statelen,
    bool *forced)
{
	probe_thp_state(state, statelen);
	if (forced != NULL)
		*forced = strcmp(state, "force") == 0;
	if (madvise(addr, len, MADV_NOHUGEPAGE) < 0)
		return -errno;
	return 0;
}
