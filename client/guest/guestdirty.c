/* guestdirty.c - see guestdirty.h. */
#include "guestdirty.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define GUESTDIRTY_PAGE_SALT	0x6469727479706167ull	/* "dirtypag" */
#define GUESTDIRTY_VER_SALT	0x76657273696f6e21ull	/* "version!" */

uint64_t
guestdirty_page(const struct guestgen *g, uint64_t npages, uint64_t i)
{
	return guestgen_mix(g->seed ^ GUESTDIRTY_PAGE_SALT ^
	    guestgen_mix(i + 1)) % npages;
}

/* The generator of version i: the same page layout, another seed, no
 * zero pages. */
static struct guestgen
guestdirty_version(const struct guestgen *g, uint64_t i)
{
	struct guestgen v = *g;	/* the same unit (huge pages) */

	v.seed = guestgen_mix(g->seed ^ GUESTDIRTY_VER_SALT ^
	    guestgen_mix(i + 1));
	v.zero_q16 = 0;
	return v;
}

void
guestdirty_write(const struct guestgen *g, uint64_t npages, uint64_t i,
    uint8_t *mem)
{
	struct guestgen v = guestdirty_version(g, i);
	uint64_t p = guestdirty_page(g, npages, i);

	guestgen_page(&v, p, mem + p * GUESTGEN_PAGE);
}

int
guestdirty_init(struct guestdirty *d, const struct guestgen *g,
    uint64_t npages, uint64_t nwrites)
{
	memset(d, 0, sizeof(*d));
	d->base = *g;
	d->npages = npages;
	d->nwrites = nwrites;
	if (nwrites == 0 || npages == 0)
		return 0;
	if (nwrites > GUESTDIRTY_MAX_WRITES ||
	    (d->last = calloc(npages, sizeof(*d->last))) == NULL)
		return -ENOMEM;
	for (uint64_t i = 0; i < nwrites; i++) {
		uint64_t p = guestdirty_page(g, npages, i);

		if (d->last[p] == 0)
			d->rewritten++;
		d->last[p] = (uint32_t)(i + 1);
	}
	return 0;
}

void
guestdirty_free(struct guestdirty *d)
{
	free(d->last);
	d->last = NULL;
}

int
guestdirty_written(const struct guestdirty *d, uint64_t idx)
{
	return d->last != NULL && d->last[idx] != 0;
}

void
guestdirty_expect(const struct guestdirty *d, uint64_t idx, void *buf)
{
	struct guestgen v;

	if (!guestdirty_written(d, idx)) {
		guestgen_page(&d->base, idx, buf);
		return;
	}
	v = guestdirty_version(&d->base, d->last[idx] - 1);
	guestgen_page(&v, idx, buf);
}

uint64_t
guestdirty_expect_hash(const struct guestdirty *d, uint64_t idx)
{
	struct guestgen v;

	if (!guestdirty_written(d, idx))
		return guestgen_page_hash(&d->base, idx);
	v = guestdirty_version(&d->base, d->last[idx] - 1);
	return guestgen_page_hash(&v, idx);
}

int
guestdirty_is_zero(const struct guestdirty *d, uint64_t idx)
{
	return !guestdirty_written(d, idx) && guestgen_is_zero(&d->base, idx);
}

uint32_t
guestdirty_kvm_checksum(const struct guestdirty *d)
{
	uint32_t sum = 0;

	if (d->last == NULL)
		return guestgen_kvm_checksum(&d->base, d->npages);
	for (uint64_t i = 0; i < d->npages; i++) {
		struct guestgen v = d->last[i] == 0 ? d->base :
		    guestdirty_version(&d->base, d->last[i] - 1);

		sum = (sum << 1 | sum >> 31) + guestgen_dword(&v, i, 0) +
		    guestgen_dword(&v, i, GUESTGEN_PAGE - 4);
	}
	return sum;
}
