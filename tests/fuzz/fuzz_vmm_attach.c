/* fuzz_vmm_attach.c - the bytes a VMM sends on the attach socket, read the
 * way vmm.c reads them: frames split by vmm_frame_len, the first one
 * through vmm_attach_parse (decode + layout checks) as if it came with
 * nfds descriptors, the later ones unpacked as pcd.VmmMessage.
 *
 * Input: 1 byte descriptor count (mod 4), then the stream.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "fuzz.h"
#include "migration.h"
#include "pbcheck.h"
#include "vmm.h"
#include "vmm.pb-c.h"

#define USER_ADDR_MAX	(1ull << 57)

static void
check_accepted(const Pcd__VmmAttach *a, int nfds)
{
	uint64_t ps = a->page_size;
	int dest = a->role == PCD__VMM_ROLE__VMM_ROLE_DEST;
	int copy = a->mode == PCD__VMM_MODE__VMM_MODE_COPY;

	FUZZ_CHECK(a->version == VMM_PROTOCOL_VERSION);
	FUZZ_CHECK(mig_id_valid(a->id));
	FUZZ_CHECK(strlen(a->id) >= 1 && strlen(a->id) <= MIG_ID_MAX);
	FUZZ_CHECK(a->role == PCD__VMM_ROLE__VMM_ROLE_SOURCE || dest);
	FUZZ_CHECK(a->mode == PCD__VMM_MODE__VMM_MODE_MINOR || copy);
	FUZZ_CHECK(!copy || dest);
	/* The layout is page aligned and lies in the user address space. */
	/* Base pages, or 2 MiB / 1 GiB huge pages (hugetlbfs guests; COPY
	 * mode: anonymous huge pages, which the parse lets through). */
	FUZZ_CHECK(ps == (uint64_t)sysconf(_SC_PAGESIZE) || ps == 2ull << 20 ||
	    ps == 1ull << 30);
	FUZZ_CHECK(a->size > 0 && a->size % ps == 0 && a->size <= VMM_SIZE_MAX);
	FUZZ_CHECK(a->base_addr > 0 && a->base_addr % ps == 0);
	FUZZ_CHECK(a->base_addr + a->size > a->base_addr);
	FUZZ_CHECK(a->base_addr + a->size <= USER_ADDR_MAX);
	FUZZ_CHECK(a->offset % ps == 0);
	FUZZ_CHECK(a->offset + a->size > a->offset);
	FUZZ_CHECK(!copy || a->offset == 0);
	/* memfd (+ userfaultfd on a MINOR destination; + userfaultfd and
	 * pagemap on a source that offers dirty tracking for precopy). */
	FUZZ_CHECK(nfds == (copy ? 1 : dest ? 2 : a->dirty_tracking ? 3 : 1));
	FUZZ_CHECK(!a->dirty_tracking || !dest);
}

/* What the daemon accepted, re-encoded, is accepted again. */
static void
round_trip(const Pcd__VmmMessage *m, int nfds)
{
	size_t n = pcd__vmm_message__get_packed_size(m);
	Pcd__VmmMessage *m2 = NULL;
	uint8_t *buf;
	char err[512];

	buf = malloc(n ? n : 1);
	FUZZ_CHECK(buf != NULL);
	FUZZ_CHECK(pcd__vmm_message__pack(m, buf) == n);
	FUZZ_CHECK(vmm_attach_parse(buf, n, nfds, &m2, err, sizeof(err)) == 0);
	FUZZ_CHECK(m2->attach->size == m->attach->size &&
	    m2->attach->base_addr == m->attach->base_addr &&
	    m2->attach->offset == m->attach->offset &&
	    strcmp(m2->attach->id, m->attach->id) == 0);
	pcd__vmm_message__free_unpacked(m2, NULL);
	free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p, *end;
	size_t cap = VMM_ATTACH_FRAME_MAX;
	int nfds, first = 1;

	if (size < 1)
		return 0;
	nfds = data[0] % 4;
	p = data + 1;
	end = data + size;
	for (;;) {
		size_t avail = (size_t)(end - p);
		uint32_t len = 0;
		int r;

		r = vmm_frame_len(p, avail, cap, &len);
		if (r < 0) {
			FUZZ_CHECK(r == -EMSGSIZE && (len == 0 || len > cap));
			break;
		}
		if (r == 0) {
			FUZZ_CHECK(avail < 4 || avail - 4 < len);
			break;
		}
		FUZZ_CHECK(len >= 1 && len <= cap && len <= avail - 4);
		if (first) {
			Pcd__VmmMessage *m = NULL;
			char err[512];
			uint32_t code;

			err[0] = '\0';
			code = vmm_attach_parse(p + 4, len, nfds, &m, err,
			    sizeof(err));
			if (code != 0) {
				FUZZ_CHECK(m == NULL);
				FUZZ_CHECK(code == 3 || code == 9);
				FUZZ_CHECK_ERR(err, sizeof(err));
				break;
			}
			FUZZ_CHECK(m != NULL && m->body_case ==
			    PCD__VMM_MESSAGE__BODY_ATTACH && m->attach != NULL);
			check_accepted(m->attach, nfds);
			round_trip(m, nfds);
			pcd__vmm_message__free_unpacked(m, NULL);
			first = 0;
			cap = VMM_FRAME_MAX;
		} else {
			Pcd__VmmMessage *m;

			m = (Pcd__VmmMessage *)pbcheck_unpack(
			    &pcd__vmm_message__descriptor, len, p + 4);
			if (m == NULL)
				break;
			if (m->body_case == PCD__VMM_MESSAGE__BODY_PAUSED)
				FUZZ_CHECK(m->paused->device_state.len <= len);
			if (m->body_case == PCD__VMM_MESSAGE__BODY_DETACH)
				FUZZ_CHECK(m->detach->reason != NULL);
			pcd__vmm_message__free_unpacked(m, NULL);
		}
		p += 4 + (size_t)len;
	}
	return 0;
}
