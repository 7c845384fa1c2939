/* fuzz_wire_msg.c - one wire message body, decoded and checked as the
 * daemon does on a peer's frame (wire_body_decode, then the check for its
 * type), then re-encoded: an accepted message must survive a round trip.
 *
 * Input: 1 byte frame type (mod WIRE_TYPE_MAX), 8 bytes guest pages
 * (little-endian, masked to 40 bits, page size 4096), then the body. The
 * Hello check expects migration "fuzz-mig" of npages * 4096 bytes.
 */
#include <errno.h>
#include <stdlib.h>

#include "fuzz.h"
#include "wire.h"

#define FUZZ_MIG_ID	"fuzz-mig"
#define FUZZ_PS		4096u

static int
semantic(unsigned type, const ProtobufCMessage *m, uint64_t npages,
    char *err, size_t errlen)
{
	switch (type) {
	case WIRE_HELLO:
		return wire_hello_check((const Pcd__Wire__Hello *)m, FUZZ_MIG_ID,
		    npages * FUZZ_PS, FUZZ_PS, err, errlen);
	case WIRE_WELCOME:
		return wire_welcome_check((const Pcd__Wire__Welcome *)m, npages,
		    err, errlen);
	case WIRE_PAGE_REQUEST:
		return wire_page_request_check(
		    (const Pcd__Wire__PageRequest *)m, npages, err, errlen);
	case WIRE_DIGEST:
		/* The first digest frame of a stream. */
		return wire_digest_check((const Pcd__Wire__Digest *)m, 0,
		    npages, err, errlen);
	case WIRE_STALE:
		return wire_stale_check((const Pcd__Wire__Stale *)m, npages,
		    err, errlen);
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ProtobufCMessage *m = NULL, *m2;
	uint8_t *packed, *packed2;
	size_t plen;
	uint64_t npages;
	unsigned type;
	char err[200];
	int r, r2;

	if (size < 9)
		return 0;
	type = data[0] % WIRE_TYPE_MAX;
	npages = fuzz_le64(data + 1) & ((1ull << 40) - 1);
	data += 9;
	size -= 9;

	err[0] = '\0';
	r = wire_body_decode(type, data, size, &m, err, sizeof(err));
	if (r < 0) {
		FUZZ_CHECK(r == -EPROTO && m == NULL);
		FUZZ_CHECK_ERR(err, sizeof(err));
		/* PAGES/ZERO and unknown types never carry a message. */
		return 0;
	}
	FUZZ_CHECK(wire_body_descriptor(type) != NULL);
	FUZZ_CHECK(m->descriptor == wire_body_descriptor(type));
	err[0] = '\0';
	r = semantic(type, m, npages, err, sizeof(err));
	if (r < 0)
		FUZZ_CHECK_ERR(err, sizeof(err));

	/* Round trip: what we would send back decodes to the same verdict. */
	plen = protobuf_c_message_get_packed_size(m);
	packed = malloc(plen ? plen : 1);
	FUZZ_CHECK(packed != NULL);
	FUZZ_CHECK(protobuf_c_message_pack(m, packed) == plen);
	m2 = NULL;
	if (plen <= size) {
		/* (A re-encoding can be longer than a non-canonical input, and
		 * then exceed the body cap; only compare when it cannot.) */
		FUZZ_CHECK(wire_body_decode(type, packed, plen, &m2, err,
		    sizeof(err)) == 0);
		r2 = semantic(type, m2, npages, err, sizeof(err));
		FUZZ_CHECK((r < 0) == (r2 < 0));
		packed2 = malloc(plen ? plen : 1);
		FUZZ_CHECK(packed2 != NULL);
		FUZZ_CHECK(protobuf_c_message_get_packed_size(m2) == plen);
		protobuf_c_message_pack(m2, packed2);
		FUZZ_CHECK(memcmp(packed, packed2, plen) == 0);
		free(packed2);
		protobuf_c_message_free_unpacked(m2, NULL);
	}
	free(packed);
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}
