/* pagestate.c - a destination's per-page state (see pagestate.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "log.h"
#include "pagestate.h"
#include "util.h"

#define PAGESTATE_MAGIC	"PCDSTAT1"

struct pagestate_hdr {
	char		magic[8];
	uint64_t	npages;
	uint64_t	size;
	uint32_t	page_size;
	uint32_t	mode;
	uint64_t	base;
};

static size_t
pagestate_words(const struct pagestate *p)
{
	return (p->npages + 63) / 64;
}

void
pagestate_init(struct pagestate *p, uint64_t npages, uint32_t ps,
    struct mig_counters *c)
{
	memset(p, 0, sizeof(*p));
	p->npages = npages;
	p->ps = ps;
	p->c = c;
	p->fd = -1;
	pthread_mutex_init(&p->plock, NULL);
}

/* Whether an error means "no room" (the operator must free space). */
static bool
pagestate_err_full(int r)
{
	return r == -ENOSPC || r == -EDQUOT;
}

static void
pagestate_err_space(const char *id, const char *what, const char *path,
    size_t len, int r, char *err, size_t errlen)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');

	snprintf(dir, sizeof(dir), "%.*s", slash != NULL ? (int)(slash - path) :
	    1, slash != NULL ? path : ".");
	snprintf(err, errlen, "migration '%s': %s: the state directory %s has "
	    "no room for the page state file %s (%zu bytes): %s (%s)", id, what,
	    dir[0] ? dir : "/", path, len, strerror(-r),
	    r == -EDQUOT ? "EDQUOT" : "ENOSPC");
}

/* Reserves the file's blocks: writes through the mapping then never fail
 * (a failed write to a MAP_SHARED page is a SIGBUS). */
static int
pagestate_reserve(int fd, size_t len)
{
	int r;

	do
		r = posix_fallocate(fd, 0, (off_t)len);
	while (r == EINTR);
	return -r;
}

int
pagestate_dir_check(const char *dir, const char *id, char *err, size_t errlen)
{
	char probe[PATH_MAX];
	int fd, r;

	if (dir == NULL || dir[0] == '\0')
		return 0;
	/* A file kept for a restart already holds its blocks. */
	snprintf(probe, sizeof(probe), "%.3900s/%s.pcstate", dir, id);
	if (access(probe, F_OK) == 0)
		return 0;
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0) {
		/* No O_TMPFILE on this filesystem: the first open says more. */
		if (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)
			return 0;
		r = -errno;
		snprintf(err, errlen, "migration '%s': cannot use the state "
		    "directory %s: %s", id, dir, strerror(-r));
		return pagestate_err_full(r) ? r : 0;
	}
	r = pagestate_reserve(fd, PAGESTATE_HDR_LEN);
	close(fd);
	if (r < 0 && pagestate_err_full(r)) {
		pagestate_err_space(id, "cannot prepare", probe,
		    PAGESTATE_HDR_LEN, r, err, errlen);
		return r;
	}
	return 0;
}

static void
pagestate_hdr_make(const struct pagestate *p, uint32_t mode, uint64_t base,
    struct pagestate_hdr *h)
{
	memset(h, 0, sizeof(*h));
	memcpy(h->magic, PAGESTATE_MAGIC, sizeof(h->magic));
	h->npages = p->npages;
	h->size = p->npages * p->ps;
	h->page_size = p->ps;
	h->mode = mode;
	h->base = base;
}

/* Opens, locks and (fresh) sizes the file; the fd or -errno. */
static int
pagestate_file_prep(struct pagestate *p, const char *id, const char *path,
    bool restore, char *err, size_t errlen)
{
	const char *what = restore ? "cannot pick up the migration after a "
	    "restart" : "cannot start";
	struct stat st;
	int fd, r;

	fd = open(path, O_RDWR | O_CLOEXEC | (restore ? 0 : O_CREAT), 0600);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, restore ? "cannot pick up migration '%s' "
		    "after a restart: no saved page state %s: %s" :
		    "migration '%s': cannot create the page state file %s: %s",
		    id, path, strerror(-r));
		return r;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		r = -errno;
		snprintf(err, errlen, "migration '%s': page state file %s is "
		    "in use by another process: %s", id, path, strerror(-r));
		close(fd);
		return r == -EWOULDBLOCK ? -EBUSY : r;
	}
	if (!restore && ftruncate(fd, 0) < 0) {
		r = -errno;
		snprintf(err, errlen, "migration '%s': cannot truncate the page "
		    "state file %s: %s", id, path, strerror(-r));
		close(fd);
		return r;
	}
	if (restore && (fstat(fd, &st) < 0 || (size_t)st.st_size != p->len)) {
		snprintf(err, errlen, "cannot pick up migration '%s': the page "
		    "state file %s does not fit this guest", id, path);
		close(fd);
		return -EINVAL;
	}
	/* A restored file written by an older daemon may be sparse. */
	if ((r = pagestate_reserve(fd, p->len)) < 0) {
		if (pagestate_err_full(r))
			pagestate_err_space(id, what, path, p->len, r, err,
			    errlen);
		else
			snprintf(err, errlen, "migration '%s': cannot reserve "
			    "%zu bytes for the page state file %s: %s", id,
			    p->len, path, strerror(-r));
		close(fd);
		return r;
	}
	return fd;
}

/* In the header block, after struct pagestate_hdr: a set flag and the
 * token. */
#define PAGESTATE_TOKEN_OFF	64
#define PAGESTATE_TOKEN_MAX	32

void
pagestate_token_save(struct pagestate *p, const uint8_t *token, size_t len)
{
	if (p->map == NULL || len > PAGESTATE_TOKEN_MAX)
		return;
	memcpy(p->map + PAGESTATE_TOKEN_OFF + 8, token, len);
	p->map[PAGESTATE_TOKEN_OFF] = (uint8_t)len;
}

bool
pagestate_token_load(struct pagestate *p, uint8_t *token, size_t len)
{
	if (p->map == NULL || p->map[PAGESTATE_TOKEN_OFF] != len)
		return false;
	memcpy(token, p->map + PAGESTATE_TOKEN_OFF + 8, len);
	return true;
}

int
pagestate_file_open(struct pagestate *p, const char *id, const char *path,
    bool restore, uint32_t mode, uint64_t base, char *err, size_t errlen)
{
	size_t words = pagestate_words(p);
	struct pagestate_hdr want, *have;
	int fd, r;

	pagestate_hdr_make(p, mode, base, &want);
	p->len = PAGESTATE_HDR_LEN + words * 8 + p->npages * 8;
	if ((fd = pagestate_file_prep(p, id, path, restore, err, errlen)) < 0)
		return fd;
	p->map = mmap(NULL, p->len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p->map == MAP_FAILED) {
		r = -errno;
		p->map = NULL;
		snprintf(err, errlen, "migration '%s': cannot map the page "
		    "state file %s: %s", id, path, strerror(-r));
		close(fd);
		return r;
	}
	p->fd = fd;
	have = (struct pagestate_hdr *)(void *)p->map;
	if (restore && memcmp(have, &want, sizeof(want)) != 0) {
		snprintf(err, errlen, "cannot pick up migration '%s': the page "
		    "state file %s was written for another guest layout", id,
		    path);
		return -EINVAL;
	}
	if (!restore)
		memcpy(have, &want, sizeof(want));
	p->valid = (_Atomic uint64_t *)(void *)(p->map + PAGESTATE_HDR_LEN);
	p->hash = (uint64_t *)(void *)(p->map + PAGESTATE_HDR_LEN + words * 8);
	return 0;
}

int
pagestate_alloc(struct pagestate *p, char *err, size_t errlen)
{
	size_t words = pagestate_words(p);
	uint8_t *zero;

	if (p->map == NULL) {
		p->valid = calloc(words, sizeof(uint64_t));
		p->hash = calloc(p->npages, sizeof(uint64_t));
	}
	p->claimed = calloc(words, sizeof(uint64_t));
	p->requested = calloc(words, sizeof(uint64_t));
	p->mapped = calloc(words, sizeof(uint64_t));
	p->faulted = calloc(words, sizeof(uint64_t));
	zero = calloc(1, p->ps);
	if (!p->valid || !p->claimed || !p->requested || !p->mapped ||
	    !p->faulted || !p->hash || !zero) {
		free(zero);
		snprintf(err, errlen, "out of memory for the page state of %"
		    PRIu64 " pages", p->npages);
		return -ENOMEM;
	}
	p->zero_hash = XXH3_64bits(zero, p->ps);
	free(zero);
	return 0;
}

uint64_t
pagestate_restore(struct pagestate *p)
{
	size_t words = pagestate_words(p);
	uint64_t n = 0;

	for (size_t i = 0; i < words; i++) {
		uint64_t w = atomic_load(&p->valid[i]);

		if (i == words - 1 && p->npages % 64 != 0)
			w &= (1ull << (p->npages % 64)) - 1;
		atomic_store(&p->valid[i], w);
		atomic_store(&p->claimed[i], w);
		n += (uint64_t)__builtin_popcountll(w);
	}
	atomic_store(&p->c->pages_valid, n);
	return n;
}

void
pagestate_free(struct pagestate *p)
{
	if (p == NULL || p->npages == 0)
		return;
	if (p->map != NULL)
		munmap(p->map, p->len);
	else {
		free(p->valid);
		free(p->hash);
	}
	if (p->fd >= 0)
		close(p->fd);
	free(p->claimed);
	free(p->requested);
	free(p->mapped);
	free(p->faulted);
	pthread_mutex_destroy(&p->plock);
	memset(p, 0, sizeof(*p));
	p->fd = -1;
}

uint64_t
pagestate_claim_run(struct pagestate *p, uint64_t first, uint64_t n)
{
	uint64_t k = 0;

	while (k < n && !bm_set(p->claimed, first + k))
		k++;
	return k;
}

void
pagestate_hash(struct pagestate *p, uint64_t first, uint64_t n,
    const uint8_t *buf)
{
	for (uint64_t j = 0; j < n; j++) {
		PCD_ASSERT(bm_test(p->claimed, first + j));
		p->hash[first + j] = buf == NULL ? p->zero_hash :
		    XXH3_64bits(buf + j * p->ps, p->ps);
	}
}

bool
pagestate_set_valid(struct pagestate *p, uint64_t first, uint64_t n)
{
	uint64_t total;

	for (uint64_t i = first; i < first + n; i++) {
		/* Only the receiver that claimed the page writes it, and it
		 * becomes valid once. */
		PCD_ASSERT(bm_test(p->claimed, i));
		if (bm_set(p->valid, i))
			PCD_ASSERT(!"page made valid twice");
	}
	total = atomic_fetch_add(&p->c->pages_valid, n) + n;
	return total >= p->npages;
}

uint64_t
pagestate_invalidate(struct pagestate *p, uint64_t first, uint64_t n)
{
	uint64_t k = 0;

	for (uint64_t i = first; i < first + n; i++) {
		PCD_ASSERT(!bm_test(p->mapped, i));	/* never mapped stale */
		if (!bm_clear(p->valid, i))
			continue;
		bm_clear(p->claimed, i);
		k++;
	}
	if (k > 0)
		atomic_fetch_sub(&p->c->pages_valid, k);
	return k;
}

bool
pagestate_all_valid(struct pagestate *p)
{
	return atomic_load(&p->c->pages_valid) >= p->npages;
}

/* Closes page i's waiting fault; its start time or 0. */
static uint64_t
pagestate_fault_done(struct pagestate *p, uint64_t i)
{
	uint64_t t0 = 0;

	pthread_mutex_lock(&p->plock);
	if (bm_clear(p->faulted, i)) {
		atomic_fetch_sub(&p->waiting, 1);
		for (size_t k = 0; k < p->npend; k++) {
			if (p->pend[k].index == i) {
				t0 = p->pend[k].t0;
				p->pend[k] = p->pend[--p->npend];
				break;
			}
		}
	}
	pthread_mutex_unlock(&p->plock);
	return t0;
}

uint64_t
pagestate_wake_mark(struct pagestate *p, uint64_t first, uint64_t n)
{
	if (atomic_load_explicit(&p->waiting, memory_order_relaxed) == 0)
		return 0;
	for (uint64_t i = first; i < first + n; i++) {
		if (bm_test(p->faulted, i))
			return thread_run_delay_ns() + 1;
	}
	return 0;
}

void
pagestate_mapped(struct pagestate *p, uint64_t first, uint64_t n,
    uint64_t mark)
{
	uint64_t now = 0;

	for (uint64_t i = first; i < first + n; i++) {
		uint64_t t0;

		bm_set(p->mapped, i);
		if (!bm_test(p->faulted, i) ||
		    (t0 = pagestate_fault_done(p, i)) == 0)
			continue;
		if (now == 0) {
			uint64_t ran = mark > 0 ? thread_run_delay_ns() + 1 : 0;

			now = now_ns() - (ran > mark ? ran - mark : 0);
		}
		pagestate_lat_record(p->c, now > t0 ? (now - t0) / 1000 : 0);
	}
}

bool
pagestate_fault_add(struct pagestate *p, uint64_t i, uint64_t t0)
{
	bool first = false;

	pthread_mutex_lock(&p->plock);
	if (!bm_test(p->faulted, i)) {
		if (p->npend < PAGESTATE_PENDING_MAX)
			p->pend[p->npend++] = (struct pagestate_pending){ i, t0 };
		bm_set(p->faulted, i);
		atomic_fetch_add(&p->waiting, 1);
		first = true;
	}
	pthread_mutex_unlock(&p->plock);
	return first;
}

uint64_t
pagestate_release_cut(struct pagestate *p)
{
	uint64_t released = 0;

	for (uint64_t i = 0; i < p->npages; i++) {
		if (bm_test(p->valid, i))
			continue;
		if (bm_clear(p->claimed, i))
			released++;
		bm_clear(p->requested, i);
	}
	return released;
}

void
pagestate_count_pages(struct pagestate *p, uint64_t n, bool zero, bool urgent)
{
	if (zero)
		atomic_fetch_add_explicit(&p->c->pages_zero, n,
		    memory_order_relaxed);
	atomic_fetch_add_explicit(urgent ? &p->c->pages_urgent :
	    &p->c->pages_bulk, n, memory_order_relaxed);
}

void
pagestate_count_bytes(struct pagestate *p, uint64_t bytes)
{
	atomic_fetch_add_explicit(&p->c->bytes, bytes, memory_order_relaxed);
}

void
pagestate_count_fault(struct pagestate *p, bool local)
{
	atomic_fetch_add_explicit(local ? &p->c->faults_local :
	    &p->c->faults_remote, 1, memory_order_relaxed);
}

void
pagestate_count_request(struct pagestate *p)
{
	atomic_fetch_add_explicit(&p->c->requests, 1, memory_order_relaxed);
}

void
pagestate_lat_record(struct mig_counters *c, uint64_t us)
{
	unsigned b = us == 0 ? 0 : 64 - (unsigned)__builtin_clzll(us);
	uint64_t max;

	if (b >= MIG_LAT_BUCKETS)
		b = MIG_LAT_BUCKETS - 1;
	atomic_fetch_add_explicit(&c->lat_hist[b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->lat_sum_us, us, memory_order_relaxed);
	max = atomic_load_explicit(&c->lat_max_us, memory_order_relaxed);
	while (us > max && !atomic_compare_exchange_weak(&c->lat_max_us,
	    &max, us))
		;
}
