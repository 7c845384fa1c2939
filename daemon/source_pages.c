/* source_pages.c - the source's pages: which are zero (holes in the memfd,
 * all-zero content, all-zero huge pages), which were sent (claimed once
 * across the bulk and urgent senders), their digests (taken as they are
 * sent), and the runs the bulk stream sends under the bandwidth limit.
 * Used by source.c (the stream, page requests) and source_precopy.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "chan.h"
#include "log.h"
#include "migration_int.h"
#include "source_int.h"
#include "util.h"
#include "wire.h"

int
src_view_init(struct source *s, struct src_view *v, uint32_t ahead)
{
	*v = (struct src_view){ .ahead = ahead };
	v->buf = malloc((size_t)SRC_VIEW_PAGES * s->ps);
	return v->buf != NULL ? 0 : -ENOMEM;
}

void
src_view_free(struct src_view *v)
{
	free(v->buf);
	v->buf = NULL;
	v->n = 0;
}

const uint8_t *
src_pages(struct source *s, struct src_view *v, uint64_t i, uint32_t n)
{
	uint64_t gen = atomic_load_explicit(&s->view_gen,
	    memory_order_acquire);
	uint32_t want = v->ahead > n ? v->ahead : n;
	size_t len, done = 0;
	off_t off;
	ssize_t r;

	PCD_ASSERT(n <= SRC_VIEW_PAGES && i + n <= s->npages);
	if (v->n > 0 && v->gen == gen && i >= v->first &&
	    i + n <= v->first + v->n)
		return v->buf + (i - v->first) * s->ps;
	v->n = 0;
	if (want > SRC_VIEW_PAGES)
		want = SRC_VIEW_PAGES;
	if (want > s->npages - i)
		want = (uint32_t)(s->npages - i);
	len = (size_t)want * s->ps;
	off = (off_t)(s->m->g.offset + i * s->ps);
	while (done < len) {
		r = pread(s->m->g.memfd, v->buf + done, len - done,
		    off + (off_t)done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			v->err = -errno;
			return NULL;
		}
		if (r == 0) {
			/* The VMM cut its memfd short (a mapping would have
			 * been SIGBUS, for every migration here). */
			if (done >= (size_t)n * s->ps)
				break;
			v->err = -ENXIO;
			return NULL;
		}
		done += (size_t)r;
	}
	want = (uint32_t)(done / s->ps);
	v->first = i;
	v->n = want;
	v->gen = gen;
	return v->buf;
}

int
src_read_error(struct source *s, struct src_view *v, struct chan *c,
    uint64_t i, uint32_t n)
{
	return chan_set_error(c, v->err, "reading guest pages %" PRIu64 "+%"
	    PRIu32 " from the source VMM's memfd failed: %s", i, n,
	    v->err == -ENXIO ? "the memfd ends before them (the VMM truncated "
	    "it?)" : strerror(-v->err));
}

bool
src_zero(struct source *s, struct src_view *v, uint64_t i)
{
	const uint64_t *q;
	uint32_t ps = s->ps;

	/* A hole reads as zeros, without a read. */
	if (atomic_load_explicit(&s->holes_ready, memory_order_acquire) &&
	    ((s->hole[i >> 6] >> (i & 63)) & 1))
		return true;
	/* Unreadable: not zero, so that sending it reports why. */
	if ((q = (const uint64_t *)(const void *)src_pages(s, v, i, 1)) ==
	    NULL)
		return false;

	for (size_t k = 0; k < ps / 8; k += 8) {
		uint64_t acc = q[k] | q[k + 1] | q[k + 2] | q[k + 3] |
		    q[k + 4] | q[k + 5] | q[k + 6] | q[k + 7];
		if (acc != 0)
			return false;
	}
	return true;
}

/* Huge pages (zero detection per huge page): whether the pieces of the
 * huge page that starts at piece first are all zero. Stops at the first
 * piece that is not. */
bool
src_zero_unit(struct source *s, struct src_view *v, uint64_t first)
{
	for (uint64_t k = 0; k < s->upp; k++)
		if (!src_zero(s, v, first + k))
			return false;
	return true;
}

/*
 * Holes by residency: one mincore() over the whole memfd instead of two
 * lseek()s per hole. A shmem page that is not in the page cache is a hole
 * unless it was swapped out; the file's allocated blocks (swapped pages
 * included) taken after the call tell: if they equal the resident pages,
 * no page was swapped out, so every page mincore did not see is a hole.
 * Pages allocated meanwhile (a read by the urgent sender) only make the
 * counts differ. Base pages and a mapping of the whole file only.
 */
static bool
src_holes_by_residency(struct source *s, uint64_t *holes)
{
	struct stat st;
	uint64_t resident = 0;
	unsigned char *vec;

	if (s->ps != (uint32_t)sysconf(_SC_PAGESIZE) || s->m->g.offset != 0 ||
	    (vec = malloc(s->npages)) == NULL)
		return false;
	if (mincore((void *)(uintptr_t)s->map, s->m->g.size, vec) < 0 ||
	    fstat(s->m->g.memfd, &st) < 0 ||
	    (uint64_t)st.st_size != s->m->g.size) {
		free(vec);
		return false;
	}
	for (uint64_t i = 0; i < s->npages; i++)
		resident += vec[i] & 1;
	if ((uint64_t)st.st_blocks * 512 != resident * s->ps) {
		free(vec);
		return false;
	}
	for (uint64_t i = 0; i < s->npages; i++) {
		if (!(vec[i] & 1)) {
			s->hole[i >> 6] |= 1ull << (i & 63);
			(*holes)++;
		}
	}
	free(vec);
	return true;
}

/* The memfd still holds the whole guest. */
static int
src_memfd_whole(struct source *s, struct chan *c)
{
	uint64_t end = s->m->g.offset + s->m->g.size;
	struct stat st;

	if (fstat(s->m->g.memfd, &st) < 0)
		return chan_set_error(c, -errno, "fstat of the source VMM's "
		    "memfd: %s", strerror(errno));
	if ((uint64_t)st.st_size < end)
		return chan_set_error(c, -ENXIO, "the source VMM's memfd is %"
		    PRIu64 " bytes, shorter than the guest (%" PRIu64 " bytes "
		    "at offset %" PRIu64 "): the memfd ends before them (the "
		    "VMM truncated it?)", (uint64_t)st.st_size, s->m->g.size,
		    s->m->g.offset);
	return 0;
}

/* The same by SEEK_HOLE/SEEK_DATA: exact with swap, two calls per hole. */
static void
src_holes_by_seek(struct source *s, uint64_t *holes)
{
	off_t start = (off_t)s->m->g.offset, end = start + (off_t)s->m->g.size;
	off_t pos = start;

	while (pos < end) {
		off_t h = lseek(s->m->g.memfd, pos, SEEK_HOLE), d;

		if (h < 0 || h >= end)
			break;
		d = lseek(s->m->g.memfd, h, SEEK_DATA);
		if (d < 0 || d > end)
			d = end;
		/* Whole pages inside [h, d). */
		for (uint64_t i = ((uint64_t)(h - start) + s->ps - 1) / s->ps;
		    i < (uint64_t)(d - start) / s->ps; i++) {
			s->hole[i >> 6] |= 1ull << (i & 63);
			(*holes)++;
		}
		pos = d;
	}
}

/* Pages that are holes in the memfd (never written): zero without looking.
 * An error on c when the memfd no longer holds the whole guest. */
int
src_find_holes(struct source *s, struct chan *c)
{
	uint64_t holes = 0;
	bool fast;
	int r;

	/* Past the memfd's end everything reads as a hole: a memfd the VMM
	 * cut short would send the rest of the guest as zero pages. Looked at
	 * before and after (a cut meanwhile). */
	if ((r = src_memfd_whole(s, c)) < 0)
		return r;
	if (!(fast = src_holes_by_residency(s, &holes)))
		src_holes_by_seek(s, &holes);
	if ((r = src_memfd_whole(s, c)) < 0)
		return r;
	log_info("migration %s: %" PRIu64 " of %" PRIu64 " pages are holes "
	    "in the memfd (found by %s; sent as zero runs without reading "
	    "them)", s->m->id, holes, s->npages, fast ? "residency" : "seeking");
	return 0;
}

/* The source's pages_valid (pages sent) never goes back: a resume sends
 * again the pages lost in flight, which count only once the number sent
 * passes the most ever reported. */
void
src_valid_raise(struct source *s, uint64_t n)
{
	uint64_t cur = atomic_load(&s->c->pages_valid);

	while (cur < n && !atomic_compare_exchange_weak(&s->c->pages_valid,
	    &cur, n))
		;
}

uint32_t
src_owner(const struct source *s, uint64_t i)
{
	return (uint32_t)((i / s->stripe) % s->nbulk);
}

/* Marks page i sent; counts it once (and for its stripe's sender). */
bool
src_claim(struct source *s, uint64_t i)
{
	if (bm_set(s->sent, i))
		return false;
	atomic_fetch_add_explicit(&s->bulk[src_owner(s, i)].sent, 1,
	    memory_order_relaxed);
	src_valid_raise(s, atomic_fetch_add(&s->sent_count, 1) + 1);
	return true;
}

void
src_recount(struct source *s)
{
	uint64_t n = 0, own[WIRE_BULK_CHANNELS_MAX] = { 0 };

	for (uint64_t i = 0; i < s->npages; i++) {
		/* Whole words at a time where they are all set or all not. */
		uint64_t w = atomic_load_explicit(&s->sent[i >> 6],
		    memory_order_relaxed);

		if ((i & 63) == 0 && i + 64 <= s->npages &&
		    (w == 0 || w == UINT64_MAX) &&
		    src_owner(s, i) == src_owner(s, i + 63)) {
			own[src_owner(s, i)] += w == 0 ? 0 : 64;
			i += 63;
			continue;
		}
		own[src_owner(s, i)] += (w >> (i & 63)) & 1;
	}
	for (uint32_t k = 0; k < s->nbulk; k++) {
		atomic_store(&s->bulk[k].sent, own[k]);
		atomic_store(&s->bulk[k].hint, SRC_NO_HINT);
		n += own[k];
	}
	atomic_store(&s->sent_count, n);
}

void
src_hint(struct source *s, uint64_t end)
{
	if (end >= s->npages)
		end = 0;
	atomic_store(&s->bulk[src_owner(s, end)].hint, end);
}

/* Digests of pages about to be sent: read now, they are in the cache when
 * TLS encrypts them. The guest is paused (a page sent while it runs is
 * sent again after its last write, and hashed again). */
static void
src_hash_run(struct source *s, uint64_t i, uint32_t n, const uint8_t *p)
{
	for (uint32_t k = 0; k < n; k++) {
		uint64_t h = p == NULL ? s->zero_hash :
		    XXH3_64bits(p + (size_t)k * s->ps, s->ps);

		atomic_store_explicit(&s->hash[i + k], h, memory_order_relaxed);
		bm_set(s->hashed, i + k);
	}
}

/* Sends pages [i, i+n) of one kind; n <= WIRE_MAX_BATCH for data. */
int
src_send_run(struct source *s, struct src_view *v, struct chan *c, uint64_t i,
    uint32_t n, bool zero)
{
	const uint8_t *p = zero ? NULL : src_pages(s, v, i, n);

	if (!zero && p == NULL)
		return src_read_error(s, v, c, i, n);
	struct wire_hdr h = {
		.type = zero ? WIRE_ZERO : WIRE_PAGES,
		.index = i,
		.count = n,
		.length = zero ? 0 : n * s->ps,
	};
	int r;

	src_hash_run(s, i, n, p);
	r = chan_send_frame(c, &h, p);
	if (r == 0) {
		atomic_fetch_add_explicit(&s->c->bytes, WIRE_HDR_LEN + h.length,
		    memory_order_relaxed);
		if (zero)
			atomic_fetch_add_explicit(&s->c->pages_zero, n,
			    memory_order_relaxed);
	}
	return r;
}

/* Sleeps as needed so the bulk stream stays under the limit (the
 * migration's: each of the senders streaming at once takes its share). */
void
src_throttle(struct source *s, uint32_t senders, uint64_t *epoch_ns,
    uint64_t *epoch_bytes, uint64_t *cur_bps, uint64_t sent)
{
	uint64_t raw = atomic_load(&s->m->bandwidth_bps), bps;

	if (raw != *cur_bps) {
		*cur_bps = raw;
		*epoch_ns = now_ns();
		*epoch_bytes = sent;
	}
	bps = raw == 0 ? 0 : raw / senders > 0 ? raw / senders : 1;
	while (bps != 0) {
		uint64_t due = (uint64_t)((double)(sent - *epoch_bytes) * 1e9 /
		    (double)bps);
		uint64_t el = now_ns() - *epoch_ns;
		struct pollfd p = { .fd = s->m->stopfd, .events = POLLIN };

		if (el >= due)
			return;
		if (poll(&p, 1, (int)((due - el) / 1000000 > 100 ? 100 :
		    (due - el) / 1000000 + 1)) > 0)
			return;
		if (atomic_load(&s->m->bandwidth_bps) != raw)
			return;		/* picked up on the next call */
	}
}

int
src_send_digests(struct source *s, struct src_view *v, struct chan *c)
{
	uint64_t *hash = malloc(WIRE_DIGEST_CHUNK * sizeof(uint64_t));
	int r = 0;

	if (hash == NULL)
		return chan_set_error(c, -ENOMEM, "out of memory");
	for (uint64_t first = 0; first < s->npages && r == 0;
	    first += WIRE_DIGEST_CHUNK) {
		Pcd__Wire__Digest d = PCD__WIRE__DIGEST__INIT;
		size_t n = s->npages - first < WIRE_DIGEST_CHUNK ?
		    s->npages - first : WIRE_DIGEST_CHUNK;

		for (size_t k = 0; k < n; k++) {
			uint64_t i = first + k;

			const uint8_t *p;

			/* Taken when sent; a page this process never sent
			 * (held by the destination already) is read now. */
			if (bm_test(s->hashed, i))
				hash[k] = atomic_load_explicit(&s->hash[i],
				    memory_order_relaxed);
			else if ((s->hole[i >> 6] >> (i & 63)) & 1)
				hash[k] = s->zero_hash;
			else if ((p = src_pages(s, v, i, 1)) != NULL)
				hash[k] = XXH3_64bits(p, s->ps);
			else {
				r = src_read_error(s, v, c, i, 1);
				break;
			}
		}
		if (r < 0)
			break;
		d.first = first;
		d.n_hash = n;
		d.hash = hash;
		r = chan_send_msg(c, WIRE_DIGEST, &d.base);
	}
	free(hash);
	return r;
}

/* Bulk, huge pages: the whole all-zero huge pages from piece pos (a huge
 * page boundary) of which no piece was sent, claimed: their pieces, 0 when
 * the first is not one. They go as one ZERO run. */
static uint32_t
src_zero_units(struct source *s, struct src_view *v, uint64_t pos,
    uint64_t lim)
{
	uint64_t max = s->upp > SRC_ZERO_RUN_MAX ? s->upp : SRC_ZERO_RUN_MAX;
	uint64_t n = 0;

	while (n + s->upp <= max && pos + n < lim) {
		for (uint64_t k = 0; k < s->upp; k++)
			if (bm_test(s->sent, pos + n + k))
				goto out;
		if (!src_zero_unit(s, v, pos + n))
			break;
		/* The urgent channel may claim one of them meanwhile: sent
		 * twice then, the destination keeps one. */
		for (uint64_t k = 0; k < s->upp; k++)
			src_claim(s, pos + n + k);
		atomic_fetch_add_explicit(&s->zero_units, 1,
		    memory_order_relaxed);
		n += s->upp;
	}
out:
	return (uint32_t)n;
}

/* Bulk: claims the run of unsent pages of one kind (zero or not) from
 * pos, at most a frame's worth, not past lim (the end of pos's stripe)
 * and, on huge pages, not past pos's huge page, so that the next run
 * starts on a boundary and is looked at whole (an all-zero huge page goes
 * as one ZERO run; stripes are whole huge pages). Its length; 0 when pos
 * was sent already. */
uint32_t
src_bulk_run(struct source *s, struct src_view *v, uint64_t pos, uint64_t lim,
    bool *zero)
{
	uint32_t n, max;

	if (s->upp > 1 && pos % s->upp == 0 &&
	    (n = src_zero_units(s, v, pos, lim)) > 0) {
		*zero = true;
		return n;
	}
	if (!src_claim(s, pos))
		return 0;
	*zero = src_zero(s, v, pos);
	max = *zero ? SRC_ZERO_RUN_MAX : WIRE_MAX_BATCH;
	if (s->upp > 1 && max > s->upp - pos % s->upp)
		max = (uint32_t)(s->upp - pos % s->upp);
	for (n = 1; n < max && pos + n < lim; n++) {
		if (bm_test(s->sent, pos + n) ||
		    src_zero(s, v, pos + n) != *zero || !src_claim(s, pos + n))
			break;
	}
	return n;
}
