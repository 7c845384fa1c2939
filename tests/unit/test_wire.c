/* test_wire.c - the wire frame header and body decoders refuse every bad
 * field a peer could send, and accept well-formed frames. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "wire.h"

static const struct wire_limits lim = { .npages = 1000, .page_size = 4096 };

static int
decode(const struct wire_hdr *in, struct wire_hdr *out, char *err, size_t len)
{
	uint8_t buf[WIRE_HDR_LEN];

	wire_hdr_encode(buf, in);
	return wire_hdr_decode(buf, &lim, out, err, len);
}

static void
test_roundtrip(void **state)
{
	struct wire_hdr h = { .type = WIRE_PAGES, .index = 998, .count = 2,
	    .length = 2 * 4096 }, o;
	char err[200];

	assert_int_equal(decode(&h, &o, err, sizeof(err)), 0);
	assert_int_equal(o.type, WIRE_PAGES);
	assert_int_equal(o.index, 998);
	assert_int_equal(o.count, 2);
	assert_int_equal(o.length, 8192);
	h = (struct wire_hdr){ .type = WIRE_ZERO, .index = 0, .count = 1000 };
	assert_int_equal(decode(&h, &o, err, sizeof(err)), 0);
	h = (struct wire_hdr){ .type = WIRE_PAGE_REQUEST, .length = 10 };
	assert_int_equal(decode(&h, &o, err, sizeof(err)), 0);
}

static void
test_bad_fields(void **state)
{
	struct wire_hdr o;
	char err[200];
	struct {
		struct wire_hdr h;
		const char *want;
	} cases[] = {
		{ { .type = WIRE_PAGES, .index = 1000, .count = 1, .length = 4096 },
		  "beyond the guest" },
		{ { .type = WIRE_PAGES, .index = 999, .count = 2, .length = 8192 },
		  "beyond the guest" },
		{ { .type = WIRE_PAGES, .index = UINT64_MAX, .count = 1, .length = 4096 },
		  "beyond the guest" },
		{ { .type = WIRE_PAGES, .index = 0, .count = 1, .length = 4095 },
		  "does not match" },
		{ { .type = WIRE_PAGES, .index = 0, .count = 0, .length = 0 },
		  "out of range" },
		{ { .type = WIRE_PAGES, .index = 0, .count = WIRE_MAX_BATCH + 1,
		    .length = (WIRE_MAX_BATCH + 1) * 4096 }, "out of range" },
		{ { .type = WIRE_ZERO, .index = 0, .count = 1, .length = 1 },
		  "does not match" },
		{ { .type = 0 }, "unknown frame type" },
		{ { .type = WIRE_TYPE_MAX }, "unknown frame type" },
		{ { .type = 200 }, "unknown frame type" },
		{ { .type = WIRE_HELLO, .flags = 1 }, "must be 0" },
		{ { .type = WIRE_HELLO, .length = 1u << 20 }, "exceeds the limit" },
		{ { .type = WIRE_SWITCHOVER, .length = UINT32_MAX }, "exceeds the limit" },
		{ { .type = WIRE_COMPLETE, .index = 1 }, "must be 0" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		assert_int_equal(decode(&cases[i].h, &o, err, sizeof(err)), -EPROTO);
		if (strstr(err, cases[i].want) == NULL)
			fail_msg("case %zu: '%s' lacks '%s'", i, err, cases[i].want);
	}
}

static void
test_bad_magic_and_reserved(void **state)
{
	struct wire_hdr h = { .type = WIRE_PING, .length = 2 }, o;
	uint8_t buf[WIRE_HDR_LEN];
	char err[200];

	wire_hdr_encode(buf, &h);
	buf[0] ^= 0xff;
	assert_int_equal(wire_hdr_decode(buf, &lim, &o, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "magic"));
	wire_hdr_encode(buf, &h);
	buf[21] = 1;
	assert_int_equal(wire_hdr_decode(buf, &lim, &o, err, sizeof(err)), -EPROTO);
	/* No page frames before the handshake set the limits. */
	struct wire_limits none = { 0, 4096 };
	h = (struct wire_hdr){ .type = WIRE_ZERO, .count = 1 };
	wire_hdr_encode(buf, &h);
	assert_int_equal(wire_hdr_decode(buf, &none, &o, err, sizeof(err)), -EPROTO);
}

static void
test_bodies(void **state)
{
	Pcd__Wire__Hello h = PCD__WIRE__HELLO__INIT;
	ProtobufCMessage *m;
	uint8_t buf[256], junk[16];
	char err[200];
	size_t n;

	h.version = WIRE_VERSION;
	h.migration_id = (char *)"vm1";
	h.channel = PCD__WIRE__CHANNEL__CHANNEL_BULK;
	h.guest_size = 1000 * 4096;
	h.page_size = 4096;
	/* A Hello without its 16-byte session token is refused. */
	n = protobuf_c_message_pack(&h.base, buf);
	assert_int_equal(wire_body_decode(WIRE_HELLO, buf, n, &m, err,
	    sizeof(err)), 0);
	assert_int_equal(wire_hello_check((Pcd__Wire__Hello *)m, "vm1",
	    1000 * 4096, 4096, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "session token"));
	protobuf_c_message_free_unpacked(m, NULL);
	h.session_token.data = (uint8_t *)"0123456789abcdef";
	h.session_token.len = WIRE_TOKEN_LEN;
	n = protobuf_c_message_pack(&h.base, buf);
	assert_int_equal(wire_body_decode(WIRE_HELLO, buf, n, &m, err,
	    sizeof(err)), 0);
	assert_int_equal(wire_hello_check((Pcd__Wire__Hello *)m, "vm1",
	    1000 * 4096, 4096, err, sizeof(err)), 0);
	assert_int_equal(wire_hello_check((Pcd__Wire__Hello *)m, "vm2",
	    1000 * 4096, 4096, err, sizeof(err)), -EPROTO);
	assert_int_equal(wire_hello_check((Pcd__Wire__Hello *)m, "vm1",
	    999 * 4096, 4096, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "guest size mismatch"));
	protobuf_c_message_free_unpacked(m, NULL);

	h.version = 7;
	n = protobuf_c_message_pack(&h.base, buf);
	assert_int_equal(wire_body_decode(WIRE_HELLO, buf, n, &m, err,
	    sizeof(err)), 0);
	assert_int_equal(wire_hello_check((Pcd__Wire__Hello *)m, "vm1",
	    1000 * 4096, 4096, err, sizeof(err)), -EPROTONOSUPPORT);
	assert_non_null(strstr(err, "version 7"));
	assert_non_null(strstr(err, "version 1"));
	protobuf_c_message_free_unpacked(m, NULL);

	memset(junk, 0xff, sizeof(junk));
	assert_int_equal(wire_body_decode(WIRE_HELLO, junk, sizeof(junk), &m,
	    err, sizeof(err)), -EPROTO);
	assert_null(m);
	assert_int_equal(wire_body_decode(WIRE_PAGES, junk, 0, &m, err,
	    sizeof(err)), -EPROTO);
	/* A Digest must carry 1..WIRE_DIGEST_CHUNK hashes. */
	Pcd__Wire__Digest d = PCD__WIRE__DIGEST__INIT;
	n = protobuf_c_message_pack(&d.base, buf);
	assert_int_equal(wire_body_decode(WIRE_DIGEST, buf, n, &m, err,
	    sizeof(err)), -EPROTO);
}

/* Ids a peer cannot smuggle: protobuf-c would hand "a\0b" over as "a",
 * and lets invalid UTF-8 through. Both are refused at decode, and the
 * refusal names the field. A bad but decodable id is quoted, never copied
 * raw into the message. */
static void
test_hello_ids(void **state)
{
	/* Hello{version=1, migration_id=<id>, channel=BULK} by hand. */
	static const uint8_t nul[] = { 0x08, 0x01, 0x12, 0x03, 'a', 0x00,
	    'b', 0x18, 0x01 };
	static const uint8_t bad8[] = { 0x08, 0x01, 0x12, 0x02, 0xc3, 0x28,
	    0x18, 0x01 };
	static const uint8_t utf8[] = { 0x08, 0x01, 0x12, 0x02, 0xc3, 0xa9,
	    0x18, 0x01 };
	ProtobufCMessage *m;
	char err[300];

	assert_int_equal(wire_body_decode(WIRE_HELLO, nul, sizeof(nul), &m,
	    err, sizeof(err)), -EPROTO);
	assert_null(m);
	assert_non_null(strstr(err, "migration_id: contains a NUL byte"));
	assert_int_equal(wire_body_decode(WIRE_HELLO, bad8, sizeof(bad8), &m,
	    err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "migration_id: is not valid UTF-8"));
	/* Valid UTF-8, but not an id: refused by the check, quoted. */
	assert_int_equal(wire_body_decode(WIRE_HELLO, utf8, sizeof(utf8), &m,
	    err, sizeof(err)), 0);
	assert_int_equal(wire_hello_check((Pcd__Wire__Hello *)m, "vm1",
	    0, 4096, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "'\\xc3\\xa9'"));
	protobuf_c_message_free_unpacked(m, NULL);
}

/* Hello.bulk_channels / bulk_index: 0 reads as one channel; a count over
 * WIRE_BULK_CHANNELS_MAX, an index outside the count, and an index on the
 * urgent channel are refused, each with a message naming it. */
static int
hello_bulk(Pcd__Wire__Channel ch, uint32_t n, uint32_t idx, char *err,
    size_t errlen)
{
	Pcd__Wire__Hello h = PCD__WIRE__HELLO__INIT;
	ProtobufCMessage *m;
	uint8_t buf[256];
	size_t len;
	int r;

	h.version = WIRE_VERSION;
	h.migration_id = (char *)"vm1";
	h.channel = ch;
	h.guest_size = 1000 * 4096;
	h.page_size = 4096;
	h.session_token.data = (uint8_t *)"0123456789abcdef";
	h.session_token.len = WIRE_TOKEN_LEN;
	h.bulk_channels = n;
	h.bulk_index = idx;
	len = protobuf_c_message_pack(&h.base, buf);
	assert_int_equal(wire_body_decode(WIRE_HELLO, buf, len, &m, err,
	    errlen), 0);
	r = wire_hello_check((Pcd__Wire__Hello *)m, "vm1", 1000 * 4096, 4096,
	    err, errlen);
	if (r == 0)
		assert_int_equal(wire_hello_bulk((Pcd__Wire__Hello *)m),
		    n == 0 ? 1 : n);
	protobuf_c_message_free_unpacked(m, NULL);
	return r;
}

static void
test_hello_bulk(void **state)
{
	const Pcd__Wire__Channel B = PCD__WIRE__CHANNEL__CHANNEL_BULK,
	    U = PCD__WIRE__CHANNEL__CHANNEL_URGENT;
	char err[300];

	(void)state;
	assert_int_equal(hello_bulk(B, 0, 0, err, sizeof(err)), 0);
	assert_int_equal(hello_bulk(U, 0, 0, err, sizeof(err)), 0);
	assert_int_equal(hello_bulk(U, 4, 0, err, sizeof(err)), 0);
	assert_int_equal(hello_bulk(B, 4, 3, err, sizeof(err)), 0);
	assert_int_equal(hello_bulk(B, WIRE_BULK_CHANNELS_MAX,
	    WIRE_BULK_CHANNELS_MAX - 1, err, sizeof(err)), 0);
	assert_int_equal(hello_bulk(B, WIRE_BULK_CHANNELS_MAX + 1, 0, err,
	    sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "asks for 17 bulk channels"));
	assert_int_equal(hello_bulk(U, UINT32_MAX, 0, err, sizeof(err)),
	    -EPROTO);
	assert_int_equal(hello_bulk(B, 4, 4, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "bulk channel 4 of 4"));
	assert_int_equal(hello_bulk(B, 0, 1, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "bulk channel 1 of 1"));
	assert_int_equal(hello_bulk(U, 4, 1, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "on the urgent channel"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_bad_fields),
		cmocka_unit_test(test_bad_magic_and_reserved),
		cmocka_unit_test(test_bodies),
		cmocka_unit_test(test_hello_ids),
		cmocka_unit_test(test_hello_bulk),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
