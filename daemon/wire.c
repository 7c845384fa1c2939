/* wire.c - see wire.h. */
#include "wire.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "bytes.h"
#include "migration.h"
#include "pbcheck.h"

/* Largest body each message type may claim; a peer claiming more is refused
 * before anything is allocated. */
static const uint32_t wire_body_cap[WIRE_TYPE_MAX] = {
	[WIRE_HELLO]		= 4096,
	[WIRE_WELCOME]		= 1u << 20,
	[WIRE_PAGE_REQUEST]	= 64,
	[WIRE_SWITCHOVER]	= WIRE_MAX_DEVSTATE + 64,
	[WIRE_DIGEST]		= WIRE_DIGEST_CHUNK * 9 + 64,
	[WIRE_COMPLETE]		= 4096,
	[WIRE_ERROR]		= 4096,
	[WIRE_PING]		= 64,
	[WIRE_PRECOPY]		= 64,
	[WIRE_STALE]		= WIRE_STALE_CHUNK * 24 + 64,
};

const char *
wire_type_name(unsigned type)
{
	static const char *const names[WIRE_TYPE_MAX] = {
		[WIRE_HELLO] = "HELLO", [WIRE_WELCOME] = "WELCOME",
		[WIRE_PAGES] = "PAGES", [WIRE_ZERO] = "ZERO",
		[WIRE_PAGE_REQUEST] = "PAGE_REQUEST",
		[WIRE_SWITCHOVER] = "SWITCHOVER", [WIRE_DIGEST] = "DIGEST",
		[WIRE_COMPLETE] = "COMPLETE", [WIRE_ERROR] = "ERROR",
		[WIRE_PING] = "PING", [WIRE_PRECOPY] = "PRECOPY",
		[WIRE_STALE] = "STALE",
	};
	if (type == 0 || type >= WIRE_TYPE_MAX)
		return "unknown";
	return names[type];
}

void
wire_hdr_encode(uint8_t out[WIRE_HDR_LEN], const struct wire_hdr *h)
{
	bytes_put_le16(out, WIRE_MAGIC);
	out[2] = h->type;
	out[3] = h->flags;
	bytes_put_le32(out + 4, h->length);
	bytes_put_le64(out + 8, h->index);
	bytes_put_le32(out + 16, h->count);
	bytes_put_le32(out + 20, 0);
}

int
wire_hdr_decode(const uint8_t in[WIRE_HDR_LEN], const struct wire_limits *lim,
    struct wire_hdr *h, char *err, size_t errlen)
{
	uint16_t magic = bytes_get_le16(in);
	uint32_t reserved = bytes_get_le32(in + 20);

	h->type = in[2];
	h->flags = in[3];
	h->length = bytes_get_le32(in + 4);
	h->index = bytes_get_le64(in + 8);
	h->count = bytes_get_le32(in + 16);

	if (magic != WIRE_MAGIC) {
		snprintf(err, errlen, "bad frame magic 0x%04x (want 0x%04x): "
		    "not a postcopyd peer or stream out of sync", magic, WIRE_MAGIC);
		return -EPROTO;
	}
	if (h->type == 0 || h->type >= WIRE_TYPE_MAX) {
		snprintf(err, errlen, "unknown frame type %u", h->type);
		return -EPROTO;
	}
	if (h->flags != 0 || reserved != 0) {
		snprintf(err, errlen, "%s frame: flags 0x%x / reserved 0x%x must "
		    "be 0 in protocol version %d", wire_type_name(h->type),
		    h->flags, reserved, WIRE_VERSION);
		return -EPROTO;
	}
	if (h->type == WIRE_PAGES || h->type == WIRE_ZERO) {
		uint32_t maxc = h->type == WIRE_PAGES ? WIRE_MAX_BATCH :
		    WIRE_MAX_ZERO_RUN;
		uint64_t want;

		if (lim->npages == 0) {
			snprintf(err, errlen, "%s frame before the handshake "
			    "finished", wire_type_name(h->type));
			return -EPROTO;
		}
		if (h->count == 0 || h->count > maxc) {
			snprintf(err, errlen, "%s frame: page count %" PRIu32
			    " out of range 1..%" PRIu32, wire_type_name(h->type),
			    h->count, maxc);
			return -EPROTO;
		}
		if (h->index >= lim->npages || h->count > lim->npages - h->index) {
			snprintf(err, errlen, "%s frame: pages %" PRIu64 "+%"
			    PRIu32 " beyond the guest (%" PRIu64 " pages)",
			    wire_type_name(h->type), h->index, h->count,
			    lim->npages);
			return -EPROTO;
		}
		want = h->type == WIRE_PAGES ?
		    (uint64_t)h->count * lim->page_size : 0;
		if (h->length != want) {
			snprintf(err, errlen, "%s frame: length %" PRIu32
			    " does not match %" PRIu32 " pages (want %" PRIu64
			    " bytes)", wire_type_name(h->type), h->length,
			    h->count, want);
			return -EPROTO;
		}
		return 0;
	}
	if (h->index != 0 || h->count != 0) {
		snprintf(err, errlen, "%s frame: index/count must be 0",
		    wire_type_name(h->type));
		return -EPROTO;
	}
	if (h->length > wire_body_cap[h->type]) {
		snprintf(err, errlen, "%s frame: body of %" PRIu32 " bytes "
		    "exceeds the limit of %" PRIu32, wire_type_name(h->type),
		    h->length, wire_body_cap[h->type]);
		return -EPROTO;
	}
	return 0;
}

const ProtobufCMessageDescriptor *
wire_body_descriptor(unsigned type)
{
	switch (type) {
	case WIRE_HELLO:	return &pcd__wire__hello__descriptor;
	case WIRE_WELCOME:	return &pcd__wire__welcome__descriptor;
	case WIRE_PAGE_REQUEST:	return &pcd__wire__page_request__descriptor;
	case WIRE_SWITCHOVER:	return &pcd__wire__switchover__descriptor;
	case WIRE_DIGEST:	return &pcd__wire__digest__descriptor;
	case WIRE_COMPLETE:	return &pcd__wire__complete__descriptor;
	case WIRE_ERROR:	return &pcd__wire__error__descriptor;
	case WIRE_PING:		return &pcd__wire__ping__descriptor;
	case WIRE_PRECOPY:	return &pcd__wire__precopy__descriptor;
	case WIRE_STALE:	return &pcd__wire__stale__descriptor;
	default:		return NULL;
	}
}

int
wire_body_decode(unsigned type, const uint8_t *buf, size_t len,
    ProtobufCMessage **out, char *err, size_t errlen)
{
	const ProtobufCMessageDescriptor *d = wire_body_descriptor(type);
	ProtobufCMessage *m;
	char why[160];

	*out = NULL;
	if (d == NULL) {
		snprintf(err, errlen, "frame type %u carries no message", type);
		return -EPROTO;
	}
	if (len > wire_body_cap[type]) {
		snprintf(err, errlen, "%s body of %zu bytes exceeds the limit",
		    wire_type_name(type), len);
		return -EPROTO;
	}
	m = pbcheck_unpack_why(d, len, buf, why, sizeof(why));
	if (m == NULL) {
		snprintf(err, errlen, "%s frame: malformed protobuf body "
		    "(%zu bytes: %s)", wire_type_name(type), len, why);
		return -EPROTO;
	}
	if (type == WIRE_DIGEST) {
		const Pcd__Wire__Digest *dg = (const Pcd__Wire__Digest *)m;

		if (dg->n_hash == 0 || dg->n_hash > WIRE_DIGEST_CHUNK) {
			snprintf(err, errlen, "DIGEST frame: %zu hashes (want "
			    "1..%d)", dg->n_hash, WIRE_DIGEST_CHUNK);
			protobuf_c_message_free_unpacked(m, NULL);
			return -EPROTO;
		}
	}
	*out = m;
	return 0;
}

int
wire_hello_check(const Pcd__Wire__Hello *h, const char *id,
    uint64_t guest_size, uint32_t page_size, char *err, size_t errlen)
{
	if (h->version != WIRE_VERSION) {
		snprintf(err, errlen, "peer speaks wire protocol version %" PRIu32
		    ", this daemon speaks version %d", h->version, WIRE_VERSION);
		return -EPROTONOSUPPORT;
	}
	if (h->channel != PCD__WIRE__CHANNEL__CHANNEL_BULK &&
	    h->channel != PCD__WIRE__CHANNEL__CHANNEL_URGENT) {
		snprintf(err, errlen, "Hello names unknown channel kind %d",
		    (int)h->channel);
		return -EPROTO;
	}
	if (mig_id_check(h->migration_id, "Hello", err, errlen) < 0)
		return -EPROTO;
	if (wire_hello_bulk(h) > WIRE_BULK_CHANNELS_MAX) {
		snprintf(err, errlen, "Hello asks for %" PRIu32 " bulk channels; "
		    "this daemon takes at most %d", h->bulk_channels,
		    WIRE_BULK_CHANNELS_MAX);
		return -EPROTO;
	}
	if (h->bulk_index >= wire_hello_bulk(h) ||
	    (h->channel == PCD__WIRE__CHANNEL__CHANNEL_URGENT &&
	    h->bulk_index != 0)) {
		snprintf(err, errlen, "Hello names bulk channel %" PRIu32 " of %"
		    PRIu32 " on the %s channel", h->bulk_index,
		    wire_hello_bulk(h), h->channel ==
		    PCD__WIRE__CHANNEL__CHANNEL_URGENT ? "urgent" : "bulk");
		return -EPROTO;
	}
	if (strcmp(h->migration_id, id) != 0) {
		snprintf(err, errlen, "Hello for migration '%s', this "
		    "listener serves '%s'", h->migration_id, id);
		return -EPROTO;
	}
	if (h->session_token.len != WIRE_TOKEN_LEN) {
		snprintf(err, errlen, "Hello carries a session token of %zu "
		    "bytes, not %d (a source older than this destination?)",
		    h->session_token.len, WIRE_TOKEN_LEN);
		return -EPROTO;
	}
	if (h->page_size != page_size) {
		snprintf(err, errlen, "page size mismatch: source %" PRIu32
		    ", destination %" PRIu32, h->page_size, page_size);
		return -EPROTO;
	}
	if (h->guest_size != guest_size) {
		snprintf(err, errlen, "guest size mismatch: source %" PRIu64
		    " bytes, destination %" PRIu64 " bytes", h->guest_size,
		    guest_size);
		return -EPROTO;
	}
	return 0;
}

uint32_t
wire_hello_bulk(const Pcd__Wire__Hello *h)
{
	return h->bulk_channels == 0 ? 1 : h->bulk_channels;
}

int
wire_welcome_check(const Pcd__Wire__Welcome *w, uint64_t npages, char *err,
    size_t errlen)
{
	if (w->status != NULL && w->status->code != 0) {
		snprintf(err, errlen, "%.300s (status %" PRIu32 ")",
		    w->status->message && w->status->message[0] ?
		    w->status->message : "no reason given", w->status->code);
		return -ECONNREFUSED;
	}
	if (w->version != WIRE_VERSION) {
		snprintf(err, errlen, "peer speaks wire protocol version %" PRIu32
		    ", this daemon speaks version %d", w->version, WIRE_VERSION);
		return -EPROTONOSUPPORT;
	}
	for (size_t i = 0; i < w->n_have; i++) {
		const Pcd__Wire__PageRange *pr = w->have[i];

		if (pr == NULL || pr->count == 0 || pr->first >= npages ||
		    pr->count > npages - pr->first) {
			snprintf(err, errlen, "WELCOME: held pages %" PRIu64 "+%"
			    PRIu64 " outside the guest (%" PRIu64 " pages)",
			    pr ? pr->first : 0, pr ? pr->count : 0, npages);
			return -EPROTO;
		}
	}
	return 0;
}

int
wire_page_request_check(const Pcd__Wire__PageRequest *rq, uint64_t npages,
    char *err, size_t errlen)
{
	if (rq->count == 0 || rq->count > WIRE_MAX_REQUEST ||
	    rq->index >= npages || rq->count > npages - rq->index) {
		snprintf(err, errlen, "PageRequest for pages %" PRIu64 "+%"
		    PRIu32 " outside the guest (%" PRIu64 " pages) or over %d "
		    "pages", rq->index, rq->count, npages, WIRE_MAX_REQUEST);
		return -EPROTO;
	}
	return 0;
}

int
wire_stale_check(const Pcd__Wire__Stale *st, uint64_t npages, char *err,
    size_t errlen)
{
	if (st->n_pages > WIRE_STALE_CHUNK) {
		snprintf(err, errlen, "STALE frame: %zu ranges (at most %d)",
		    st->n_pages, WIRE_STALE_CHUNK);
		return -EPROTO;
	}
	for (size_t i = 0; i < st->n_pages; i++) {
		const Pcd__Wire__PageRange *pr = st->pages[i];

		if (pr == NULL || pr->count == 0 || pr->first >= npages ||
		    pr->count > npages - pr->first) {
			snprintf(err, errlen, "STALE: pages %" PRIu64 "+%"
			    PRIu64 " outside the guest (%" PRIu64 " pages)",
			    pr ? pr->first : 0, pr ? pr->count : 0, npages);
			return -EPROTO;
		}
	}
	return 0;
}

int
wire_digest_check(const Pcd__Wire__Digest *dg, uint64_t next, uint64_t npages,
    char *err, size_t errlen)
{
	if (dg->first != next || next > npages ||
	    dg->n_hash > npages - next) {
		snprintf(err, errlen, "DIGEST for pages %" PRIu64 "+%zu, "
		    "expected page %" PRIu64 " of %" PRIu64, dg->first,
		    dg->n_hash, next, npages);
		return -EPROTO;
	}
	return 0;
}
