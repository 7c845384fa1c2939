/* postcopy-guest - the stand-in VMM of postcopyd's tests, demo and benchmark.
 *
 *   source: fills a memfd with generated content (guestgen), attaches it as
 *           SOURCE (with a userfaultfd and its pagemap for precopy's dirty
 *           tracking), keeps reading (and with --dirty-rate writing) its
 *           memory until PAUSE, answers PAUSED with a device state that
 *           names the content (seed, size, zero fraction, writes made),
 *           waits for COMPLETE.
 *   dest:   creates the memfd and the userfaultfd, maps the guest, attaches
 *           as DEST, waits for RESUME, runs a workload (threads checking
 *           every page they touch, or a KVM vCPU summing every page), waits
 *           for COMPLETE and checks every page (xxh3) against the seed.
 *   --local does the destination's job without a daemon: this process
 *           registers the guest mapping on its own userfaultfd and resolves
 *           faults from a thread (UFFDIO_CONTINUE, or UFFDIO_COPY in COPY
 *           mode), so the workloads can be tested alone.
 *
 *   --hugepages 2M|1G backs guest memory with a hugetlbfs memfd: the guest
 *           is mapped (and CONTINUEd, in --local) a huge page at a time,
 *           while content and checks stay per 4 KiB page; zero pages come
 *           in whole huge pages. With --copy, anonymous huge pages
 *           (MAP_HUGETLB), each placed by one UFFDIO_COPY of the whole
 *           huge page.
 *
 * Exit: 0 every page verified; 1 a mismatch or a failed migration; 2 bad
 * usage or setup; 77 the kvm workload without a usable /dev/kvm, or
 * --hugepages without huge pages to reserve.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/memfd.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "guestdirty.h"
#include "guestgen.h"
#include "guestkvm.h"
#include "pcvmm.h"

#define PAGE		GUESTGEN_PAGE
#define STATE_MAGIC	"PCGUEST2"
#define STATE_HDR	48	/* magic seed size zero page pad nwrites */
#define EXIT_SKIP	77
#define MAX_THREADS	256
#define MAX_REPORTED	5	/* mismatches printed in detail */
#ifndef MAP_HUGE_2MB	/* <linux/mman.h>, which clashes with <sys/mman.h> */
#define MAP_HUGE_2MB	(21 << MAP_HUGE_SHIFT)
#define MAP_HUGE_1GB	(30 << MAP_HUGE_SHIFT)
#endif
#define HUGE_2M		(2u << 20)	/* --hugepages 2M */
#define HUGE_1G		(1u << 30)	/* --hugepages 1G */

enum role { ROLE_SOURCE, ROLE_DEST };
enum workload { WL_THREADS, WL_KVM, WL_NONE };
enum pattern { PAT_RANDOM, PAT_SEQUENTIAL, PAT_HOTSET };

struct opts {
	enum role	 role;
	bool		 local;
	bool		 copy;		/* COPY mode (dest / local) */
	bool		 json;
	const char	*id;
	const char	*socket;
	uint64_t	 size;
	uint64_t	 seed;
	double		 zero_fraction;
	enum workload	 workload;
	unsigned	 threads;
	enum pattern	 pattern;
	double		 hot_fraction;
	double		 duration;	/* s; 0 = until every page is touched */
	double		 timeout;	/* s to wait for daemon events */
	double		 reattach;	/* s to re-attach after daemon loss */
	double		 prefill;	/* --local: share of pages already here */
	uint64_t	 state_pad;	/* extra device-state bytes */
	int64_t		 corrupt;	/* --local: deliver this page wrong */
	uint32_t	 huge;		/* --hugepages: bytes; 0 = base pages */
	bool		 quiet;
	double		 dirty_rate;	/* source: pages written per s */
	bool		 no_track_dirty; /* source: attach like an older VMM */
	double		 pause_delay;	/* source: s between PAUSE and pausing */
	bool		 survive_cancel; /* source: a failed Complete before
					  * the pause is checked, not fatal */
	bool		 truncate_at_pause; /* source: a hostile VMM */
	bool		 truncate_at_resume; /* destination: the same */
};

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void
say(const struct opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
say(const struct opts *o, const char *fmt, ...)
{
	va_list ap;

	if (o->quiet)
		return;
	va_start(ap, fmt);
	fprintf(stderr, "postcopy-guest: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static _Noreturn void
die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static _Noreturn void
die(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "postcopy-guest: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(code);
}

static uint64_t
rng_next(uint64_t *s)
{
	/* xorshift64* */
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* ---- device state ----------------------------------------------------- */

static void
put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void
put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t
get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

static uint8_t *
state_encode(const struct guestgen *g, uint64_t size, uint64_t pad,
    uint64_t nwrites, size_t *len)
{
	uint8_t *s = malloc(STATE_HDR + pad);

	if (s == NULL)
		die(2, "out of memory for the device state");
	memcpy(s, STATE_MAGIC, 8);
	put64(s + 8, g->seed);
	put64(s + 16, size);
	put32(s + 24, g->zero_q16);
	put32(s + 28, (uint32_t)guestgen_unit(g));	/* the guest's pages */
	put64(s + 32, pad);
	put64(s + 40, nwrites);
	for (uint64_t i = 0; i < pad; i++)
		s[STATE_HDR + i] = (uint8_t)(i * 31 + 7);
	*len = STATE_HDR + pad;
	return s;
}

/* Checks the source's device state; fills g. */
static int
state_decode(const void *buf, size_t len, uint64_t size, struct guestgen *g,
    uint64_t *nwrites, char *err, size_t errlen)
{
	const uint8_t *s = buf;
	uint64_t ssize, pad;

	if (len < STATE_HDR || memcmp(s, STATE_MAGIC, 8) != 0) {
		snprintf(err, errlen, "device state (%zu bytes) is not a "
		    "postcopy-guest state", len);
		return -EINVAL;
	}
	ssize = get64(s + 16);
	pad = get64(s + 32);
	if (ssize != size) {
		snprintf(err, errlen, "the source guest is %" PRIu64 " bytes, "
		    "this one %" PRIu64, ssize, size);
		return -EINVAL;
	}
	if (guestgen_set_unit(g, get32(s + 28)) < 0 ||
	    get32(s + 24) > 65536 || pad != len - STATE_HDR) {
		snprintf(err, errlen, "device state header is inconsistent "
		    "(page %u, zero %u/65536, pad %" PRIu64 " of %zu bytes)",
		    get32(s + 28), get32(s + 24), pad, len);
		return -EINVAL;
	}
	for (uint64_t i = 0; i < pad; i++)
		if (s[STATE_HDR + i] != (uint8_t)(i * 31 + 7)) {
			snprintf(err, errlen, "device state byte %" PRIu64
			    " is corrupt", STATE_HDR + i);
			return -EINVAL;
		}
	if (get64(s + 40) > GUESTDIRTY_MAX_WRITES) {
		snprintf(err, errlen, "device state: %" PRIu64 " source writes "
		    "is more than this guest can replay", get64(s + 40));
		return -EINVAL;
	}
	g->seed = get64(s + 8);
	g->zero_q16 = get32(s + 24);
	*nwrites = get64(s + 40);
	return 0;
}

/* ---- guest memory ----------------------------------------------------- */

struct guest {
	uint64_t	 size, npages;
	uint32_t	 ps;		/* mapping unit: PAGE or the huge page */
	int		 memfd;		/* -1 in COPY mode */
	int		 uffd;		/* dest / local */
	uint8_t		*mem;		/* the guest mapping */
	uint8_t		*alias;		/* --local MINOR: second mapping */
};

static int
uffd_open(bool copy, bool huge)
{
	struct uffdio_api api = { .api = UFFD_API };
	int fd;

	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		/* No syscall for unprivileged users: /dev/userfaultfd. */
		int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
		if (dev >= 0) {
			fd = ioctl(dev, USERFAULTFD_IOC_NEW,
			    O_CLOEXEC | O_NONBLOCK);
			close(dev);
		}
	}
	if (fd < 0)
		die(2, "userfaultfd: %s", strerror(errno));
	if (huge && copy)
		api.features = UFFD_FEATURE_MISSING_HUGETLBFS;
	else if (huge)
		api.features = UFFD_FEATURE_MINOR_HUGETLBFS |
		    UFFD_FEATURE_MISSING_HUGETLBFS;
	else if (!copy)
		api.features = UFFD_FEATURE_MINOR_SHMEM |
		    UFFD_FEATURE_MISSING_SHMEM;
	if (ioctl(fd, UFFDIO_API, &api) < 0)
		die(2, "UFFDIO_API (features 0x%llx): %s%s",
		    (unsigned long long)api.features, strerror(errno),
		    copy ? "" : huge ? " (kernel lacks "
		    "UFFD_FEATURE_MINOR_HUGETLBFS?)" : " (kernel lacks "
		    "UFFD_FEATURE_MINOR_SHMEM?)");
	return fd;
}

/* Guest memory on hugetlbfs: every huge page is reserved by the mmap (no
 * MAP_NORESERVE), so a short pool fails here, not as a SIGBUS later. COPY
 * mode: anonymous huge pages (MAP_HUGETLB), private, no memfd. */
static void
guest_map_huge(struct guest *gu, const struct opts *o)
{
	bool gib = o->huge == HUGE_1G;
	const char *name = gib ? "1 GiB" : "2 MiB";

	if (o->copy) {
		gu->mem = mmap(NULL, gu->size, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB |
		    (gib ? MAP_HUGE_1GB : MAP_HUGE_2MB), -1, 0);
		if (gu->mem == MAP_FAILED)
			die(errno == ENOMEM || errno == EINVAL ? EXIT_SKIP : 2,
			    "cannot reserve %" PRIu64 " %s anonymous huge pages "
			    "for the guest (MAP_HUGETLB): %s (see HugePages_Free "
			    "in /proc/meminfo; reserve them in /sys/kernel/mm/"
			    "hugepages/hugepages-%ukB/nr_hugepages)",
			    gu->size / o->huge, name, strerror(errno),
			    o->huge >> 10);
		return;
	}
	gu->memfd = memfd_create("postcopy-guest", MFD_CLOEXEC | MFD_HUGETLB |
	    (gib ? MFD_HUGE_1GB : MFD_HUGE_2MB));
	if (gu->memfd < 0)
		die(errno == EINVAL || errno == ENODEV ? EXIT_SKIP : 2,
		    "memfd_create(MFD_HUGETLB | MFD_HUGE_%s): %s%s",
		    gib ? "1GB" : "2MB", strerror(errno), errno == EINVAL ||
		    errno == ENODEV ? " (this host offers no huge pages of "
		    "that size)" : "");
	if (ftruncate(gu->memfd, (off_t)gu->size) < 0)
		die(2, "hugetlbfs memfd of %" PRIu64 " bytes: %s", gu->size,
		    strerror(errno));
	gu->mem = mmap(NULL, gu->size, PROT_READ | PROT_WRITE, MAP_SHARED,
	    gu->memfd, 0);
	if (gu->mem == MAP_FAILED)
		die(errno == ENOMEM ? EXIT_SKIP : 2, "cannot reserve %" PRIu64
		    " %s huge pages for the guest: %s (see HugePages_Free in "
		    "/proc/meminfo; reserve them in /sys/kernel/mm/hugepages/"
		    "hugepages-%ukB/nr_hugepages)", gu->size / o->huge, name,
		    strerror(errno), o->huge >> 10);
}

static void
guest_map(struct guest *gu, const struct opts *o, bool want_uffd)
{
	gu->size = o->size;
	gu->npages = o->size / PAGE;
	gu->ps = o->huge != 0 ? o->huge : PAGE;
	gu->memfd = gu->uffd = -1;
	gu->alias = NULL;
	if (o->huge != 0) {
		guest_map_huge(gu, o);
	} else if (o->copy) {
		gu->mem = mmap(NULL, gu->size, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (gu->mem == MAP_FAILED)
			die(2, "mmap of %" PRIu64 " bytes: %s", gu->size,
			    strerror(errno));
	} else {
		gu->memfd = memfd_create("postcopy-guest", MFD_CLOEXEC);
		if (gu->memfd < 0 || ftruncate(gu->memfd, (off_t)gu->size) < 0)
			die(2, "memfd of %" PRIu64 " bytes: %s", gu->size,
			    strerror(errno));
		gu->mem = mmap(NULL, gu->size, PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_NORESERVE, gu->memfd, 0);
		if (gu->mem == MAP_FAILED)
			die(2, "mmap of the memfd: %s", strerror(errno));
	}
	/* libpcvmm advises the mapping at attach; --local has no attach.
	 * (A no-op on hugetlbfs.) */
	if (madvise(gu->mem, gu->size, MADV_NOHUGEPAGE) < 0)
		die(2, "madvise(MADV_NOHUGEPAGE): %s", strerror(errno));
	if (want_uffd)
		gu->uffd = uffd_open(o->copy, o->huge != 0);
}

/* The source's content: generated pages, zero pages left as holes. */
static uint64_t
guest_fill(struct guest *gu, const struct guestgen *g)
{
	uint64_t zero = 0;

	for (uint64_t i = 0; i < gu->npages; i++) {
		if (guestgen_is_zero(g, i))
			zero++;
		else
			guestgen_page(g, i, gu->mem + i * PAGE);
	}
	return zero;
}

/* ---- --local: this process resolves its own faults -------------------- */

struct local {
	struct guest		*gu;
	const struct guestgen	*g;
	bool			 copy;
	int64_t			 corrupt;
	uint8_t			*valid;		/* one byte per page */
	uint8_t			*hbuf;		/* COPY on huge pages: one */
	int			 stopfd;
	pthread_t		 th;
	uint64_t		 faults_minor, faults_missing, wakes;
	char			 err[256];
};

/* MINOR mode: every 4 KiB piece of the mapping unit (a huge page, or the
 * page itself) not yet valid is written through the alias (not
 * registered: no fault), then the whole unit is mapped by one CONTINUE. */
static int
local_continue(struct local *l, uint64_t idx)
{
	struct guest *gu = l->gu;
	uint64_t per = gu->ps / PAGE, first = idx - idx % per;
	struct uffdio_continue c = { .range = {
	    (uint64_t)(uintptr_t)gu->mem + first * PAGE, gu->ps } };

	for (uint64_t i = first; i < first + per; i++) {
		if (l->valid[i])
			continue;
		guestgen_page(l->g, i, gu->alias + i * PAGE);
		if ((int64_t)i == l->corrupt)
			gu->alias[i * PAGE + PAGE - 1] ^= 0x40;
		l->valid[i] = 1;
	}
	return ioctl(gu->uffd, UFFDIO_CONTINUE, &c);
}

/* COPY mode on huge pages: the whole huge page is assembled in a buffer
 * (its pieces generated, zero pages zero) and placed by one UFFDIO_COPY;
 * the kernel takes nothing smaller there. */
static int
local_copy_huge(struct local *l, uint64_t idx)
{
	struct guest *gu = l->gu;
	uint64_t per = gu->ps / PAGE, first = idx - idx % per;
	struct uffdio_copy c = {
		.dst = (uint64_t)(uintptr_t)gu->mem + first * PAGE,
		.src = (uint64_t)(uintptr_t)l->hbuf, .len = gu->ps,
	};

	for (uint64_t i = first; i < first + per; i++) {
		uint8_t *p = l->hbuf + (i - first) * PAGE;

		if (guestgen_is_zero(l->g, i))
			memset(p, 0, PAGE);
		else
			guestgen_page(l->g, i, p);
		if ((int64_t)i == l->corrupt)
			p[PAGE - 1] ^= 0x40;
	}
	return ioctl(gu->uffd, UFFDIO_COPY, &c);
}

static int
local_resolve(struct local *l, uint64_t addr)
{
	struct guest *gu = l->gu;
	uint64_t idx = (addr - (uint64_t)(uintptr_t)gu->mem) / PAGE;
	uint64_t page = (uint64_t)(uintptr_t)gu->mem + idx * PAGE;
	uint64_t buf[PAGE / 8];
	int r;

	if (idx >= gu->npages) {
		snprintf(l->err, sizeof(l->err), "fault outside the guest at "
		    "0x%" PRIx64, addr);
		return -EFAULT;
	}
	if (l->copy && gu->ps > PAGE) {
		r = local_copy_huge(l, idx);
	} else if (l->copy) {
		if (guestgen_is_zero(l->g, idx) && (int64_t)idx != l->corrupt) {
			struct uffdio_zeropage z = { .range = { page, PAGE } };
			r = ioctl(gu->uffd, UFFDIO_ZEROPAGE, &z);
		} else {
			struct uffdio_copy c = { .dst = page,
			    .src = (uint64_t)(uintptr_t)buf, .len = PAGE };
			guestgen_page(l->g, idx, buf);
			if ((int64_t)idx == l->corrupt)
				((uint8_t *)buf)[PAGE - 1] ^= 0x40;
			r = ioctl(gu->uffd, UFFDIO_COPY, &c);
		}
	} else {
		r = local_continue(l, idx);
	}
	if (r < 0 && errno == EEXIST) {
		/* Already mapped (a racing fault): wake the waiters. */
		struct uffdio_range w = { page - page % gu->ps, gu->ps };
		l->wakes++;
		r = ioctl(gu->uffd, UFFDIO_WAKE, &w);
	}
	if (r < 0) {
		snprintf(l->err, sizeof(l->err), "%s on page %" PRIu64 ": %s",
		    l->copy ? "UFFDIO_COPY" : "UFFDIO_CONTINUE", idx,
		    strerror(errno));
		return -errno;
	}
	return 0;
}

static void *
local_main(void *arg)
{
	struct local *l = arg;
	struct uffd_msg msgs[64];

	for (;;) {
		struct pollfd p[2] = { { l->gu->uffd, POLLIN, 0 },
		    { l->stopfd, POLLIN, 0 } };
		ssize_t n;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			snprintf(l->err, sizeof(l->err), "poll: %s",
			    strerror(errno));
			return NULL;
		}
		if (p[1].revents)
			return NULL;
		n = read(l->gu->uffd, msgs, sizeof(msgs));
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			snprintf(l->err, sizeof(l->err), "read uffd: %s",
			    strerror(errno));
			return NULL;
		}
		for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++) {
			if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			if (msgs[i].arg.pagefault.flags &
			    UFFD_PAGEFAULT_FLAG_MINOR)
				l->faults_minor++;
			else
				l->faults_missing++;
			if (local_resolve(l, msgs[i].arg.pagefault.address &
			    ~(uint64_t)(PAGE - 1)) < 0)
				return NULL;
		}
	}
}

static void
local_start(struct local *l, struct guest *gu, const struct guestgen *g,
    const struct opts *o)
{
	struct uffdio_register reg = { .range = {
	    (uint64_t)(uintptr_t)gu->mem, gu->size } };
	uint64_t prefilled = 0, rng = g->seed ^ 0x1234;

	memset(l, 0, sizeof(*l));
	l->gu = gu;
	l->g = g;
	l->copy = o->copy;
	l->corrupt = o->corrupt;
	if ((l->valid = calloc(gu->npages, 1)) == NULL)
		die(2, "out of memory");
	if (o->copy && gu->ps > PAGE && (l->hbuf = malloc(gu->ps)) == NULL)
		die(2, "out of memory for a huge page buffer");
	if (!o->copy) {
		gu->alias = mmap(NULL, gu->size, PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_NORESERVE, gu->memfd, 0);
		if (gu->alias == MAP_FAILED)
			die(2, "mmap of the alias: %s", strerror(errno));
		/* Pages "received in the background" before switchover:
		 * in the page cache, unmapped in the guest -> MINOR faults. */
		for (uint64_t i = 0; i < gu->npages; i++)
			if ((rng_next(&rng) >> 11) * 0x1.0p-53 < o->prefill &&
			    (int64_t)i != o->corrupt) {
				guestgen_page(g, i, gu->alias + i * PAGE);
				l->valid[i] = 1;
				prefilled++;
			}
	}
	reg.mode = UFFDIO_REGISTER_MODE_MISSING |
	    (o->copy ? 0 : UFFDIO_REGISTER_MODE_MINOR);
	if (ioctl(gu->uffd, UFFDIO_REGISTER, &reg) < 0)
		die(2, "UFFDIO_REGISTER %s on the guest mapping: %s",
		    o->copy ? "MISSING" : "MISSING|MINOR", strerror(errno));
	if ((l->stopfd = eventfd(0, EFD_CLOEXEC)) < 0)
		die(2, "eventfd: %s", strerror(errno));
	if (pthread_create(&l->th, NULL, local_main, l) != 0)
		die(2, "cannot start the fault thread");
	say(o, "local: %s mode, %" PRIu64 " of %" PRIu64 " pages already in "
	    "the page cache", o->copy ? "COPY" : "MINOR", prefilled,
	    gu->npages);
}

static void
local_stop(struct local *l)
{
	uint64_t one = 1;

	if (write(l->stopfd, &one, sizeof(one)) != sizeof(one))
		die(2, "eventfd write: %s", strerror(errno));
	pthread_join(l->th, NULL);
	close(l->stopfd);
	free(l->valid);
	free(l->hbuf);
}

/* ---- the threads workload --------------------------------------------- */

struct wl {
	const struct opts	*o;
	const struct guestdirty	*x;	/* content at the source's pause */
	uint8_t			*mem;
	uint64_t		 npages;
	uint32_t		*order;		/* random / hotset: a permutation */
	uint64_t		 nhot;
	atomic_uint_fast64_t	 cursor;
	atomic_uchar		*touched;
	uint8_t			*bad;		/* pages that failed a check */
	uint32_t		*lat_ns;	/* first touch, per page */
	atomic_bool		 stop;
	double			 deadline;	/* now_s(); 0 = none */
	atomic_uint_fast64_t	 checked, mismatched, first_touches;
	atomic_uint		 reported;
};

struct wl_thread {
	struct wl	*w;
	pthread_t	 th;
	uint64_t	 rng;
};

static void
wl_report(atomic_uint *reported, uint64_t idx, const struct guestdirty *x,
    const uint8_t *got, const char *when)
{
	static const char *kinds[] = { "zero", "patterned", "random" };
	const struct guestgen *g = &x->base;
	uint8_t want[PAGE];
	size_t off = 0;

	if (atomic_fetch_add(reported, 1) >= MAX_REPORTED)
		return;
	guestdirty_expect(x, idx, want);
	while (off < PAGE && got[off] == want[off])
		off++;
	fprintf(stderr, "postcopy-guest: MISMATCH %s: page %" PRIu64 " (%s): "
	    "first difference at byte %zu (got 0x%02x, want 0x%02x), xxh3 "
	    "%016" PRIx64 " want %016" PRIx64 "\n", when, idx,
	    guestdirty_written(x, idx) ? "rewritten by the source" :
	    kinds[guestgen_kind(g, idx)], off, off < PAGE ? got[off] : 0,
	    off < PAGE ? want[off] : 0, guestgen_hash(got),
	    guestgen_hash(want));
}

static void
wl_access(struct wl *w, uint64_t idx, uint8_t *buf)
{
	const uint8_t *p = w->mem + idx * PAGE;
	bool first = atomic_exchange(&w->touched[idx], 1) == 0;
	uint64_t t0, t1;

	t0 = mono_ns();
	(void)*(const volatile uint64_t *)p;	/* the first touch */
	t1 = mono_ns();
	if (first) {
		w->lat_ns[idx] = t1 - t0 > UINT32_MAX ? UINT32_MAX :
		    (uint32_t)(t1 - t0);
		atomic_fetch_add(&w->first_touches, 1);
	}
	guestdirty_expect(w->x, idx, buf);
	if (memcmp(p, buf, PAGE) != 0) {
		w->bad[idx] = 1;
		atomic_fetch_add(&w->mismatched, 1);
		wl_report(&w->reported, idx, w->x, p, "workload");
	}
	atomic_fetch_add(&w->checked, 1);
}

static void *
wl_main(void *arg)
{
	struct wl_thread *t = arg;
	struct wl *w = t->w;
	uint8_t *buf = aligned_alloc(64, PAGE);
	uint64_t n = 0;

	if (buf == NULL)
		die(2, "out of memory");
	for (;; n++) {
		uint64_t idx, c;

		if ((n & 63) == 0 && (atomic_load(&w->stop) ||
		    (w->deadline > 0 && now_s() > w->deadline)))
			break;
		if (w->o->pattern == PAT_HOTSET && w->nhot > 0 &&
		    rng_next(&t->rng) % 4 != 0) {
			/* 3 in 4 accesses go to the hot set. */
			idx = w->order[rng_next(&t->rng) % w->nhot];
		} else {
			c = atomic_fetch_add(&w->cursor, 1);
			if (c >= w->npages)
				break;
			idx = w->order != NULL ? w->order[c] : c;
		}
		wl_access(w, idx, buf);
	}
	free(buf);
	return NULL;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

struct wl_result {
	uint64_t	checked, mismatched, touched;
	double		p50_us, p99_us, max_us;
};

static void
wl_threads(const struct opts *o, const struct guestdirty *x, struct guest *gu,
    uint8_t *bad, struct wl_result *res)
{
	const struct guestgen *g = &x->base;
	struct wl w = { 0 };
	struct wl_thread *ts;
	uint32_t *lats;
	uint64_t n = 0, rng = g->seed ^ 0x5eed;

	w.o = o;
	w.x = x;
	w.mem = gu->mem;
	w.npages = gu->npages;
	w.bad = bad;
	w.touched = calloc(gu->npages, sizeof(*w.touched));
	w.lat_ns = calloc(gu->npages, sizeof(*w.lat_ns));
	ts = calloc(o->threads, sizeof(*ts));
	if (w.touched == NULL || w.lat_ns == NULL || ts == NULL)
		die(2, "out of memory");
	if (o->pattern != PAT_SEQUENTIAL) {
		if ((w.order = malloc(gu->npages * sizeof(uint32_t))) == NULL)
			die(2, "out of memory");
		for (uint64_t i = 0; i < gu->npages; i++)
			w.order[i] = (uint32_t)i;
		for (uint64_t i = gu->npages - 1; i > 0; i--) {
			uint64_t j = rng_next(&rng) % (i + 1);
			uint32_t tmp = w.order[i];
			w.order[i] = w.order[j];
			w.order[j] = tmp;
		}
		if (o->pattern == PAT_HOTSET) {
			w.nhot = (uint64_t)(gu->npages * o->hot_fraction);
			if (w.nhot == 0)
				w.nhot = 1;
		}
	}
	if (o->duration > 0)
		w.deadline = now_s() + o->duration;
	for (unsigned i = 0; i < o->threads; i++) {
		ts[i].w = &w;
		ts[i].rng = (g->seed + i + 1) * 0x9e3779b97f4a7c15ull | 1;
		if (pthread_create(&ts[i].th, NULL, wl_main, &ts[i]) != 0)
			die(2, "cannot start workload thread %u", i);
	}
	for (unsigned i = 0; i < o->threads; i++)
		pthread_join(ts[i].th, NULL);

	res->checked = atomic_load(&w.checked);
	res->mismatched = atomic_load(&w.mismatched);
	res->touched = atomic_load(&w.first_touches);
	lats = malloc((res->touched + 1) * sizeof(*lats));
	if (lats == NULL)
		die(2, "out of memory");
	for (uint64_t i = 0; i < gu->npages && n < res->touched; i++)
		if (atomic_load(&w.touched[i]))
			lats[n++] = w.lat_ns[i];
	res->p50_us = res->p99_us = res->max_us = 0;
	if (n > 0) {
		qsort(lats, n, sizeof(*lats), cmp_u32);
		res->p50_us = lats[n / 2] / 1e3;
		res->p99_us = lats[(uint64_t)(n * 0.99) < n ?
		    (uint64_t)(n * 0.99) : n - 1] / 1e3;
		res->max_us = lats[n - 1] / 1e3;
	}
	free(lats);
	free(w.order);
	free(w.touched);
	free(w.lat_ns);
	free(ts);
}

/* ---- verification: xxh3 of every page --------------------------------- */

struct vf {
	const struct guestdirty	*x;
	const uint8_t		*mem;
	uint64_t		 from, to;
	uint64_t		 mismatched, zero;
	uint8_t			*bad;
	atomic_uint		*reported;
	pthread_t		 th;
};

static void *
vf_main(void *arg)
{
	struct vf *v = arg;

	for (uint64_t i = v->from; i < v->to; i++) {
		const uint8_t *p = v->mem + i * PAGE;
		if (guestdirty_is_zero(v->x, i))
			v->zero++;
		if (guestgen_hash(p) != guestdirty_expect_hash(v->x, i)) {
			v->bad[i] = 1;
			v->mismatched++;
			wl_report(v->reported, i, v->x, p, "verify");
		}
	}
	return NULL;
}

static uint64_t
verify(const struct guestdirty *x, const struct guest *gu, unsigned nthreads,
    uint8_t *bad, uint64_t *zero)
{
	struct vf vs[MAX_THREADS];
	atomic_uint reported = 0;
	uint64_t nbad = 0, per;

	if (nthreads == 0)
		nthreads = 1;
	per = (gu->npages + nthreads - 1) / nthreads;
	for (unsigned i = 0; i < nthreads; i++) {
		vs[i] = (struct vf){ .x = x, .mem = gu->mem, .bad = bad,
		    .from = i * per < gu->npages ? i * per : gu->npages,
		    .reported = &reported };
		vs[i].to = vs[i].from + per < gu->npages ? vs[i].from + per :
		    gu->npages;
		if (pthread_create(&vs[i].th, NULL, vf_main, &vs[i]) != 0)
			die(2, "cannot start a verify thread");
	}
	*zero = 0;
	for (unsigned i = 0; i < nthreads; i++) {
		pthread_join(vs[i].th, NULL);
		nbad += vs[i].mismatched;
		*zero += vs[i].zero;
	}
	return nbad;
}

/* ---- daemon events ---------------------------------------------------- */

/* Waits for an event of type want; a COMPLETE(!ok) ends the program. */
static void
wait_event(struct pcvmm *v, enum pcvmm_event_type want, double timeout,
    struct pcvmm_event *ev, const char *what)
{
	double deadline = now_s() + timeout;

	for (;;) {
		double left = deadline - now_s();
		int r;

		if (left <= 0)
			die(1, "no %s from postcopyd within %.0f s", what,
			    timeout);
		r = pcvmm_next_event(v, (int)(left * 1000) + 1, ev);
		if (r == -EAGAIN)
			continue;
		if (r < 0)
			die(1, "waiting for %s: %s", what, r == -ECONNRESET ?
			    "postcopyd closed the connection" : strerror(-r));
		if (ev->type == want)
			return;
		if (ev->type == PCVMM_EV_COMPLETE && !ev->ok)
			die(1, "migration failed: %s", ev->message);
		pcvmm_event_clear(ev);
		die(1, "unexpected event %d while waiting for %s", ev->type,
		    what);
	}
}

/* --pause-delay: the guest keeps running a while after PAUSE, as a VMM
 * that is slow to pause; an end of the migration meanwhile (COMPLETE not
 * ok: failed or cancelled) ends the program with the guest never paused. */
static void
pause_delay(const struct opts *o, struct pcvmm *v)
{
	double deadline = now_s() + o->pause_delay;
	struct pcvmm_event ev;

	if (o->pause_delay > 0)
		say(o, "PAUSE received; pausing in %.1f s", o->pause_delay);
	while (o->pause_delay > 0 && now_s() < deadline) {
		int r = pcvmm_next_event(v, (int)((deadline - now_s()) * 1000) + 1,
		    &ev);

		if (r == -EAGAIN)
			continue;
		if (r < 0)
			die(1, "waiting to pause: %s", strerror(-r));
		if (ev.type == PCVMM_EV_COMPLETE && !ev.ok)
			die(1, "migration failed: %s (the guest was never "
			    "paused)", ev.message);
		pcvmm_event_clear(&ev);
		die(1, "unexpected event %d before pausing", ev.type);
	}
}

/* With --reattach, the daemon's socket is watched while the workload runs,
 * so a daemon restart is answered at once (the guest threads may be
 * blocked on faults only the restarted daemon can resolve). An event that
 * arrives meanwhile (COMPLETE) is kept for the main thread. */
struct watcher {
	struct pcvmm		*v;
	pthread_t		 th;
	atomic_bool		 stop;
	bool			 have;		/* ev holds an event */
	int			 err;
	struct pcvmm_event	 ev;
};

static void *
watcher_main(void *arg)
{
	struct watcher *w = arg;

	while (!atomic_load(&w->stop)) {
		int r = pcvmm_next_event(w->v, 200, &w->ev);

		if (r == -EAGAIN)
			continue;
		if (r == 0)
			w->have = true;
		else
			w->err = r;
		break;
	}
	return NULL;
}

/* dfd: the source's dirty-tracking userfaultfd and pagemap, or -1. */
static struct pcvmm *
attach(const struct opts *o, struct guest *gu, enum pcvmm_role role,
    const int dfd[2])
{
	struct pcvmm_attach_args a = {
		.socket_path = o->socket,
		.id = o->id,
		.role = role,
		.mode = o->copy ? PCVMM_MODE_COPY : PCVMM_MODE_MINOR,
		.base = gu->mem,
		.size = gu->size,
		.offset = 0,
		.page_size = gu->ps,
		.memfd = gu->memfd,
		.uffd = role == PCVMM_ROLE_DEST ? gu->uffd : dfd[0],
		.track_dirty = role == PCVMM_ROLE_SOURCE && dfd[0] >= 0,
		.pagemap_fd = dfd[1],
		.connect_timeout_ms = 10000,
		.reattach_timeout_ms = (int)(o->reattach * 1000),
	};
	struct pcvmm *v;
	char err[1024];
	int r;

	if ((r = pcvmm_attach(&a, &v, err, sizeof(err))) < 0)
		die(2, "attach %s as %s: %s", o->id, role == PCVMM_ROLE_SOURCE ?
		    "source" : "destination", err);
	return v;
}

/* ---- source ------------------------------------------------------------ */

struct reader {
	struct guest	*gu;
	const struct guestgen *g;
	atomic_bool	 stop;
	uint64_t	 passes;
	pthread_t	 th;
};

/* The source guest's own activity until PAUSE: it reads its memory. */
/* The reader stands for a vCPU reading guest memory while another (the
 * --dirty-rate writer) writes it: a race by design, as in a real guest,
 * so ThreadSanitizer does not watch its reads. */
#if defined(__SANITIZE_THREAD__)
#define GUEST_VCPU_ACCESS __attribute__((no_sanitize_thread))
#else
#define GUEST_VCPU_ACCESS
#endif

GUEST_VCPU_ACCESS static void *
reader_main(void *arg)
{
	struct reader *r = arg;
	struct timespec nap = { 0, 1000000 };
	uint64_t sum = 0;

	while (!atomic_load(&r->stop)) {
		for (uint64_t i = 0; i < r->gu->npages && !atomic_load(&r->stop);
		    i++) {
			/* Never-written pages stay holes (reading one
			 * would allocate it): the memfd stays as sparse
			 * as a fresh guest's. */
			if (!guestgen_is_zero(r->g, i))
				sum += *(volatile uint8_t *)(r->gu->mem +
				    i * PAGE);
			if ((i & 1023) == 1023)
				nanosleep(&nap, NULL);
		}
		r->passes++;
	}
	return (void *)(uintptr_t)(sum & 1);
}

/* --dirty-rate: the source guest's writes until the pause, at a steady
 * rate, in the deterministic sequence of guestdirty.h. */
struct writer {
	struct guest		*gu;
	const struct guestgen	*g;
	double			 rate;		/* pages per second */
	atomic_bool		 stop;
	atomic_uint_fast64_t	 nwrites;	/* completed */
	pthread_t		 th;
};

static void *
writer_main(void *arg)
{
	struct writer *w = arg;
	struct timespec nap = { 0, 1000000 };
	double t0 = now_s();

	while (!atomic_load(&w->stop)) {
		double due = (now_s() - t0) * w->rate;
		uint64_t n = atomic_load(&w->nwrites);

		for (; n < due && !atomic_load(&w->stop) &&
		    n < GUESTDIRTY_MAX_WRITES; n++) {
			guestdirty_write(w->g, w->gu->npages, n, w->gu->mem);
			atomic_store(&w->nwrites, n + 1);
		}
		nanosleep(&nap, NULL);
	}
	return NULL;
}

/* The descriptors precopy's dirty tracking needs, unless told not to send
 * them (an older VMM) or the kernel cannot give them. */
static void
source_dirty_fds(const struct opts *o, int dfd[2])
{
	char err[256];

	dfd[0] = dfd[1] = -1;
	if (o->no_track_dirty) {
		say(o, "not sending dirty-tracking descriptors "
		    "(--no-track-dirty): postcopy-only");
		return;
	}
	if (pcvmm_dirty_fds_open(&dfd[0], &dfd[1], err, sizeof(err)) < 0)
		say(o, "no dirty tracking (%s): postcopy-only", err);
}

/* --survive-cancel: PAUSE (true), or a failed COMPLETE before it (false:
 * the migration ended before switchover, the guest is still ours). */
static bool
wait_pause_or_end(struct pcvmm *v, double timeout, struct pcvmm_event *ev)
{
	double deadline = now_s() + timeout;

	for (;;) {
		double left = deadline - now_s();
		int r;

		if (left <= 0)
			die(1, "no PAUSE from postcopyd within %.0f s", timeout);
		r = pcvmm_next_event(v, (int)(left * 1000) + 1, ev);
		if (r == -EAGAIN)
			continue;
		if (r < 0)
			die(1, "waiting for PAUSE: %s", strerror(-r));
		if (ev->type == PCVMM_EV_PAUSE)
			return true;
		if (ev->type == PCVMM_EV_COMPLETE && !ev->ok)
			return false;
		pcvmm_event_clear(ev);
		die(1, "unexpected event %d while waiting for PAUSE", ev->type);
	}
}

/* Pages of the guest mapping still write-protected (pagemap bit 57,
 * PM_UFFD_WP): after a cancel there must be none. -1 if unreadable. */
static int64_t
guest_wp_pages(const struct guest *gu)
{
	uint64_t n = 0, e;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	for (uint64_t i = 0; i < gu->npages; i++) {
		off_t off = (off_t)(((uintptr_t)gu->mem + i * PAGE) / PAGE * 8);

		if (pread(fd, &e, sizeof(e), off) != sizeof(e)) {
			close(fd);
			return -1;
		}
		n += (e >> 57) & 1;
	}
	close(fd);
	return (int64_t)n;
}

/* The migration ended before the pause: the guest ran on for a moment,
 * then every page is checked against the seed and its writes, and no page
 * may still be write-protected. */
static int
source_after_cancel(const struct opts *o, struct guest *gu,
    const struct guestgen *g, struct reader *rd, struct writer *wr,
    struct pcvmm *v, struct pcvmm_event *ev, const int dfd[2])
{
	struct guestdirty x;
	uint64_t nbad, zero, nw;
	uint8_t *bad = calloc(gu->npages, 1);
	int64_t wp;

	say(o, "migration ended before the pause (%s): the guest runs on",
	    ev->message);
	pcvmm_event_clear(ev);
	nanosleep(&(struct timespec){ 0, 300000000 }, NULL);
	atomic_store(&rd->stop, true);
	atomic_store(&wr->stop, true);
	pthread_join(rd->th, NULL);
	if (wr->rate > 0)
		pthread_join(wr->th, NULL);
	nw = atomic_load(&wr->nwrites);
	if (bad == NULL || guestdirty_init(&x, g, gu->npages, nw) < 0)
		die(2, "out of memory");
	nbad = verify(&x, gu, o->threads, bad, &zero);
	guestdirty_free(&x);
	free(bad);
	/* Still attached: a daemon that ends the session removes the
	 * protection anyway; the cancel itself must have. */
	wp = guest_wp_pages(gu);
	pcvmm_detach(v, "migration ended before the pause");
	if (dfd[0] >= 0) {
		close(dfd[0]);
		close(dfd[1]);
	}
	if (o->json)
		printf("{\"role\":\"source\",\"id\":\"%s\",\"cancelled\":true,"
		    "\"pages_total\":%" PRIu64 ",\"verify_mismatched\":%" PRIu64
		    ",\"source_writes\":%" PRIu64 ",\"wp_pages\":%" PRId64
		    ",\"ok\":%s}\n", o->id, gu->npages, nbad, nw, wp,
		    nbad == 0 && wp == 0 ? "true" : "false");
	fprintf(o->json ? stderr : stdout, "source %s: after the cancel: %"
	    PRIu64 " pages, %" PRIu64 " mismatched, %" PRIu64 " writes, %"
	    PRId64 " still write-protected\n", o->id, gu->npages, nbad, nw, wp);
	return nbad == 0 && wp == 0 ? 0 : 1;
}

static int
run_source(const struct opts *o)
{
	struct guest gu;
	struct guestgen g;
	struct reader rd = { 0 };
	struct writer wr = { 0 };
	struct pcvmm_event ev;
	struct pcvmm *v;
	int dfd[2];
	uint8_t *state;
	size_t slen;
	uint64_t zero;
	double t0 = now_s(), t_attach, t_pause, t_done;
	int r;

	guestgen_init(&g, o->seed, o->zero_fraction);
	guest_map(&gu, o, false);
	guestgen_set_unit(&g, gu.ps);	/* zero pages: whole huge pages */
	zero = guest_fill(&gu, &g);
	say(o, "source %s: %" PRIu64 " pages (%" PRIu64 " zero) generated "
	    "from seed %" PRIu64 " in %.2f s", o->id, gu.npages, zero, o->seed,
	    now_s() - t0);
	/* The guest runs before the migration starts: with --dirty-rate it
	 * has written at least one page by the time it attaches. */
	rd.gu = wr.gu = &gu;
	rd.g = wr.g = &g;
	wr.rate = o->dirty_rate;
	if (pthread_create(&rd.th, NULL, reader_main, &rd) != 0 ||
	    (wr.rate > 0 && pthread_create(&wr.th, NULL, writer_main,
	    &wr) != 0))
		die(2, "cannot start the source workload");
	for (int i = 0; wr.rate > 0 && atomic_load(&wr.nwrites) == 0 &&
	    i < 10000; i++)
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	source_dirty_fds(o, dfd);
	v = attach(o, &gu, PCVMM_ROLE_SOURCE, dfd);
	t_attach = now_s();
	say(o, "attached as source of %s%s; running until PAUSE", o->id,
	    dfd[0] >= 0 ? " with dirty tracking" : "");

	if (o->survive_cancel && !wait_pause_or_end(v, o->timeout, &ev))
		return source_after_cancel(o, &gu, &g, &rd, &wr, v, &ev,
		    dfd);
	if (!o->survive_cancel)
		wait_event(v, PCVMM_EV_PAUSE, o->timeout, &ev, "PAUSE");
	pause_delay(o, v);
	/* The vCPUs stop: no write after this point. */
	atomic_store(&rd.stop, true);
	atomic_store(&wr.stop, true);
	pthread_join(rd.th, NULL);
	if (wr.rate > 0)
		pthread_join(wr.th, NULL);
	t_pause = now_s();
	if (o->truncate_at_pause) {
		/* The vCPUs are stopped: nothing here reads it again. Before
		 * PAUSED, so that no page has left yet. */
		if (ftruncate(gu.memfd, (off_t)(gu.size / 2)) < 0)
			die(1, "--truncate-at-pause: %s", strerror(errno));
		say(o, "cut the memfd to %" PRIu64 " of %" PRIu64 " bytes "
		    "(--truncate-at-pause)", gu.size / 2, gu.size);
	}
	state = state_encode(&g, gu.size, o->state_pad,
	    atomic_load(&wr.nwrites), &slen);
	if ((r = pcvmm_send_paused(v, state, slen)) < 0)
		die(1, "sending PAUSED: %s", strerror(-r));
	free(state);
	say(o, "paused after %.2f s (%" PRIu64 " pages written meanwhile); "
	    "sent %zu bytes of device state", t_pause - t_attach,
	    (uint64_t)atomic_load(&wr.nwrites), slen);

	wait_event(v, PCVMM_EV_COMPLETE, o->timeout, &ev, "COMPLETE");
	t_done = now_s();
	pcvmm_detach(v, "migration complete");
	if (dfd[0] >= 0) {
		close(dfd[0]);
		close(dfd[1]);
	}
	if (o->json)
		printf("{\"role\":\"source\",\"id\":\"%s\",\"page_size\":%"
		    PRIu32 ",\"pages_total\":%"
		    PRIu64 ",\"zero_pages\":%" PRIu64 ",\"seed\":%" PRIu64
		    ",\"state_bytes\":%zu,\"source_writes\":%" PRIu64
		    ",\"dirty_tracking\":%s,\"paused_after_s\":%.3f,"
		    "\"complete_after_pause_s\":%.3f,\"ok\":true,"
		    "\"message\":\"%s\"}\n", o->id, gu.ps, gu.npages, zero,
		    o->seed, slen, (uint64_t)atomic_load(&wr.nwrites),
		    dfd[0] >= 0 ? "true" : "false",
		    t_pause - t_attach, t_done - t_pause, "complete");
	fprintf(o->json ? stderr : stdout, "source %s: %" PRIu64 " pages (%"
	    PRIu64 " zero), paused after %.2f s, complete %.2f s later: %s\n",
	    o->id, gu.npages, zero, t_pause - t_attach, t_done - t_pause,
	    ev.message);
	return 0;
}

/* ---- destination / local ----------------------------------------------- */

/* --truncate-at-resume: a VMM that cuts its memfd while the destination
 * daemon writes the guest's pages into it. The guest never runs (it would
 * fault past the end itself); the migration must fail, saying why, and
 * the daemon live on. Does not return. */
static void
dest_truncate(const struct opts *o, struct pcvmm *v, struct guest *gu)
{
	struct pcvmm_event ev;
	int r;

	if (ftruncate(gu->memfd, (off_t)(gu->size / 2)) < 0)
		die(1, "--truncate-at-resume: %s", strerror(errno));
	say(o, "cut the memfd to %" PRIu64 " of %" PRIu64 " bytes "
	    "(--truncate-at-resume)", gu->size / 2, gu->size);
	do {
		r = pcvmm_next_event(v, (int)(o->timeout * 1000), &ev);
	} while (r == -EAGAIN);
	if (r < 0)
		die(1, "waiting for the end: %s", strerror(-r));
	if (ev.type != PCVMM_EV_COMPLETE)
		die(1, "unexpected event %d after the cut", ev.type);
	if (ev.ok)
		die(1, "the migration completed into a memfd cut short");
	say(o, "the migration failed, as it must: %s", ev.message);
	exit(0);
}

static int
run_dest(const struct opts *o)
{
	struct guest gu;
	struct guestgen g;
	struct guestdirty x;
	struct local loc;
	struct guestkvm *kvm = NULL;
	struct guestkvm_result kr = { 0 };
	struct wl_result wr = { 0 };
	struct pcvmm *v = NULL;
	struct pcvmm_event ev = { 0 };
	char err[1024];
	uint64_t zero = 0, vbad, expect_sum = 0, nwrites = 0;
	double t_resume, t_wl, t_complete, t_verify, t0 = now_s();
	bool kvm_ok = true;
	uint8_t *bad;
	size_t slen = 0;
	int r;

	if (o->workload == WL_KVM) {
		if (guestkvm_probe(err, sizeof(err)) < 0)
			die(EXIT_SKIP, "kvm workload unavailable: %s", err);
		if (o->size > GUESTKVM_MAX_SIZE)
			die(2, "--workload kvm supports guests up to %llu bytes "
			    "(4 GiB - 64 KiB)",
			    (unsigned long long)GUESTKVM_MAX_SIZE);
	}
	guest_map(&gu, o, true);
	if ((bad = calloc(gu.npages, 1)) == NULL)
		die(2, "out of memory");
	/* The VM exists before switchover: memslots touch no memory. */
	if (o->workload == WL_KVM &&
	    (r = guestkvm_new(gu.mem, gu.size, &kvm, err, sizeof(err))) < 0)
		die(2, "kvm: %s", err);

	if (o->local) {
		uint8_t *state;
		guestgen_init(&g, o->seed, o->zero_fraction);
		guestgen_set_unit(&g, gu.ps);
		/* The device state goes through the same codec. */
		state = state_encode(&g, gu.size, o->state_pad, 0, &slen);
		memset(&g, 0, sizeof(g));
		if (state_decode(state, slen, gu.size, &g, &nwrites, err,
		    sizeof(err)) < 0)
			die(1, "device state: %s", err);
		free(state);
		local_start(&loc, &gu, &g, o);
	} else {
		v = attach(o, &gu, PCVMM_ROLE_DEST, (const int[2]){ -1, -1 });
		say(o, "attached as destination of %s (%" PRIu64 " pages, %s); "
		    "waiting for RESUME", o->id, gu.npages,
		    o->copy ? "COPY mode" : "memfd");
		wait_event(v, PCVMM_EV_RESUME, o->timeout, &ev, "RESUME");
		if (o->truncate_at_resume)
			dest_truncate(o, v, &gu);
		slen = ev.state_len;
		if (state_decode(ev.state, ev.state_len, gu.size, &g, &nwrites,
		    err, sizeof(err)) < 0)
			die(1, "device state from the source: %s", err);
		pcvmm_event_clear(&ev);
	}
	if (guestgen_unit(&g) != gu.ps)
		die(1, "the source guest has %" PRIu64 "-byte pages, this one "
		    "%" PRIu32 "-byte pages (--hugepages must match)",
		    guestgen_unit(&g), gu.ps);
	t_resume = now_s();
	/* What the source had at its pause: its generated content and the
	 * writes it made while precopy ran. */
	if (guestdirty_init(&x, &g, gu.npages, nwrites) < 0)
		die(2, "out of memory replaying %" PRIu64 " source writes",
		    nwrites);
	say(o, "resumed (%zu bytes of device state: seed %" PRIu64 ", zero "
	    "fraction %.3f, %" PRIu64 " source writes to %" PRIu64 " pages); "
	    "running the %s workload", slen, g.seed,
	    guestgen_zero_fraction(&g), nwrites, x.rewritten,
	    o->workload == WL_KVM ? "kvm" :
	    o->workload == WL_THREADS ? "threads" : "no");

	struct watcher wat = { .v = v };
	bool watching = !o->local && o->reattach > 0 &&
	    pthread_create(&wat.th, NULL, watcher_main, &wat) == 0;

	if (o->workload == WL_THREADS) {
		wl_threads(o, &x, &gu, bad, &wr);
	} else if (o->workload == WL_KVM) {
		if ((r = guestkvm_run(kvm, &kr, err, sizeof(err))) < 0)
			die(1, "kvm: %s", err);
		expect_sum = guestdirty_kvm_checksum(&x);
		kvm_ok = kr.checksum == expect_sum &&
		    kr.pages_read == gu.npages;
		wr.checked = kr.pages_read;
		wr.touched = kr.pages_read;
		if (!kvm_ok)
			fprintf(stderr, "postcopy-guest: MISMATCH kvm: guest "
			    "checksum 0x%08x over %" PRIu64 " pages, expected "
			    "0x%08x\n", kr.checksum, kr.pages_read,
			    (unsigned)expect_sum);
	}
	t_wl = now_s();
	if (watching) {
		atomic_store(&wat.stop, true);
		pthread_join(wat.th, NULL);
		if (wat.err < 0)
			die(1, "waiting for COMPLETE: %s", wat.err == -ECONNRESET ?
			    "postcopyd closed the connection" : strerror(-wat.err));
		if (wat.have && wat.ev.type == PCVMM_EV_COMPLETE && !wat.ev.ok)
			die(1, "migration failed: %s", wat.ev.message);
		if (wat.have && wat.ev.type != PCVMM_EV_COMPLETE)
			die(1, "unexpected event %d while waiting for COMPLETE",
			    wat.ev.type);
	}

	if (!o->local) {
		if (watching && wat.have)
			ev = wat.ev;
		else
			wait_event(v, PCVMM_EV_COMPLETE, o->timeout, &ev,
			    "COMPLETE");
		say(o, "migration complete: %s", ev.message);
	}
	t_complete = now_s();
	vbad = verify(&x, &gu, o->threads, bad, &zero);
	guestdirty_free(&x);
	t_verify = now_s();
	if (o->local)
		local_stop(&loc);
	else
		pcvmm_detach(v, vbad || wr.mismatched || !kvm_ok ?
		    "verification failed" : "verified");
	guestkvm_free(kvm);

	/* Distinct pages that failed the workload's check or the final
	 * xxh3 comparison. */
	uint64_t mismatched = 0;
	for (uint64_t i = 0; i < gu.npages; i++)
		mismatched += bad[i];
	free(bad);
	const char *wlname = o->workload == WL_KVM ? "kvm" :
	    o->workload == WL_THREADS ? "threads" : "none";
	const char *patname = o->pattern == PAT_RANDOM ? "random" :
	    o->pattern == PAT_SEQUENTIAL ? "sequential" : "hotset";

	if (o->json) {
		printf("{\"role\":\"dest\",\"id\":\"%s\",\"local\":%s,"
		    "\"mode\":\"%s\",\"page_size\":%" PRIu32 ","
		    "\"pages_total\":%" PRIu64 ","
		    "\"pages_checked\":%" PRIu64 ",\"pages_touched\":%" PRIu64
		    ",\"pages_verified\":%" PRIu64 ",\"verified\":%" PRIu64
		    ",\"zero_pages\":%" PRIu64
		    ",\"mismatched\":%" PRIu64 ",\"workload_mismatched\":%"
		    PRIu64 ",\"verify_mismatched\":%" PRIu64 ","
		    "\"workload\":\"%s\",\"pattern\":\"%s\",\"threads\":%u,"
		    "\"wall_s\":%.3f,\"complete_wait_s\":%.3f,"
		    "\"verify_s\":%.3f,\"total_s\":%.3f,\"state_bytes\":%zu"
		    ",\"source_writes\":%" PRIu64,
		    o->local ? "local" : o->id, o->local ? "true" : "false",
		    o->copy ? "copy" : "minor", gu.ps, gu.npages, wr.checked,
		    wr.touched, gu.npages, gu.npages - mismatched, zero,
		    mismatched, wr.mismatched,
		    vbad, wlname, patname, o->threads, t_wl - t_resume,
		    t_complete - t_wl, t_verify - t_complete, t_verify - t0,
		    slen, nwrites);
		if (o->workload == WL_THREADS)
			printf(",\"first_touch_us\":{\"p50\":%.1f,\"p99\":%.1f,"
			    "\"max\":%.1f}", wr.p50_us, wr.p99_us, wr.max_us);
		else
			printf(",\"first_touch_us\":null");
		if (o->workload == WL_KVM)
			printf(",\"kvm\":{\"checksum\":\"0x%08x\",\"expected\":"
			    "\"0x%08x\",\"ok\":%s,\"exits\":%" PRIu64
			    ",\"run_s\":%.3f}", kr.checksum,
			    (unsigned)expect_sum, kvm_ok ? "true" : "false",
			    kr.exits, kr.run_s);
		if (o->local)
			printf(",\"faults\":{\"minor\":%" PRIu64 ",\"missing\":%"
			    PRIu64 ",\"wakes\":%" PRIu64 "}", loc.faults_minor,
			    loc.faults_missing, loc.wakes);
		printf("}\n");
	}
	char extra[160] = "";
	if (o->workload == WL_THREADS)
		snprintf(extra, sizeof(extra), ", first touch p50 %.1f us p99 "
		    "%.1f us max %.1f us", wr.p50_us, wr.p99_us, wr.max_us);
	else if (o->workload == WL_KVM)
		snprintf(extra, sizeof(extra), ", kvm checksum 0x%08x %s",
		    kr.checksum, kvm_ok ? "ok" : "WRONG");
	fprintf(o->json ? stderr : stdout, "dest %s: %s workload%s%s: %" PRIu64
	    " pages checked, %" PRIu64 " pages verified (%" PRIu64 " zero), %"
	    PRIu64 " mismatched; workload %.2f s%s\n",
	    o->local ? "(local)" : o->id, wlname,
	    o->workload == WL_THREADS ? " " : "",
	    o->workload == WL_THREADS ? patname : "", wr.checked, gu.npages,
	    zero, mismatched, t_wl - t_resume, extra);
	if (o->local && loc.err[0])
		die(1, "local fault thread: %s", loc.err);
	return mismatched == 0 && kvm_ok ? 0 : 1;
}

/* ---- main -------------------------------------------------------------- */

static void
usage(FILE *f)
{
	fprintf(f,
"usage: postcopy-guest --role source|dest --id ID [options]\n"
"       postcopy-guest --local [options]\n"
"\n"
"The stand-in VMM for postcopyd (see client/pcvmm/VMM-PROTOCOL.md).\n"
"\n"
"  -r, --role ROLE          source or dest\n"
"  -i, --id ID              migration id\n"
"  -S, --vmm-socket PATH    postcopyd's VMM socket (default %s;\n"
"                           also --socket)\n"
"  -s, --size SIZE          guest memory (default 1G; 64M, 1.5G, ...)\n"
"      --seed N             content seed (source; default 1)\n"
"      --zero-fraction F    share of all-zero pages (source; default 0.25)\n"
"      --state-size N       extra device-state bytes (default 0)\n"
"  -w, --workload W         dest: threads (default), kvm or none (also\n"
"                           --guest threads|kvm; --workload random|\n"
"                           sequential|hotset sets the pattern)\n"
"  -t, --threads N          workload and verify threads (default 4)\n"
"  -p, --pattern P          threads: random (default), sequential, hotset\n"
"      --hot-fraction F     hotset: share of pages in the hot set (0.1)\n"
"  -d, --duration S         stop the workload after S seconds (default:\n"
"                           when every page was touched once)\n"
"      --timeout S          wait this long for each daemon event (600)\n"
"      --reattach S         when postcopyd's connection is lost (it was\n"
"                           killed), attach again to its restarted self for\n"
"                           up to S seconds (0: the loss is fatal)\n"
"      --hugepages SIZE     2M or 1G: guest memory is a hugetlbfs memfd of\n"
"                           huge pages of that size (source and dest must\n"
"                           agree; --size a multiple of it); with --copy,\n"
"                           anonymous huge pages (MAP_HUGETLB)\n"
"      --dirty-rate R       source: keep writing R pages per second until\n"
"                           the pause (a deterministic sequence from the\n"
"                           seed; the destination verifies every page\n"
"                           against what the source had at the pause)\n"
"      --pause-delay S      source: keep running S seconds after PAUSE\n"
"                           before pausing, as a slow VMM; a failed or\n"
"                           cancelled migration meanwhile ends it unpaused\n"
"      --no-track-dirty     source: send no dirty-tracking descriptors, as\n"
"                           a VMM older than precopy (postcopy-only)\n"
"      --truncate-at-pause  source: when pausing, cut the memfd to half the\n"
"                           guest, as a broken or hostile VMM would (tests\n"
"                           that the daemon fails the migration, and only\n"
"                           it)\n"
"      --truncate-at-resume destination: on RESUME, cut the memfd to half\n"
"                           the guest and run no workload; exits 0 when the\n"
"                           migration then fails, 1 when it completes\n"
"      --survive-cancel     source: a migration cancelled (or failed) before\n"
"                           the pause leaves the guest running: it runs on,\n"
"                           then checks every page and that no page is\n"
"                           still write-protected (exit 0 if so)\n"
"      --copy               dest: anonymous memory, COPY mode (baseline;\n"
"                           also --mode copy; --mode minor is the default;\n"
"                           with --hugepages: MAP_HUGETLB, whole huge pages\n"
"                           placed by UFFDIO_COPY)\n"
"      --local              no daemon: resolve this process's own faults\n"
"      --prefill F          --local: share of pages already present (0.5)\n"
"      --local-corrupt N    --local: deliver page N with one byte wrong\n"
"                           (shows that the checks catch it)\n"
"  -j, --json               print a JSON summary on stdout\n"
"  -q, --quiet              no progress messages\n"
"  -h, --help\n"
"\n"
"Exit status: 0 every page verified, 1 mismatch or failed migration,\n"
"2 usage or setup error, 77 kvm workload without /dev/kvm or no huge pages\n"
"for --hugepages.\n",
	    PCVMM_DEFAULT_SOCKET);
}

static double
parse_double(const char *opt, const char *s, double lo, double hi)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(d >= lo && d <= hi))
		die(2, "%s: '%s' is not a number in [%g, %g]", opt, s, lo, hi);
	return d;
}

static uint64_t
parse_u64(const char *opt, const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-')
		die(2, "%s: '%s' is not a number", opt, s);
	return v;
}

static uint64_t
parse_bytes(const char *opt, const char *s)
{
	char *end;
	double v;
	uint64_t mul = 1;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || v < 0)
		die(2, "%s: '%s' is not a size", opt, s);
	switch (*end) {
	case 'k': case 'K': mul = 1ull << 10; end++; break;
	case 'm': case 'M': mul = 1ull << 20; end++; break;
	case 'g': case 'G': mul = 1ull << 30; end++; break;
	case 't': case 'T': mul = 1ull << 40; end++; break;
	}
	if (*end == 'i' || *end == 'B')
		end++;
	if (*end == 'B')
		end++;
	if (*end != '\0' || v * (double)mul > 18e18)
		die(2, "%s: '%s' is not a size", opt, s);
	return (uint64_t)(v * (double)mul);
}

/* --hugepages: 2M or 1G (also 2MB, 2MiB, 1GB, 1GiB); none: base pages. */
static uint32_t
parse_huge(const char *s)
{
	if (strcmp(s, "none") == 0)
		return 0;
	if (strcasecmp(s, "2M") == 0 || strcasecmp(s, "2MB") == 0 ||
	    strcasecmp(s, "2MiB") == 0)
		return HUGE_2M;
	if (strcasecmp(s, "1G") == 0 || strcasecmp(s, "1GB") == 0 ||
	    strcasecmp(s, "1GiB") == 0)
		return HUGE_1G;
	die(2, "--hugepages: want 2M or 1G (or none), not '%s'", s);
}

int
main(int argc, char **argv)
{
	enum { O_SEED = 256, O_ZERO, O_STATE, O_HOT, O_TIMEOUT, O_COPY,
	    O_LOCAL, O_PREFILL, O_CORRUPT, O_MODE, O_REATTACH, O_HUGE,
	    O_DIRTY_RATE, O_NO_TRACK, O_PAUSE_DELAY, O_SURVIVE,
	    O_TRUNCATE, O_TRUNCATE_RESUME };
	static const struct option lopts[] = {
		{ "role",		required_argument, NULL, 'r' },
		{ "id",			required_argument, NULL, 'i' },
		{ "vmm-socket",		required_argument, NULL, 'S' },
		{ "socket",		required_argument, NULL, 'S' },
		{ "size",		required_argument, NULL, 's' },
		{ "seed",		required_argument, NULL, O_SEED },
		{ "zero-fraction",	required_argument, NULL, O_ZERO },
		{ "state-size",		required_argument, NULL, O_STATE },
		{ "workload",		required_argument, NULL, 'w' },
		{ "guest",		required_argument, NULL, 'g' },
		{ "mode",		required_argument, NULL, O_MODE },
		{ "threads",		required_argument, NULL, 't' },
		{ "pattern",		required_argument, NULL, 'p' },
		{ "hot-fraction",	required_argument, NULL, O_HOT },
		{ "duration",		required_argument, NULL, 'd' },
		{ "timeout",		required_argument, NULL, O_TIMEOUT },
		{ "reattach",		required_argument, NULL, O_REATTACH },
		{ "hugepages",		required_argument, NULL, O_HUGE },
		{ "copy",		no_argument,	   NULL, O_COPY },
		{ "local",		no_argument,	   NULL, O_LOCAL },
		{ "prefill",		required_argument, NULL, O_PREFILL },
		{ "local-corrupt",	required_argument, NULL, O_CORRUPT },
		{ "dirty-rate",		required_argument, NULL, O_DIRTY_RATE },
		{ "no-track-dirty",	no_argument,	   NULL, O_NO_TRACK },
		{ "pause-delay",	required_argument, NULL, O_PAUSE_DELAY },
		{ "survive-cancel",	no_argument,	   NULL, O_SURVIVE },
		{ "truncate-at-pause",	no_argument,	   NULL, O_TRUNCATE },
		{ "truncate-at-resume",	no_argument,	   NULL, O_TRUNCATE_RESUME },
		{ "json",		no_argument,	   NULL, 'j' },
		{ "quiet",		no_argument,	   NULL, 'q' },
		{ "help",		no_argument,	   NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct opts o = {
		.role = ROLE_DEST,
		.socket = PCVMM_DEFAULT_SOCKET,
		.size = 1ull << 30,
		.seed = 1,
		.zero_fraction = 0.25,
		.workload = WL_THREADS,
		.threads = 4,
		.pattern = PAT_RANDOM,
		.hot_fraction = 0.1,
		.timeout = 600,
		.prefill = 0.5,
		.corrupt = -1,
	};
	bool have_role = false;
	int c;

	while ((c = getopt_long(argc, argv, "r:i:S:s:w:t:p:d:jqh", lopts,
	    NULL)) != -1) {
		switch (c) {
		case 'r':
			if (strcmp(optarg, "source") == 0)
				o.role = ROLE_SOURCE;
			else if (strcmp(optarg, "dest") == 0 ||
			    strcmp(optarg, "destination") == 0)
				o.role = ROLE_DEST;
			else
				die(2, "--role: want source or dest, not '%s'",
				    optarg);
			have_role = true;
			break;
		case 'i':	o.id = optarg; break;
		case 'S':	o.socket = optarg; break;
		case 's':	o.size = parse_bytes("--size", optarg); break;
		case O_SEED:	o.seed = parse_u64("--seed", optarg); break;
		case O_ZERO:
			o.zero_fraction = parse_double("--zero-fraction",
			    optarg, 0, 1);
			break;
		case O_STATE:
			o.state_pad = parse_bytes("--state-size", optarg);
			if (o.state_pad > PCVMM_STATE_MAX - STATE_HDR)
				die(2, "--state-size: at most %u bytes",
				    PCVMM_STATE_MAX - STATE_HDR);
			break;
		case 'w':
		case 'g':
			/* --guest threads|kvm and --workload PATTERN are the
			 * spellings postcopy-bench uses: the value sets are
			 * disjoint, so both are accepted. */
			if (strcmp(optarg, "threads") == 0)
				o.workload = WL_THREADS;
			else if (strcmp(optarg, "kvm") == 0)
				o.workload = WL_KVM;
			else if (strcmp(optarg, "none") == 0 && c == 'w')
				o.workload = WL_NONE;
			else if (strcmp(optarg, "random") == 0 && c == 'w')
				o.pattern = PAT_RANDOM;
			else if (strcmp(optarg, "sequential") == 0 && c == 'w')
				o.pattern = PAT_SEQUENTIAL;
			else if (strcmp(optarg, "hotset") == 0 && c == 'w')
				o.pattern = PAT_HOTSET;
			else
				die(2, "--%s: want threads, kvm%s", c == 'w' ?
				    "workload" : "guest", c == 'w' ? ", none (or "
				    "a pattern: random, sequential, hotset)" :
				    "");
			break;
		case O_MODE:
			if (strcmp(optarg, "minor") == 0)
				o.copy = false;
			else if (strcmp(optarg, "copy") == 0)
				o.copy = true;
			else
				die(2, "--mode: want minor or copy");
			break;
		case 't':
			o.threads = (unsigned)parse_double("--threads", optarg,
			    1, MAX_THREADS);
			break;
		case 'p':
			if (strcmp(optarg, "random") == 0)
				o.pattern = PAT_RANDOM;
			else if (strcmp(optarg, "sequential") == 0)
				o.pattern = PAT_SEQUENTIAL;
			else if (strcmp(optarg, "hotset") == 0)
				o.pattern = PAT_HOTSET;
			else
				die(2, "--pattern: want random, sequential or "
				    "hotset");
			break;
		case O_HOT:
			o.hot_fraction = parse_double("--hot-fraction", optarg,
			    0, 1);
			break;
		case 'd':
			o.duration = parse_double("--duration", optarg, 0, 1e6);
			break;
		case O_TIMEOUT:
			o.timeout = parse_double("--timeout", optarg, 0.1, 1e6);
			break;
		case O_REATTACH:
			o.reattach = parse_double("--reattach", optarg, 0, 3600);
			break;
		case O_HUGE:
			o.huge = parse_huge(optarg);
			break;
		case O_COPY:	o.copy = true; break;
		case O_LOCAL:	o.local = true; break;
		case O_PREFILL:
			o.prefill = parse_double("--prefill", optarg, 0, 1);
			break;
		case O_CORRUPT:
			o.corrupt = (int64_t)parse_u64("--local-corrupt",
			    optarg);
			break;
		case O_DIRTY_RATE:
			o.dirty_rate = parse_double("--dirty-rate", optarg, 0,
			    1e7);
			break;
		case O_NO_TRACK:	o.no_track_dirty = true; break;
		case O_PAUSE_DELAY:
			o.pause_delay = parse_double("--pause-delay", optarg, 0,
			    3600);
			break;
		case O_SURVIVE:		o.survive_cancel = true; break;
		case O_TRUNCATE:	o.truncate_at_pause = true; break;
		case O_TRUNCATE_RESUME:	o.truncate_at_resume = true; break;
		case 'j':	o.json = true; break;
		case 'q':	o.quiet = true; break;
		case 'h':	usage(stdout); return 0;
		default:	usage(stderr); return 2;
		}
	}
	if (optind != argc)
		die(2, "unexpected argument '%s' (see --help)", argv[optind]);
	if (o.size == 0 || o.size % PAGE != 0)
		die(2, "--size must be a non-zero multiple of %u bytes", PAGE);
	if (o.huge != 0 && o.size % o.huge != 0)
		die(2, "--size must be a multiple of the %s huge page",
		    o.huge == HUGE_1G ? "1 GiB" : "2 MiB");
	if (o.size / PAGE > UINT32_MAX)
		die(2, "--size: at most %llu bytes",
		    (unsigned long long)UINT32_MAX * PAGE);
	if (o.local) {
		if (have_role && o.role != ROLE_DEST)
			die(2, "--local plays the destination; drop --role");
		o.role = ROLE_DEST;
	} else {
		if (!have_role)
			die(2, "--role source|dest is required (or --local)");
		if (o.id == NULL)
			die(2, "--id is required");
	}
	if (o.corrupt >= 0 && !o.local)
		die(2, "--local-corrupt needs --local");
	if ((o.dirty_rate > 0 || o.no_track_dirty || o.pause_delay > 0 ||
	    o.survive_cancel || o.truncate_at_pause) && o.role != ROLE_SOURCE)
		die(2, "--dirty-rate, --no-track-dirty, --pause-delay, "
		    "--survive-cancel and --truncate-at-pause are for the "
		    "source");
	if (o.copy && o.role == ROLE_SOURCE)
		die(2, "--copy is for the destination (a source attaches a "
		    "memfd)");
	if (o.truncate_at_resume && (o.role != ROLE_DEST || o.local ||
	    o.copy))
		die(2, "--truncate-at-resume is for a destination's memfd "
		    "(not --local, not --copy)");
	if (o.copy && o.workload == WL_KVM && o.local)
		say(&o, "kvm workload on anonymous COPY-mode memory");
	signal(SIGPIPE, SIG_IGN);
	return o.role == ROLE_SOURCE ? run_source(&o) : run_dest(&o);
}
