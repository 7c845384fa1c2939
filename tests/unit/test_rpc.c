/* test_rpc - the control RPC framing (daemon/rpc.c) and the JSON writer
 * (daemon/pbjson.c): header round trips, every length/version rule, method
 * lookup from the protoc-c service descriptor, and a
 * message packed into a frame and read back through the payload.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common.pb-c.h"
#include "control.pb-c.h"
#include "pbjson.h"
#include "rpc.h"

static void
test_hdr_roundtrip(void **state)
{
	struct rpc_hdr in = { .len = 12 + 5, .version = RPC_VERSION,
	    .kind = RPC_EVENT, .flags = RPC_F_END_STREAM,
	    .call_id = 0xdeadbeef, .method = RPC_M_WATCH }, out;
	uint8_t b[RPC_HDR_SIZE];

	rpc_hdr_encode(b, &in);
	/* big-endian on the wire */
	assert_int_equal(b[0], 0);
	assert_int_equal(b[3], 17);
	assert_int_equal(b[8], 0xde);
	assert_int_equal(rpc_hdr_decode(b, RPC_MAX_FRAME_DEFAULT, &out), 0);
	assert_memory_equal(&in, &out, sizeof(in));
	assert_int_equal(rpc_payload_len(&out), 5);
}

static void
test_hdr_limits(void **state)
{
	struct rpc_hdr h = { .version = RPC_VERSION, .kind = RPC_REQUEST };
	uint8_t b[RPC_HDR_SIZE];

	h.len = 4096;
	rpc_hdr_encode(b, &h);
	assert_int_equal(rpc_hdr_decode(b, 4096, &h), 0);
	assert_int_equal(rpc_hdr_decode(b, 4095, &h), -EMSGSIZE);
	h.len = 0xffffffff;
	rpc_hdr_encode(b, &h);
	assert_int_equal(rpc_hdr_decode(b, RPC_MAX_FRAME_LIMIT, &h), -EMSGSIZE);
	h.len = RPC_ENVELOPE_SIZE - 1;
	rpc_hdr_encode(b, &h);
	assert_int_equal(rpc_hdr_decode(b, RPC_MAX_FRAME_LIMIT, &h), -EPROTO);
	h.len = RPC_ENVELOPE_SIZE;
	h.version = RPC_VERSION + 1;
	rpc_hdr_encode(b, &h);
	assert_int_equal(rpc_hdr_decode(b, RPC_MAX_FRAME_LIMIT, &h), -EPROTO);
}

static void
test_methods(void **state)
{
	static const char *const names[] = { "Prepare", "Migrate", "Status",
	    "Cancel", "Watch", "SetBandwidth", "Version", "CheckKernel",
	    "Resume", "StartPostcopy" };

	assert_int_equal(rpc_service()->n_methods, 10);
	for (unsigned i = 0; i < 10; i++) {
		assert_int_equal(rpc_method_index(names[i]), (int)i);
		assert_string_equal(rpc_method_get(i)->name, names[i]);
	}
	assert_int_equal(RPC_M_RESUME, 8);
	assert_int_equal(RPC_M_START_POSTCOPY, 9);
	assert_null(rpc_method_get(10));
	assert_int_equal(rpc_method_index("Frobnicate"), -1);
	assert_ptr_equal(rpc_method_get(RPC_M_STATUS)->input,
	    &pcd__status_request__descriptor);
	assert_ptr_equal(rpc_method_get(RPC_M_WATCH)->output,
	    &pcd__watch_event__descriptor);
	assert_true(rpc_method_streams(RPC_M_WATCH));
	assert_false(rpc_method_streams(RPC_M_STATUS));
}

static void
test_frame_pack(void **state)
{
	Pcd__PrepareRequest req = PCD__PREPARE_REQUEST__INIT, *back;
	Pcd__TlsProfile tls = PCD__TLS_PROFILE__INIT;
	struct rpc_hdr h;
	uint8_t *buf;
	size_t n;

	req.id = "m1";
	req.listen = "127.0.0.1:0";
	tls.dir = "/etc/pki";
	req.tls = &tls;
	assert_int_equal(rpc_frame_pack(RPC_REQUEST, 0, 7, RPC_M_PREPARE,
	    &req.base, &buf, &n), 0);
	assert_int_equal(rpc_hdr_decode(buf, RPC_MAX_FRAME_DEFAULT, &h), 0);
	assert_int_equal(n, RPC_HDR_SIZE + rpc_payload_len(&h));
	assert_int_equal(h.kind, RPC_REQUEST);
	assert_int_equal(h.call_id, 7);
	back = (Pcd__PrepareRequest *)protobuf_c_message_unpack(
	    rpc_method_get(h.method)->input, NULL, rpc_payload_len(&h),
	    buf + RPC_HDR_SIZE);
	assert_non_null(back);
	assert_string_equal(back->id, "m1");
	assert_string_equal(back->tls->dir, "/etc/pki");
	protobuf_c_message_free_unpacked(&back->base, NULL);
	free(buf);

	/* An empty message is an empty payload. */
	{
		Pcd__VersionRequest v = PCD__VERSION_REQUEST__INIT;

		assert_int_equal(rpc_frame_pack(RPC_REQUEST, 0, 1,
		    RPC_M_VERSION, &v.base, &buf, &n), 0);
		assert_int_equal(n, RPC_HDR_SIZE);
		free(buf);
	}
}

static void
test_json(void **state)
{
	Pcd__StatusReply rep = PCD__STATUS_REPLY__INIT;
	Pcd__Status st = PCD__STATUS__INIT;
	Pcd__MigrationInfo mi = PCD__MIGRATION_INFO__INIT, *mip = &mi;
	Pcd__TypedParam tp = PCD__TYPED_PARAM__INIT, *tpp = &tp;
	uint64_t hist[2] = { 3, 18446744073709551615ull };
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	st.code = 5;
	st.message = "no \"m2\"\n\t\x01";
	rep.status = &st;
	mi.id = "m1";
	mi.lat_hist = hist;
	mi.n_lat_hist = 2;
	tp.field = "success";
	tp.type = 6;
	tp.value_case = PCD__TYPED_PARAM__VALUE_B;
	tp.b = 1;
	mi.job = &tpp;
	mi.n_job = 1;
	rep.migrations = &mip;
	rep.n_migrations = 1;
	pbjson_write(f, &rep.base);
	fclose(f);
	assert_non_null(strstr(out, "{\"status\":{\"code\":5,\"message\":"
	    "\"no \\\"m2\\\"\\n\\t\\u0001\"},\"migrations\":[{\"id\":\"m1\""));
	assert_non_null(strstr(out, "\"lat_hist\":[3,18446744073709551615]"));
	assert_non_null(strstr(out, "\"job\":[{\"field\":\"success\","
	    "\"type\":6,\"b\":true}]"));
	/* the oneof writes only its member that is set */
	assert_null(strstr(out, "\"u\":"));
	free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hdr_roundtrip),
		cmocka_unit_test(test_hdr_limits),
		cmocka_unit_test(test_methods),
		cmocka_unit_test(test_frame_pack),
		cmocka_unit_test(test_json),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
