/* test_decoders.c - what the fuzz targets found (tests/fuzz), pinned as unit
 * tests: field number 0 is refused in every decoder, the message checks
 * always say why, and the configuration postcopyd -nn prints reads back. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "control.pb-c.h"
#include "pbcheck.h"
#include "rpc.h"
#include "vmm.h"
#include "vmm.pb-c.h"
#include "wire.h"

/* Hello{version 1} then field 0 as a two-byte varint tag (0x80 0x00). */
static const uint8_t field0[] = { 0x08, 0x01, 0x80, 0x00, 0x04 };

static void
test_field0(void **state)
{
	static const uint8_t vmm[] = { 0x0a, 0x05, 0x08, 0x01, 0x80, 0x00,
	    0x01 };
	struct rpc_hdr h = { .len = RPC_ENVELOPE_SIZE + sizeof(field0),
	    .version = RPC_VERSION, .kind = RPC_REQUEST,
	    .method = RPC_M_STATUS };
	struct Pcd__VmmMessage *vm;
	ProtobufCMessage *m;
	char err[256];

	/* protobuf-c alone takes it, and keeps it as an unknown field. */
	m = protobuf_c_message_unpack(&pcd__wire__hello__descriptor, NULL,
	    sizeof(field0), field0);
	assert_non_null(m);
	assert_false(pbcheck_tags(m));
	protobuf_c_message_free_unpacked(m, NULL);

	assert_int_equal(wire_body_decode(WIRE_HELLO, field0, sizeof(field0),
	    &m, err, sizeof(err)), -EPROTO);
	assert_null(m);
	/* VmmMessage{attach: {version 1, field 0}}: nested messages too. */
	vm = pcd__vmm_message__unpack(NULL, sizeof(vmm), vmm);
	assert_non_null(vm);
	assert_false(pbcheck_tags(&vm->base));
	pcd__vmm_message__free_unpacked(vm, NULL);
	assert_int_not_equal(vmm_attach_parse(vmm, sizeof(vmm), 1, &vm, err,
	    sizeof(err)), 0);
	assert_null(vm);
	assert_int_equal(rpc_request_decode(&h, field0, sizeof(field0), &m,
	    err, sizeof(err)), STATUS_INVALID_ARGUMENT);
	assert_null(m);
}

static void
test_welcome_refused(void **state)
{
	Pcd__Wire__Welcome w = PCD__WIRE__WELCOME__INIT;
	Pcd__Status st = PCD__STATUS__INIT;
	Pcd__Wire__PageRange r = PCD__WIRE__PAGE_RANGE__INIT, *rp = &r;
	char err[200];

	/* A refusal without a message still tells the user something. */
	st.code = 5;
	st.message = (char *)"";
	w.status = &st;
	w.version = WIRE_VERSION;
	assert_int_equal(wire_welcome_check(&w, 10, err, sizeof(err)),
	    -ECONNREFUSED);
	assert_non_null(strstr(err, "status 5"));
	st.code = 0;
	w.version = 2;
	assert_int_equal(wire_welcome_check(&w, 10, err, sizeof(err)),
	    -EPROTONOSUPPORT);
	w.version = WIRE_VERSION;
	r.first = 8;
	r.count = 3;
	w.n_have = 1;
	w.have = &rp;
	assert_int_equal(wire_welcome_check(&w, 10, err, sizeof(err)), -EPROTO);
	r.count = 2;
	assert_int_equal(wire_welcome_check(&w, 10, err, sizeof(err)), 0);
}

static int
parse_text(const char *text, struct config *c, char *err, size_t errlen)
{
	char path[64];
	int fd, r;

	fd = memfd_create("test-config", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	config_defaults(c);
	r = config_parse_file(path, c, err, errlen);
	close(fd);
	return r;
}

static void
test_config_dump_reads_back(void **state)
{
	struct config c, c2;
	char err[512], *buf = NULL;
	size_t len = 0;
	FILE *f;

	/* A quoted value with " #" in it used to be printed unquoted by
	 * config_dump, so reading it back cut it at the '#'. */
	assert_int_equal(parse_text("vmm_socket = \"/run/p #1/vmm.sock\"\n"
	    "tls_dir = \"/etc/tls \"\n", &c, err, sizeof(err)), 0);
	assert_string_equal(c.vmm_socket, "/run/p #1/vmm.sock");
	f = open_memstream(&buf, &len);
	config_dump(&c, f);
	fclose(f);
	assert_int_equal(parse_text(buf, &c2, err, sizeof(err)), 0);
	assert_string_equal(c2.vmm_socket, c.vmm_socket);
	assert_string_equal(c2.tls_dir, "/etc/tls ");
	free(buf);
	/* A double quote or a control character cannot be written back. */
	assert_int_equal(parse_text("tls_dir = /a\"b\n", &c, err,
	    sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "double quote"));
	assert_int_equal(parse_text("tls_dir = \"/a\x01\"\n", &c, err,
	    sizeof(err)), -EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_field0),
		cmocka_unit_test(test_welcome_refused),
		cmocka_unit_test(test_config_dump_reads_back),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
