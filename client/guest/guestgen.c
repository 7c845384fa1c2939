/* guestgen.c - see guestgen.h. */
#include "guestgen.h"

#include <string.h>

#include <xxhash.h>

#define GOLDEN	0x9e3779b97f4a7c15ull

uint64_t
guestgen_mix(uint64_t x)
{
	/* splitmix64's finalizer */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

static inline uint64_t
guestgen_page_key(const struct guestgen *g, uint64_t index)
{
	return guestgen_mix(g->seed ^ guestgen_mix((index + 1) * GOLDEN));
}

void
guestgen_init(struct guestgen *g, uint64_t seed, double zero_fraction)
{
	if (!(zero_fraction > 0))	/* also NaN */
		zero_fraction = 0;
	if (zero_fraction > 1)
		zero_fraction = 1;
	g->seed = seed;
	g->zero_q16 = (uint32_t)(zero_fraction * 65536.0 + 0.5);
	g->zero_shift = 0;
}

int
guestgen_set_unit(struct guestgen *g, uint64_t unit)
{
	uint32_t shift = 0;

	if (unit < GUESTGEN_PAGE || unit % GUESTGEN_PAGE != 0)
		return -1;
	while ((uint64_t)GUESTGEN_PAGE << shift < unit && shift < 40)
		shift++;
	if ((uint64_t)GUESTGEN_PAGE << shift != unit)
		return -1;
	g->zero_shift = shift;
	return 0;
}

uint64_t
guestgen_unit(const struct guestgen *g)
{
	return (uint64_t)GUESTGEN_PAGE << g->zero_shift;
}

double
guestgen_zero_fraction(const struct guestgen *g)
{
	return g->zero_q16 / 65536.0;
}

enum guestgen_kind
guestgen_kind(const struct guestgen *g, uint64_t index)
{
	uint64_t k = guestgen_page_key(g, index);
	uint64_t z = g->zero_shift == 0 ? k : guestgen_page_key(g,
	    index >> g->zero_shift << g->zero_shift);

	if ((z & 0xffff) < g->zero_q16)
		return GUESTGEN_ZERO;
	return (k >> 16) & 1 ? GUESTGEN_PATTERN : GUESTGEN_RANDOM;
}

bool
guestgen_is_zero(const struct guestgen *g, uint64_t index)
{
	return guestgen_kind(g, index) == GUESTGEN_ZERO;
}

static inline uint64_t
guestgen_word(enum guestgen_kind kind, uint64_t key, uint64_t index,
    unsigned i)
{
	switch (kind) {
	case GUESTGEN_ZERO:
		return 0;
	case GUESTGEN_PATTERN:
		/* index in the high bits, word number low, a per-page
		 * constant over it: runs of similar words. */
		return ((index << 12) | i) ^ (key | (1ull << 63));
	case GUESTGEN_RANDOM:
		break;
	}
	return guestgen_mix(key + (i + 1) * GOLDEN);
}

void
guestgen_page(const struct guestgen *g, uint64_t index, void *buf)
{
	uint64_t key = guestgen_page_key(g, index);
	enum guestgen_kind kind = guestgen_kind(g, index);
	uint64_t *w = buf;

	if (kind == GUESTGEN_ZERO) {
		memset(buf, 0, GUESTGEN_PAGE);
		return;
	}
	for (unsigned i = 0; i < GUESTGEN_PAGE / 8; i++) {
		uint64_t v = guestgen_word(kind, key, index, i);
		memcpy(&w[i], &v, sizeof(v));	/* host is little-endian */
	}
	/* The first word names the page, whatever its kind. */
	w[0] = (index << 8) | 0xa5 | ((uint64_t)kind << 56);
}

uint32_t
guestgen_dword(const struct guestgen *g, uint64_t index, unsigned off)
{
	uint64_t key = guestgen_page_key(g, index);
	enum guestgen_kind kind = guestgen_kind(g, index);
	unsigned i = (off % GUESTGEN_PAGE) / 8;
	uint64_t v;

	if (kind == GUESTGEN_ZERO)
		return 0;
	v = i == 0 ? (index << 8) | 0xa5 | ((uint64_t)kind << 56) :
	    guestgen_word(kind, key, index, i);
	return (off & 4) ? (uint32_t)(v >> 32) : (uint32_t)v;
}

uint64_t
guestgen_hash(const void *p)
{
	return XXH3_64bits(p, GUESTGEN_PAGE);
}

uint64_t
guestgen_page_hash(const struct guestgen *g, uint64_t index)
{
	uint64_t buf[GUESTGEN_PAGE / 8];

	guestgen_page(g, index, buf);
	return guestgen_hash(buf);
}

uint32_t
guestgen_kvm_checksum(const struct guestgen *g, uint64_t npages)
{
	uint32_t sum = 0;

	for (uint64_t p = 0; p < npages; p++) {
		sum = (sum << 1) | (sum >> 31);
		sum += guestgen_dword(g, p, 0);
		sum += guestgen_dword(g, p, GUESTGEN_PAGE - 4);
	}
	return sum;
}
