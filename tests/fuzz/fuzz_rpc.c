/* fuzz_rpc.c - the control RPC framing as the server and the client read
 * it: a byte stream cut into frames by rpc_hdr_decode (with the server's
 * default cap), each payload unpacked with the method's input descriptor
 * (server) and output descriptor (client), written out as JSON. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common.pb-c.h"
#include "pbjson.h"
#include "rpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE *sink;

static void
try_unpack(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n)
{
	ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, n, p);

	if (m == NULL)
		return;
	pbjson_write(sink, m);
	protobuf_c_message_free_unpacked(m, NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rpc_hdr h;

	if (sink == NULL && (sink = fopen("/dev/null", "w")) == NULL)
		return 0;
	while (size >= RPC_HDR_SIZE) {
		const ProtobufCMethodDescriptor *m;
		size_t n;

		if (rpc_hdr_decode(data, RPC_MAX_FRAME_DEFAULT, &h) < 0)
			break;
		n = rpc_payload_len(&h);
		if (size - RPC_HDR_SIZE < n)
			break;
		if ((m = rpc_method_get(h.method)) != NULL) {
			try_unpack(m->input, data + RPC_HDR_SIZE, n);
			try_unpack(m->output, data + RPC_HDR_SIZE, n);
		}
		try_unpack(&pcd__status__descriptor, data + RPC_HDR_SIZE, n);
		data += RPC_HDR_SIZE + n;
		size -= RPC_HDR_SIZE + n;
	}
	return 0;
}
