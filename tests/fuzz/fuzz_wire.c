/* fuzz_wire.c - the wire protocol decoders (daemon/wire.c), which read
 * bytes from the peer daemon: a 24-byte frame header, then for message
 * frames the protobuf body, and for Hello the semantic checks. A header the
 * decoder accepts must satisfy every bound the receiver relies on before it
 * writes guest memory. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct wire_limits lim = { .npages = 16384, .page_size = 4096 };
	struct wire_hdr h;
	ProtobufCMessage *m = NULL;
	char err[256];

	if (size < WIRE_HDR_LEN)
		return 0;
	if (wire_hdr_decode(data, &lim, &h, err, sizeof(err)) == 0) {
		if (h.type == WIRE_PAGES &&
		    (h.count == 0 || h.count > WIRE_MAX_BATCH ||
		    h.index >= lim.npages || h.index + h.count > lim.npages ||
		    h.length != (uint64_t)h.count * lim.page_size))
			__builtin_trap();
		if (h.type == WIRE_ZERO &&
		    (h.count == 0 || h.index + h.count > lim.npages ||
		    h.length != 0))
			__builtin_trap();
	}
	/* The body decoder on the rest, as every message type. */
	for (unsigned t = 1; t < WIRE_TYPE_MAX; t++) {
		if (wire_body_descriptor(t) == NULL)
			continue;
		if (wire_body_decode(t, data + WIRE_HDR_LEN, size - WIRE_HDR_LEN,
		    &m, err, sizeof(err)) == 0) {
			if (t == WIRE_HELLO)
				(void)wire_hello_check((Pcd__Wire__Hello *)m,
				    "vm1", 16384ull * 4096, 4096, err, sizeof(err));
			protobuf_c_message_free_unpacked(m, NULL);
		}
	}
	return 0;
}
