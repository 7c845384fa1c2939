/* place_hcopy.c - COPY mode on 2 MiB huge pages (daemon/place.c, HUGE
 * COPY) against a real userfaultfd and real anonymous huge pages
 * (MAP_HUGETLB, registered MISSING), as the destination daemon sees a
 * COPY-mode VMM (here the test is its own VMM). Run under
 * tests/lib/hugepages.sh, which reserves the huge pages; exits 77 saying
 * why when the host has none.
 *
 *   - a huge page's pieces placed by two threads in a shuffled order land
 *     in one bounce buffer; the huge page is copied in (and its pieces
 *     valid, mapped) only with the last piece, and holds every byte;
 *   - zero pieces of a partial huge page are zeroed in its buffer; a
 *     whole zero huge page is copied from the zero mapping;
 *   - a cut drops the buffer of a partial huge page (its pieces were
 *     never valid) and the huge page is assembled again;
 *   - at most PLACE_ASM_MAX huge pages are partly received at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "place.h"

#define PS	4096u
#define HPS	(2u << 20)
#define PER	(HPS / PS)			/* pieces per huge page */
#define UNITS	(PLACE_ASM_MAX + 8)		/* address space, not memory */

static struct mig_counters counters;
static struct pagestate pg;
static struct place pl;
static uint8_t *guest;
static int uffd = -1;

static uint8_t
pattern(uint64_t piece, size_t k)
{
	return (uint8_t)(piece * 131 + k * 7 + 1);
}

static void
fill_piece(uint8_t *p, uint64_t piece)
{
	for (size_t k = 0; k < PS; k++)
		p[k] = pattern(piece, k);
}

/* Claims piece i and places it (data, or zero when zero is set). */
static int
put_piece(uint64_t i, bool zero)
{
	char err[200];
	uint8_t *buf = NULL;
	int r;

	assert_int_equal(pagestate_claim_run(&pg, i, 1), 1);
	if (!zero) {
		buf = pl.ops->buf(&pl, NULL, i, 1);
		assert_non_null(buf);
		fill_piece(buf, i);
	}
	pagestate_hash(&pg, i, 1, buf);
	r = pl.ops->place(&pl, i, 1, buf, err, sizeof(err));
	if (r < 0)
		fail_msg("place %llu: %s", (unsigned long long)i, err);
	return r;
}

static bool
unit_valid(uint64_t u)
{
	for (uint64_t i = u * PER; i < (u + 1) * PER; i++)
		if (!bm_test(pg.valid, i) || !bm_test(pg.mapped, i))
			return false;
	return true;
}

static bool
unit_none_valid(uint64_t u)
{
	for (uint64_t i = u * PER; i < (u + 1) * PER; i++)
		if (bm_test(pg.valid, i))
			return false;
	return true;
}

/* Reads the placed huge page u through the guest mapping. */
static void
check_unit(uint64_t u, const bool *zero)
{
	for (uint64_t i = u * PER; i < (u + 1) * PER; i++) {
		const uint8_t *p = guest + i * PS;

		for (size_t k = 0; k < PS; k += 509) {
			uint8_t want = zero != NULL && zero[i - u * PER] ? 0 :
			    pattern(i, k);

			if (p[k] != want)
				fail_msg("piece %llu byte %zu: %#x, want %#x",
				    (unsigned long long)i, k, p[k], want);
		}
	}
}

struct half {
	uint64_t	*order;
	size_t		 n;
};

static void *
put_half(void *arg)
{
	struct half *h = arg;

	for (size_t k = 0; k < h->n; k++)
		put_piece(h->order[k], false);
	return NULL;
}

static void
test_two_receivers(void **state)
{
	uint64_t order[PER];
	struct half a, b;
	pthread_t ta, tb;

	(void)state;
	for (uint64_t k = 0; k < PER; k++)
		order[k] = k;
	srand(7);
	for (uint64_t k = PER - 1; k > 0; k--) {
		uint64_t j = (uint64_t)rand() % (k + 1), t = order[k];

		order[k] = order[j];
		order[j] = t;
	}
	/* All but the last piece, from two threads at once. */
	a = (struct half){ order, (PER - 1) / 2 };
	b = (struct half){ order + a.n, PER - 1 - a.n };
	pthread_create(&ta, NULL, put_half, &a);
	pthread_create(&tb, NULL, put_half, &b);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	assert_true(unit_none_valid(0));
	assert_int_equal(place_unit_have(&pl, 0), PER - 1);
	put_piece(order[PER - 1], false);
	assert_true(unit_valid(0));
	assert_true(place_unit_valid(&pl, 0));
	check_unit(0, NULL);
	/* A later wake of the placed huge page is fine. */
	assert_int_equal(pl.ops->map(&pl, 0, 1), 0);
}

static void
test_zero(void **state)
{
	bool zero[PER];
	char err[200];

	(void)state;
	/* Huge page 1: every third piece zero (ZERO frames of pieces). */
	for (uint64_t k = 0; k < PER; k++) {
		zero[k] = k % 3 == 0;
		/* a buffer reused from huge page 0 holds its bytes: the zero
		 * pieces must be zeroed */
		put_piece(PER + k, zero[k]);
	}
	assert_true(unit_valid(1));
	check_unit(1, zero);
	/* Huge page 2: one ZERO run of the whole huge page. */
	assert_int_equal(pagestate_claim_run(&pg, 2 * PER, PER), PER);
	pagestate_hash(&pg, 2 * PER, PER, NULL);
	assert_true(pl.ops->place(&pl, 2 * PER, PER, NULL, err,
	    sizeof(err)) >= 0);
	assert_true(unit_valid(2));
	for (uint64_t k = 0; k < PER; k++)
		zero[k] = true;
	check_unit(2, zero);
}

static void
test_cut(void **state)
{
	(void)state;
	for (uint64_t k = 0; k < PER / 2; k++)
		put_piece(3 * PER + k, false);
	assert_int_equal(place_unit_have(&pl, 3 * PER), PER / 2);
	/* The session ends: its claims are released, the buffer dropped. */
	assert_int_equal(pagestate_release_cut(&pg), PER / 2);
	pl.ops->cut(&pl);
	assert_int_equal(place_unit_have(&pl, 3 * PER), 0);
	assert_true(unit_none_valid(3));
	/* The next session brings every piece again. */
	for (uint64_t k = 0; k < PER; k++)
		put_piece(3 * PER + k, false);
	assert_true(unit_valid(3));
	check_unit(3, NULL);
}

static void
test_cap(void **state)
{
	uint64_t u;

	(void)state;
	/* One piece each of PLACE_ASM_MAX huge pages: a buffer each. */
	for (u = 4; u < 4 + PLACE_ASM_MAX; u++) {
		assert_int_equal(pagestate_claim_run(&pg, u * PER, 1), 1);
		assert_non_null(pl.ops->buf(&pl, NULL, u * PER, 1));
	}
	assert_int_equal(pagestate_claim_run(&pg, u * PER, 1), 1);
	assert_null(pl.ops->buf(&pl, NULL, u * PER, 1));
	pagestate_release_cut(&pg);
	pl.ops->cut(&pl);
	assert_int_equal(pagestate_claim_run(&pg, u * PER, 1), 1);
	assert_non_null(pl.ops->buf(&pl, NULL, u * PER, 1));
	pagestate_release_cut(&pg);
	pl.ops->cut(&pl);
}

static void
test_run_max(void **state)
{
	(void)state;
	/* Receivers claim runs inside one huge page. */
	assert_int_equal(place_run_max(&pl, PER - 3, 64), 3);
	assert_int_equal(place_run_max(&pl, PER, 64), 64);
	assert_int_equal(place_run_max(&pl, 2 * PER - 1, 1), 1);
}

static int
setup(void)
{
	struct uffdio_api api = { .api = UFFD_API,
	    .features = UFFD_FEATURE_MISSING_HUGETLBFS };
	struct uffdio_register reg;
	char err[200];

	guest = mmap(NULL, (size_t)UNITS * HPS, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_NORESERVE |
	    (21 << MAP_HUGE_SHIFT), -1, 0);
	if (guest == MAP_FAILED) {
		printf("SKIP: no anonymous 2 MiB huge pages: %s\n",
		    strerror(errno));
		return 77;
	}
	uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) < 0) {
		printf("SKIP: userfaultfd with MISSING_HUGETLBFS: %s\n",
		    strerror(errno));
		return 77;
	}
	reg = (struct uffdio_register){ .mode = UFFDIO_REGISTER_MODE_MISSING,
	    .range = { (uint64_t)(uintptr_t)guest, (uint64_t)UNITS * HPS } };
	if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) {
		printf("SKIP: UFFDIO_REGISTER on huge pages: %s\n",
		    strerror(errno));
		return 77;
	}
	pagestate_init(&pg, (uint64_t)UNITS * PER, PS, &counters);
	if (pagestate_alloc(&pg, err, sizeof(err)) < 0) {
		printf("%s\n", err);
		return 1;
	}
	place_init(&pl, true, &pg, "t", uffd, -1, (uint64_t)(uintptr_t)guest,
	    0, (uint64_t)UNITS * HPS, PS);
	place_set_huge(&pl, HPS);
	if (pl.ops->open(&pl, err, sizeof(err)) < 0) {
		printf("%s\n", err);
		return 1;
	}
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_run_max),
		cmocka_unit_test(test_two_receivers),
		cmocka_unit_test(test_zero),
		cmocka_unit_test(test_cut),
		cmocka_unit_test(test_cap),
	};
	int r;

	if ((r = setup()) != 0)
		return r;
	r = cmocka_run_group_tests(tests, NULL, NULL);
	pl.ops->close(&pl);
	pagestate_free(&pg);
	close(uffd);
	munmap(guest, (size_t)UNITS * HPS);
	return r;
}
