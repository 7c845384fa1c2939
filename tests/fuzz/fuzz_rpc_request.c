/* fuzz_rpc_request.c - what a control client sends the daemon: a stream
 * of RPC frames, read as ctl.c reads them (rpc_hdr_decode with the default
 * max_frame, rpc_request_decode, then for Prepare/Migrate the stateless
 * argument checks, ctl_args_check).
 */
#include <errno.h>
#include <limits.h>

#include "control.pb-c.h"
#include "ctl.h"
#include "fuzz.h"
#include "migration.h"
#include "rpc.h"

static void
check_args(const char *id, const Pcd__TlsProfile *tls,
    const Pcd__LibvirtDomain *lv)
{
	char err[256];

	err[0] = '\0';
	if (ctl_args_check(id, tls, lv, err, sizeof(err)) < 0) {
		FUZZ_CHECK_ERR(err, sizeof(err));
		return;
	}
	FUZZ_CHECK(mig_id_valid(id));
	FUZZ_CHECK(strlen(id) >= 1 && strlen(id) <= MIG_ID_MAX);
	if (tls != NULL)
		FUZZ_CHECK(strlen(tls->dir) < PATH_MAX &&
		    strlen(tls->peer_name) < 256);
	if (lv != NULL)
		FUZZ_CHECK((lv->uri[0] == '\0') == (lv->domain[0] == '\0'));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data, *end = data + size;

	while ((size_t)(end - p) >= RPC_HDR_SIZE) {
		uint8_t again[RPC_HDR_SIZE];
		ProtobufCMessage *req = NULL;
		struct rpc_hdr h;
		char err[256];
		uint32_t code;
		size_t n;
		int r;

		r = rpc_hdr_decode(p, RPC_MAX_FRAME_DEFAULT, &h);
		if (r < 0) {
			FUZZ_CHECK(r == -EMSGSIZE || r == -EPROTO);
			break;
		}
		FUZZ_CHECK(h.len >= RPC_ENVELOPE_SIZE &&
		    h.len <= RPC_MAX_FRAME_DEFAULT && h.version == RPC_VERSION);
		rpc_hdr_encode(again, &h);
		FUZZ_CHECK(memcmp(again, p, RPC_HDR_SIZE) == 0);
		n = rpc_payload_len(&h);
		FUZZ_CHECK(n == h.len - RPC_ENVELOPE_SIZE);
		p += RPC_HDR_SIZE;
		if ((size_t)(end - p) < n)
			break;
		err[0] = '\0';
		code = rpc_request_decode(&h, p, n, &req, err, sizeof(err));
		p += n;
		if (code != STATUS_OK) {
			FUZZ_CHECK(req == NULL);
			FUZZ_CHECK(code == STATUS_INVALID_ARGUMENT ||
			    code == STATUS_UNIMPLEMENTED);
			FUZZ_CHECK_ERR(err, sizeof(err));
			continue;	/* the daemon answers and reads on */
		}
		FUZZ_CHECK(h.kind == RPC_REQUEST && h.reserved == 0);
		FUZZ_CHECK(rpc_method_get(h.method) != NULL);
		FUZZ_CHECK(req != NULL &&
		    req->descriptor == rpc_method_get(h.method)->input);
		if (h.method == RPC_M_PREPARE) {
			const Pcd__PrepareRequest *q =
			    (const Pcd__PrepareRequest *)req;
			check_args(q->id, q->tls, q->libvirt);
		} else if (h.method == RPC_M_MIGRATE) {
			const Pcd__MigrateRequest *q =
			    (const Pcd__MigrateRequest *)req;
			check_args(q->id, q->tls, q->libvirt);
		}
		protobuf_c_message_free_unpacked(req, NULL);
	}
	return 0;
}
