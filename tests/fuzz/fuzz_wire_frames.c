/* fuzz_wire_frames.c - a stream of daemon-to-daemon wire frames, read the
 * way a receiver reads them (chan_recv_hdr, then the page bytes or
 * chan_recv_msg and the message's semantic check).
 *
 * Input: 1 byte page-size shift (page size 16 << (b % 9)), 8 bytes guest
 * pages (little-endian, masked to 48 bits), then frames. The first frame is
 * decoded with handshake limits (no page frames), the rest with the guest's.
 * The Hello check expects migration "fuzz-mig" of npages * page_size bytes.
 * A guest of up to 1 MiB is backed by memory that page frames are copied
 * into, as the destination does, so ASan sees any write out of bounds.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "fuzz.h"
#include "wire.h"

#define FUZZ_MIG_ID	"fuzz-mig"
#define FUZZ_GUEST_MAX	(1u << 20)	/* bytes of guest memory simulated */

static void
check_hdr(const uint8_t *in, const struct wire_limits *lim,
    const struct wire_hdr *h)
{
	uint8_t again[WIRE_HDR_LEN];

	/* Accepted headers are canonical: encoding gives the same bytes. */
	wire_hdr_encode(again, h);
	FUZZ_CHECK(memcmp(again, in, WIRE_HDR_LEN) == 0);
	FUZZ_CHECK(h->type > 0 && h->type < WIRE_TYPE_MAX);
	FUZZ_CHECK(h->flags == 0);
	if (h->type == WIRE_PAGES || h->type == WIRE_ZERO) {
		FUZZ_CHECK(lim->npages > 0);
		FUZZ_CHECK(h->count >= 1);
		FUZZ_CHECK(h->count <= (h->type == WIRE_PAGES ? WIRE_MAX_BATCH :
		    WIRE_MAX_ZERO_RUN));
		FUZZ_CHECK(h->index < lim->npages);
		FUZZ_CHECK(h->index + h->count > h->index);
		FUZZ_CHECK(h->index + h->count <= lim->npages);
		if (h->type == WIRE_PAGES)
			FUZZ_CHECK(h->length ==
			    (uint64_t)h->count * lim->page_size);
		else
			FUZZ_CHECK(h->length == 0);
	} else {
		FUZZ_CHECK(h->index == 0 && h->count == 0);
		FUZZ_CHECK(h->length <= WIRE_MAX_DEVSTATE + 64);
		FUZZ_CHECK(wire_body_descriptor(h->type) != NULL);
	}
}

/* The message's semantic check, as source.c and dest.c run it. */
static void
check_msg(unsigned type, const ProtobufCMessage *m,
    const struct wire_limits *lim, uint64_t *next_digest)
{
	char err[200];
	int r;

	err[0] = '\0';
	switch (type) {
	case WIRE_HELLO: {
		const Pcd__Wire__Hello *h = (const Pcd__Wire__Hello *)m;

		r = wire_hello_check(h, FUZZ_MIG_ID, lim->npages * lim->page_size,
		    lim->page_size, err, sizeof(err));
		if (r == 0) {
			FUZZ_CHECK(h->version == WIRE_VERSION);
			FUZZ_CHECK(strcmp(h->migration_id, FUZZ_MIG_ID) == 0);
			FUZZ_CHECK(h->channel == PCD__WIRE__CHANNEL__CHANNEL_BULK ||
			    h->channel == PCD__WIRE__CHANNEL__CHANNEL_URGENT);
			FUZZ_CHECK(h->page_size == lim->page_size);
			FUZZ_CHECK(h->session_token.len == WIRE_TOKEN_LEN);
			/* Bulk channels: a count the destination can take, an
			 * index inside it, 0 on the urgent channel. */
			FUZZ_CHECK(wire_hello_bulk(h) >= 1 &&
			    wire_hello_bulk(h) <= WIRE_BULK_CHANNELS_MAX);
			FUZZ_CHECK(h->bulk_index < wire_hello_bulk(h));
			FUZZ_CHECK(h->channel ==
			    PCD__WIRE__CHANNEL__CHANNEL_BULK ||
			    h->bulk_index == 0);
		}
		break;
	}
	case WIRE_WELCOME: {
		const Pcd__Wire__Welcome *w = (const Pcd__Wire__Welcome *)m;

		r = wire_welcome_check(w, lim->npages, err, sizeof(err));
		if (r == 0) {
			FUZZ_CHECK(w->version == WIRE_VERSION);
			for (size_t i = 0; i < w->n_have; i++) {
				FUZZ_CHECK(w->have[i]->count > 0);
				FUZZ_CHECK(w->have[i]->first < lim->npages);
				FUZZ_CHECK(w->have[i]->first + w->have[i]->count
				    <= lim->npages);
				FUZZ_CHECK(w->have[i]->first + w->have[i]->count
				    > w->have[i]->first);
			}
		}
		break;
	}
	case WIRE_PAGE_REQUEST: {
		const Pcd__Wire__PageRequest *rq =
		    (const Pcd__Wire__PageRequest *)m;

		r = wire_page_request_check(rq, lim->npages, err, sizeof(err));
		if (r == 0) {
			FUZZ_CHECK(rq->count >= 1 && rq->count <= WIRE_MAX_REQUEST);
			FUZZ_CHECK(rq->index < lim->npages);
			FUZZ_CHECK(rq->index + rq->count <= lim->npages);
		}
		break;
	}
	case WIRE_DIGEST: {
		const Pcd__Wire__Digest *dg = (const Pcd__Wire__Digest *)m;

		/* wire_body_decode already bounds the hash count. */
		FUZZ_CHECK(dg->n_hash >= 1 && dg->n_hash <= WIRE_DIGEST_CHUNK);
		r = wire_digest_check(dg, *next_digest, lim->npages, err,
		    sizeof(err));
		if (r == 0) {
			FUZZ_CHECK(dg->first == *next_digest);
			*next_digest += dg->n_hash;
			FUZZ_CHECK(*next_digest <= lim->npages);
		}
		break;
	}
	case WIRE_STALE: {
		const Pcd__Wire__Stale *st = (const Pcd__Wire__Stale *)m;

		r = wire_stale_check(st, lim->npages, err, sizeof(err));
		if (r == 0) {
			FUZZ_CHECK(st->n_pages <= WIRE_STALE_CHUNK);
			for (size_t k = 0; k < st->n_pages; k++) {
				FUZZ_CHECK(st->pages[k]->count >= 1);
				FUZZ_CHECK(st->pages[k]->first < lim->npages);
				FUZZ_CHECK(st->pages[k]->count <=
				    lim->npages - st->pages[k]->first);
			}
		}
		break;
	}
	default:
		return;
	}
	if (r < 0)
		FUZZ_CHECK_ERR(err, sizeof(err));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wire_limits full, hs;
	const uint8_t *p = data, *end = data + size;
	uint64_t next_digest = 0;
	uint8_t *guest = NULL;
	bool first = true;

	if (size < 9)
		return 0;
	full.page_size = 16u << (p[0] % 9);
	full.npages = fuzz_le64(p + 1) & ((1ull << 48) - 1);
	hs.page_size = full.page_size;
	hs.npages = 0;
	p += 9;
	/* A small guest gets real memory. */
	if (full.npages > 0 && full.npages <= (FUZZ_GUEST_MAX >> 4) &&
	    full.npages * full.page_size <= FUZZ_GUEST_MAX)
		guest = malloc(full.npages * full.page_size);

	while ((size_t)(end - p) >= WIRE_HDR_LEN) {
		const struct wire_limits *lim = first ? &hs : &full;
		ProtobufCMessage *m = NULL;
		struct wire_hdr h;
		char err[200];
		int r;

		err[0] = '\0';
		r = wire_hdr_decode(p, lim, &h, err, sizeof(err));
		if (r < 0) {
			FUZZ_CHECK(r == -EPROTO);
			FUZZ_CHECK_ERR(err, sizeof(err));
			break;
		}
		check_hdr(p, lim, &h);
		p += WIRE_HDR_LEN;
		first = false;
		if ((size_t)(end - p) < h.length)
			break;		/* the stream ends inside the frame */
		if (h.type == WIRE_PAGES || h.type == WIRE_ZERO) {
			/* As the destination does: the bytes go to the guest
			 * at index * page_size (ASan checks the bounds). */
			if (guest != NULL) {
				uint64_t off = h.index * full.page_size;

				if (h.type == WIRE_PAGES)
					memcpy(guest + off, p, h.length);
				else
					memset(guest + off, 0,
					    (size_t)h.count * full.page_size);
			}
			p += h.length;
			continue;
		}
		err[0] = '\0';
		r = wire_body_decode(h.type, p, h.length, &m, err, sizeof(err));
		p += h.length;
		if (r < 0) {
			FUZZ_CHECK(m == NULL);
			FUZZ_CHECK_ERR(err, sizeof(err));
			break;
		}
		FUZZ_CHECK(m != NULL && m->descriptor ==
		    wire_body_descriptor(h.type));
		check_msg(h.type, m, &full, &next_digest);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	free(guest);
	return 0;
}
