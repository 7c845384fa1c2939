/* guestgen.h - deterministic guest memory content from a seed.
 *
 * Every 4 KiB page of a generated guest is, by its index and the seed, one
 * of three kinds: all zero (a zero_fraction share of the pages), patterned
 * (structured words built from the index) or random. Every non-zero page
 * carries its index, so a page delivered to the wrong place never matches.
 * Any word of any page is computed in O(1), so checkers can sample pages
 * without generating them. Used by postcopy-guest, the benchmark and tests.
 */
#ifndef PCD_GUESTGEN_H
#define PCD_GUESTGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GUESTGEN_PAGE	4096u

enum guestgen_kind { GUESTGEN_ZERO, GUESTGEN_PATTERN, GUESTGEN_RANDOM };

struct guestgen {
	uint64_t	seed;
	uint32_t	zero_q16;	/* zero fraction * 65536, 0..65536 */
	uint32_t	zero_shift;	/* zero runs of 1 << zero_shift pages */
};

/* zero_fraction is clamped to [0, 1]. Zero pages are chosen one by one. */
void guestgen_init(struct guestgen *g, uint64_t seed, double zero_fraction);
double guestgen_zero_fraction(const struct guestgen *g);
/* A guest on huge pages of unit bytes (a power of two multiple of
 * GUESTGEN_PAGE): zero pages come in whole, aligned huge pages (the first
 * 4 KiB page of each decides), so all-zero huge pages exist to be
 * skipped. Non-zero pages keep their content. -1 for a bad unit. */
int guestgen_set_unit(struct guestgen *g, uint64_t unit);
uint64_t guestgen_unit(const struct guestgen *g);	/* bytes */

enum guestgen_kind guestgen_kind(const struct guestgen *g, uint64_t index);
bool guestgen_is_zero(const struct guestgen *g, uint64_t index);
/* Fills buf (GUESTGEN_PAGE bytes) with page index. */
void guestgen_page(const struct guestgen *g, uint64_t index, void *buf);
/* The little-endian 32-bit word at byte offset off (multiple of 4). */
uint32_t guestgen_dword(const struct guestgen *g, uint64_t index, unsigned off);
/* XXH3-64 of the page as generated. */
uint64_t guestgen_page_hash(const struct guestgen *g, uint64_t index);
/* XXH3-64 of GUESTGEN_PAGE bytes at p. */
uint64_t guestgen_hash(const void *p);

/* The checksum the kvm workload's guest program computes over pages
 * [0, npages): for each page, sum = rol(sum, 1) + dword(0) + dword(4092). */
uint32_t guestgen_kvm_checksum(const struct guestgen *g, uint64_t npages);

/* splitmix64's finalizer: the one 64-bit mixer of the generators. */
uint64_t guestgen_mix(uint64_t x);

#endif
