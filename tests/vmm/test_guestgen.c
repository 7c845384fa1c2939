/* test_guestgen.c - the content generator the guests are checked against. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guestdirty.h"
#include "guestgen.h"
#include "testlib.h"


static int
cmp64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* --dirty-rate: a memory written by the sequence is what the replay
 * expects (every page), and one write fewer is caught. */
static void
test_guestdirty(void)
{
	enum { NP = 512, NW = 700 };
	static uint8_t mem[NP * GUESTGEN_PAGE], buf[GUESTGEN_PAGE];
	struct guestgen g;
	struct guestdirty x, y;
	uint64_t bad = 0, last = 0, written = 0;
	uint32_t sum = 0;

	guestgen_init(&g, 7, 0.25);
	for (uint64_t i = 0; i < NP; i++)
		guestgen_page(&g, i, mem + i * GUESTGEN_PAGE);
	for (uint64_t i = 0; i < NW; i++)
		guestdirty_write(&g, NP, i, mem);
	last = guestdirty_page(&g, NP, NW - 1);
	CHECK(guestdirty_init(&x, &g, NP, NW) == 0, "init");
	CHECK(guestdirty_init(&y, &g, NP, NW - 1) == 0, "init");
	for (uint64_t i = 0; i < NP; i++) {
		const uint8_t *p = mem + i * GUESTGEN_PAGE;

		guestdirty_expect(&x, i, buf);
		CHECK(memcmp(p, buf, GUESTGEN_PAGE) == 0, "page %llu",
		    (unsigned long long)i);
		CHECK(guestgen_hash(p) == guestdirty_expect_hash(&x, i), "hash");
		written += guestdirty_written(&x, i) != 0;
		if (guestdirty_written(&x, i))
			CHECK(!guestdirty_is_zero(&x, i), "a written page is "
			    "never zero");
		bad += guestgen_hash(p) != guestdirty_expect_hash(&y, i);
		sum = (sum << 1 | sum >> 31) + (uint32_t)(p[0] | p[1] << 8 |
		    p[2] << 16 | (uint32_t)p[3] << 24) +
		    (uint32_t)(p[4092] | p[4093] << 8 | p[4094] << 16 |
		    (uint32_t)p[4095] << 24);
	}
	CHECK(written == x.rewritten && written > NP / 2, "rewritten %llu",
	    (unsigned long long)written);
	CHECK(bad == 1 && guestgen_hash(mem + last * GUESTGEN_PAGE) !=
	    guestdirty_expect_hash(&y, last), "one write fewer: %llu bad",
	    (unsigned long long)bad);
	CHECK(guestdirty_kvm_checksum(&x) == sum, "kvm checksum of the writes");
	printf("guestdirty: %d writes to %llu pages replayed; one fewer is "
	    "caught\n", NW, (unsigned long long)written);
	guestdirty_free(&x);
	guestdirty_free(&y);
}

int
main(void)
{
	enum { N = 16384 };
	static uint8_t a[GUESTGEN_PAGE], b[GUESTGEN_PAGE];
	static uint64_t hashes[N];
	struct guestgen g, g2, none, all;
	uint64_t zero = 0, pattern = 0, random = 0, nh = 0;
	uint32_t sum = 0;

	guestgen_init(&g, 42, 0.25);
	guestgen_init(&g2, 43, 0.25);
	guestgen_init(&none, 42, 0);
	guestgen_init(&all, 42, 1);

	for (uint64_t i = 0; i < N; i++) {
		enum guestgen_kind k = guestgen_kind(&g, i);
		guestgen_page(&g, i, a);
		guestgen_page(&g, i, b);
		CHECK(memcmp(a, b, sizeof(a)) == 0, "page %llu not "
		    "deterministic", (unsigned long long)i);
		CHECK(guestgen_hash(a) == guestgen_page_hash(&g, i), "hash");
		if (k == GUESTGEN_ZERO) {
			zero++;
			CHECK(guestgen_is_zero(&g, i), "is_zero");
			for (size_t j = 0; j < sizeof(a); j++)
				if (a[j] != 0) {
					CHECK(0, "zero page %llu has data",
					    (unsigned long long)i);
					break;
				}
		} else {
			hashes[nh++] = guestgen_hash(a);
			if (k == GUESTGEN_PATTERN)
				pattern++;
			else
				random++;
		}
		/* Every dword matches the page, O(1). */
		for (unsigned off = 0; off < GUESTGEN_PAGE; off += 4) {
			uint32_t w;
			memcpy(&w, a + off, 4);
			if (w != guestgen_dword(&g, i, off)) {
				CHECK(0, "dword %u of page %llu", off,
				    (unsigned long long)i);
				break;
			}
		}
		sum = (sum << 1) | (sum >> 31);
		sum += guestgen_dword(&g, i, 0) +
		    guestgen_dword(&g, i, GUESTGEN_PAGE - 4);
		CHECK(guestgen_is_zero(&none, i) == false, "fraction 0");
		CHECK(guestgen_is_zero(&all, i) == true, "fraction 1");
	}
	/* 25% zero pages, give or take; the rest split between kinds. */
	CHECK(zero > N * 0.23 && zero < N * 0.27, "zero pages %llu of %d",
	    (unsigned long long)zero, N);
	CHECK(pattern > N / 3 && random > N / 3, "pattern %llu random %llu",
	    (unsigned long long)pattern, (unsigned long long)random);
	/* No two non-zero pages are alike (a misplaced page is caught). */
	qsort(hashes, nh, sizeof(hashes[0]), cmp64);
	for (uint64_t i = 1; i < nh; i++)
		CHECK(hashes[i] != hashes[i - 1], "two equal pages");
	/* Another seed, other content. */
	guestgen_page(&g, 1, a);
	guestgen_page(&g2, 1, b);
	CHECK(guestgen_is_zero(&g, 1) || guestgen_is_zero(&g2, 1) ||
	    memcmp(a, b, sizeof(a)) != 0, "seed has no effect");
	CHECK(guestgen_kvm_checksum(&g, N) == sum, "kvm checksum");
	CHECK(guestgen_zero_fraction(&g) == 0.25, "zero fraction");

	/* Huge pages (2 MiB = 512 pages): zero pages come in whole aligned
	 * huge pages, about the same share of them; the rest is unchanged. */
	struct guestgen h = g;
	uint64_t hzero = 0, runs = N / 512;
	CHECK(guestgen_set_unit(&h, 3 * GUESTGEN_PAGE) < 0, "unit 12 KiB");
	CHECK(guestgen_set_unit(&h, 100) < 0, "unit 100");
	CHECK(guestgen_set_unit(&h, 2u << 20) == 0 &&
	    guestgen_unit(&h) == 2u << 20, "unit 2 MiB");
	CHECK(guestgen_unit(&g) == GUESTGEN_PAGE, "default unit");
	for (uint64_t hp = 0; hp < runs * 64; hp++) {
		bool z = guestgen_is_zero(&h, hp * 512);
		hzero += z;
		for (uint64_t i = hp * 512; i < (hp + 1) * 512; i += 37) {
			CHECK(guestgen_is_zero(&h, i) == z, "huge page %llu "
			    "is partly zero", (unsigned long long)hp);
			if (!z) {
				guestgen_page(&h, i, a);
				guestgen_page(&g, i, b);
				CHECK(guestgen_is_zero(&g, i) ||
				    memcmp(a, b, sizeof(a)) == 0, "page %llu "
				    "changed with the unit",
				    (unsigned long long)i);
			}
		}
	}
	CHECK(hzero > runs * 64 * 0.18 && hzero < runs * 64 * 0.32,
	    "zero huge pages %llu of %llu", (unsigned long long)hzero,
	    (unsigned long long)runs * 64);
	test_guestdirty();
	printf("%s: %llu zero, %llu patterned, %llu random pages\n",
	    failures ? "FAILED" : "PASSED", (unsigned long long)zero,
	    (unsigned long long)pattern, (unsigned long long)random);
	return failures ? 1 : 0;
}
