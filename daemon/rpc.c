/* rpc.c - control RPC framing (see proto/README.md): the frame header,
 * packing, the method table of service pcd.Control and the server's
 * request decoder. The blocking client is rpc_client.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "control.pb-c.h"
#include "pbcheck.h"
#include "rpc.h"
#include "util.h"

int
rpc_hdr_decode(const uint8_t *buf, uint32_t max_frame, struct rpc_hdr *h)
{
	h->len = bytes_get_be32(buf);
	h->version = buf[4];
	h->kind = buf[5];
	h->flags = bytes_get_be16(buf + 6);
	h->call_id = bytes_get_be32(buf + 8);
	h->method = bytes_get_be16(buf + 12);
	h->reserved = bytes_get_be16(buf + 14);
	if (h->len > max_frame)
		return -EMSGSIZE;
	if (h->len < RPC_ENVELOPE_SIZE || h->version != RPC_VERSION)
		return -EPROTO;
	return 0;
}

void
rpc_hdr_encode(uint8_t *buf, const struct rpc_hdr *h)
{
	bytes_put_be32(buf, h->len);
	buf[4] = h->version;
	buf[5] = h->kind;
	bytes_put_be16(buf + 6, h->flags);
	bytes_put_be32(buf + 8, h->call_id);
	bytes_put_be16(buf + 12, h->method);
	bytes_put_be16(buf + 14, h->reserved);
}

int
rpc_frame_pack(uint8_t kind, uint16_t flags, uint32_t call_id,
    uint16_t method, const ProtobufCMessage *msg, uint8_t **out,
    size_t *outlen)
{
	struct rpc_hdr h = { .version = RPC_VERSION, .kind = kind,
	    .flags = flags, .call_id = call_id, .method = method };
	size_t n = msg != NULL ? protobuf_c_message_get_packed_size(msg) : 0;
	uint8_t *buf;

	if (n > RPC_MAX_FRAME_LIMIT - RPC_ENVELOPE_SIZE)
		return -EMSGSIZE;
	if ((buf = malloc(RPC_HDR_SIZE + n)) == NULL)
		return -ENOMEM;
	h.len = (uint32_t)(RPC_ENVELOPE_SIZE + n);
	rpc_hdr_encode(buf, &h);
	if (n > 0 && protobuf_c_message_pack(msg, buf + RPC_HDR_SIZE) != n) {
		free(buf);
		return -EINVAL;
	}
	*out = buf;
	*outlen = RPC_HDR_SIZE + n;
	return 0;
}

const ProtobufCServiceDescriptor *
rpc_service(void)
{
	return &pcd__control__descriptor;
}

const ProtobufCMethodDescriptor *
rpc_method_get(unsigned index)
{
	if (index >= pcd__control__descriptor.n_methods)
		return NULL;
	return &pcd__control__descriptor.methods[index];
}

int
rpc_method_index(const char *name)
{
	const ProtobufCMethodDescriptor *m;

	m = protobuf_c_service_descriptor_get_method_by_name(
	    &pcd__control__descriptor, name);
	if (m == NULL)
		return -1;
	return (int)(m - pcd__control__descriptor.methods);
}

bool
rpc_method_streams(unsigned index)
{
	return index == RPC_M_WATCH;
}

uint32_t
rpc_request_decode(const struct rpc_hdr *h, const uint8_t *p, size_t n,
    ProtobufCMessage **req, char *err, size_t errlen)
{
	const ProtobufCMethodDescriptor *m;
	char why[160];

	*req = NULL;
	if (h->kind != RPC_REQUEST || h->reserved != 0) {
		str_printf(err, errlen, "frame kind %u / reserved %u: only requests "
		    "(kind 1, reserved 0) are accepted", h->kind, h->reserved);
		return STATUS_INVALID_ARGUMENT;
	}
	if ((m = rpc_method_get(h->method)) == NULL) {
		str_printf(err, errlen, "unknown method index %u (service "
		    "pcd.Control has %u)", h->method, rpc_service()->n_methods);
		return STATUS_UNIMPLEMENTED;
	}
	if ((*req = pbcheck_unpack_why(m->input, n, p, why,
	    sizeof(why))) == NULL) {
		str_printf(err, errlen, "%s: payload of %zu bytes is not a valid "
		    "%s (%s)", m->name, n, m->input->name, why);
		return STATUS_INVALID_ARGUMENT;
	}
	return STATUS_OK;
}
