/* rpc.h - the control RPC framing (proto/README.md), shared by the server
 * (ctl.c) and the client (rpc_client.h): frame header encode/decode, packing
 * a message into a frame, method lookup in service pcd.Control.
 */
#ifndef PCD_RPC_H
#define PCD_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "status.h"

#define RPC_VERSION		1
#define RPC_HDR_SIZE		16	/* length field + 12-byte envelope */
#define RPC_ENVELOPE_SIZE	12
#define RPC_MAX_FRAME_DEFAULT	(1u << 20)
#define RPC_MAX_FRAME_LIMIT	(16u << 20)
#define CONTROL_PROTOCOL	1	/* reported by Version */

enum rpc_kind { RPC_REQUEST = 1, RPC_REPLY = 2, RPC_EVENT = 3, RPC_ERROR = 4 };
#define RPC_F_END_STREAM	0x0001

/* Method indices in service pcd.Control (the .proto order). */
enum rpc_method {
	RPC_M_PREPARE = 0, RPC_M_MIGRATE, RPC_M_STATUS, RPC_M_CANCEL,
	RPC_M_WATCH, RPC_M_SET_BANDWIDTH, RPC_M_VERSION, RPC_M_CHECK_KERNEL,
	RPC_M_RESUME, RPC_M_START_POSTCOPY,
};

struct rpc_hdr {
	uint32_t	len;		/* bytes after the length field */
	uint8_t		version;
	uint8_t		kind;
	uint16_t	flags;
	uint32_t	call_id;
	uint16_t	method;
	uint16_t	reserved;
};

static inline size_t
rpc_payload_len(const struct rpc_hdr *h)
{
	return h->len - RPC_ENVELOPE_SIZE;
}

/* Decodes the first RPC_HDR_SIZE bytes of buf. 0, -EMSGSIZE when the length
 * exceeds max_frame, -EPROTO when the length is below the envelope or the
 * version is not ours. Kind/reserved are left to the caller to judge. */
int rpc_hdr_decode(const uint8_t *buf, uint32_t max_frame, struct rpc_hdr *h);
void rpc_hdr_encode(uint8_t *buf, const struct rpc_hdr *h);

/* Packs header + msg (NULL: empty payload) into a malloc'd frame. */
int rpc_frame_pack(uint8_t kind, uint16_t flags, uint32_t call_id,
    uint16_t method, const ProtobufCMessage *msg, uint8_t **out,
    size_t *outlen);

/* Methods of service pcd.Control. */
const ProtobufCServiceDescriptor *rpc_service(void);
const ProtobufCMethodDescriptor *rpc_method_get(unsigned index);
int rpc_method_index(const char *name);		/* -1 if unknown */
bool rpc_method_streams(unsigned index);

/* The server's pure decoding step (also what tests/fuzz calls; the
 * client's is rpc_answer_decode in rpc_client.h); h is a header
 * rpc_hdr_decode accepted, p/n its payload.
 *
 * rpc_request_decode: a request (kind 1, reserved 0) for a known
 * method whose payload is that method's input message. 0 and *req (free
 * with protobuf_c_message_free_unpacked), or a status code (status.h) with err naming
 * the problem and *req NULL. */
uint32_t rpc_request_decode(const struct rpc_hdr *h, const uint8_t *p,
    size_t n, ProtobufCMessage **req, char *err, size_t errlen);

#endif
