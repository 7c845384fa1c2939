/* guestdirty.h - the source guest's deterministic writes (postcopy-guest
 * --dirty-rate), and what the destination must then find.
 *
 * During precopy the source guest keeps running and writing its memory.
 * For the destination to still verify every page, the writes form a
 * sequence fixed by the seed: write i goes to page guestdirty_page(i) and
 * fills it with "version i" of that page (guestgen content of a seed
 * derived from (seed, i): never all zero, and carrying the page index like
 * every generated page). The source stops writing before it answers the
 * pause and sends the number of writes it completed in its device state;
 * the destination replays the sequence to learn each page's last version.
 * "Verified" then means: every page equals what the source guest had at
 * the pause, the only content a migration can promise.
 */
#ifndef PCD_GUESTDIRTY_H
#define PCD_GUESTDIRTY_H

#include <stdint.h>

#include "guestgen.h"

#define GUESTDIRTY_MAX_WRITES	(UINT32_MAX - 1u)

struct guestdirty {
	struct guestgen	 base;		/* the content before any write */
	uint64_t	 npages;
	uint64_t	 nwrites;
	uint32_t	*last;		/* per page: last write index + 1, or
					 * 0; NULL when nwrites is 0 */
	uint64_t	 rewritten;	/* distinct pages written */
};

/* The page write i of the sequence goes to. */
uint64_t guestdirty_page(const struct guestgen *g, uint64_t npages,
    uint64_t i);
/* Performs write i on the guest memory at mem (npages pages). */
void guestdirty_write(const struct guestgen *g, uint64_t npages, uint64_t i,
    uint8_t *mem);

/* What the destination expects after nwrites writes. 0 or -ENOMEM. */
int guestdirty_init(struct guestdirty *d, const struct guestgen *g,
    uint64_t npages, uint64_t nwrites);
void guestdirty_free(struct guestdirty *d);

/* Page idx as the source had it at the pause: content, its XXH3-64, and
 * whether it is all zero. */
void guestdirty_expect(const struct guestdirty *d, uint64_t idx, void *buf);
uint64_t guestdirty_expect_hash(const struct guestdirty *d, uint64_t idx);
int guestdirty_written(const struct guestdirty *d, uint64_t idx);
int guestdirty_is_zero(const struct guestdirty *d, uint64_t idx);

/* guestgen_kvm_checksum() of the expected memory. */
uint32_t guestdirty_kvm_checksum(const struct guestdirty *d);

#endif
