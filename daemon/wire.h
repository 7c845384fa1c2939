/* wire.h - the daemon-to-daemon wire protocol: frame header and bodies.
 *
 * Every frame starts with a fixed 24-byte little-endian header:
 *
 *   off size field
 *     0    2 magic    0x5043 ("PC" read as a little-endian u16)
 *     2    1 type     enum wire_type
 *     3    1 flags    must be 0 in version 1
 *     4    4 length   bytes that follow the header
 *     8    8 index    first page (PAGES, ZERO), else 0
 *    16    4 count    pages (PAGES, ZERO), else 0
 *    20    4 reserved must be 0
 *
 * PAGES is followed by count * page_size raw page bytes (so a receiver reads
 * them straight into guest memory); ZERO carries no bytes (count all-zero
 * pages); every other type is followed by one protobuf message from
 * proto/wire.proto. The decoders here take raw bytes and validate everything
 * (they are what the fuzz targets call); nothing reaches guest memory before
 * wire_hdr_decode accepted its header.
 */
#ifndef PCD_WIRE_H
#define PCD_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "wire.pb-c.h"

#define WIRE_VERSION		1
#define WIRE_TOKEN_LEN		16	/* Hello.session_token, bytes */
#define WIRE_MAGIC		0x5043u
#define WIRE_HDR_LEN		24
#define WIRE_MAX_BATCH		64		/* pages per PAGES frame */
#define WIRE_MAX_ZERO_RUN	(1u << 20)	/* pages per ZERO frame */
#define WIRE_MAX_REQUEST	64		/* pages per PageRequest */
#define WIRE_DIGEST_CHUNK	4096		/* hashes per Digest frame */
#define WIRE_MAX_PAGE_SIZE	(64u << 10)
#define WIRE_MAX_DEVSTATE	(64u << 20)	/* Switchover body cap */
#define WIRE_STALE_CHUNK	16384		/* ranges per Stale frame */
#define WIRE_BULK_CHANNELS_MAX	16		/* Hello.bulk_channels cap */

enum wire_type {
	WIRE_HELLO = 1,
	WIRE_WELCOME,
	WIRE_PAGES,
	WIRE_ZERO,
	WIRE_PAGE_REQUEST,
	WIRE_SWITCHOVER,
	WIRE_DIGEST,
	WIRE_COMPLETE,
	WIRE_ERROR,
	WIRE_PING,
	WIRE_PRECOPY,		/* bulk: a precopy round begins */
	WIRE_STALE,		/* bulk: pages stale at the destination */
	WIRE_TYPE_MAX,
};

struct wire_hdr {
	uint8_t		type;
	uint8_t		flags;
	uint32_t	length;
	uint64_t	index;
	uint32_t	count;
};

/* What the receiver knows about the guest; npages 0 = no page frames allowed
 * (during the handshake). */
struct wire_limits {
	uint64_t	npages;
	uint32_t	page_size;
};

const char *wire_type_name(unsigned type);

void wire_hdr_encode(uint8_t out[WIRE_HDR_LEN], const struct wire_hdr *h);
/* 0, or -EPROTO with err naming the bad field. */
int wire_hdr_decode(const uint8_t in[WIRE_HDR_LEN], const struct wire_limits *lim,
    struct wire_hdr *h, char *err, size_t errlen);

/* The protobuf descriptor of a message frame's body, NULL for PAGES/ZERO. */
const ProtobufCMessageDescriptor *wire_body_descriptor(unsigned type);
/* Unpacks a message body of the given type; *out is freed with
 * protobuf_c_message_free_unpacked(*out, NULL). 0 or -EPROTO. */
int wire_body_decode(unsigned type, const uint8_t *buf, size_t len,
    ProtobufCMessage **out, char *err, size_t errlen);

/* Semantic checks on a decoded Hello against what this side expects
 * (migration id, guest size, page size, the bulk channel count and index
 * in range: see wire_hello_bulk). 0, or -EPROTO/-EPROTONOSUPPORT with
 * a message naming both values. */
int wire_hello_check(const Pcd__Wire__Hello *h, const char *id,
    uint64_t guest_size, uint32_t page_size, char *err, size_t errlen);
/* The number of bulk channels an accepted Hello announces (1 ..
 * WIRE_BULK_CHANNELS_MAX; 0 on the wire means 1). */
uint32_t wire_hello_bulk(const Pcd__Wire__Hello *h);

/* Semantic checks on the other decoded messages, against the receiver's
 * guest of npages pages. Each returns 0, or -EPROTO (Welcome: also
 * -EPROTONOSUPPORT for another version, -ECONNREFUSED when the destination
 * refused, its message in err) with err naming the bad field. */
int wire_welcome_check(const Pcd__Wire__Welcome *w, uint64_t npages,
    char *err, size_t errlen);
int wire_page_request_check(const Pcd__Wire__PageRequest *rq, uint64_t npages,
    char *err, size_t errlen);
/* Every range inside the guest and not empty. */
int wire_stale_check(const Pcd__Wire__Stale *st, uint64_t npages, char *err,
    size_t errlen);
/* next: the first page whose hash has not arrived yet (digests come in
 * order). */
int wire_digest_check(const Pcd__Wire__Digest *dg, uint64_t next,
    uint64_t npages, char *err, size_t errlen);

#endif
