/* seedgen.c - writes the seed corpus of the fuzz targets with the daemon's
 * own encoders (wire_hdr_encode, the protobuf-c packers). Run it from the
 * fuzz build to regenerate: `build-fuzz/tests/fuzz/seedgen tests/fuzz/corpus`.
 * The seeds are committed; the output is deterministic.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "control.pb-c.h"
#include "rpc.h"
#include "vmm.h"
#include "vmm.pb-c.h"
#include "wire.h"

#define SEED_MAX	8192

struct seed {
	uint8_t		b[SEED_MAX];
	size_t		len;
};

static void
put(struct seed *s, const void *p, size_t n)
{
	if (s->len + n > sizeof(s->b)) {
		fprintf(stderr, "seedgen: seed too large\n");
		exit(1);
	}
	memcpy(s->b + s->len, p, n);
	s->len += n;
}

static void
put_le(struct seed *s, uint64_t v, int n)
{
	for (int i = 0; i < n; i++) {
		uint8_t c = (uint8_t)(v >> (8 * i));
		put(s, &c, 1);
	}
}

static void
put_msg(struct seed *s, const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m);

	if (s->len + n > sizeof(s->b)) {
		fprintf(stderr, "seedgen: seed too large\n");
		exit(1);
	}
	protobuf_c_message_pack(m, s->b + s->len);
	s->len += n;
}

static void
put_frame(struct seed *s, unsigned type, uint64_t index, uint32_t count,
    uint32_t page_size, const ProtobufCMessage *m)
{
	struct wire_hdr h = { .type = (uint8_t)type, .index = index,
	    .count = count };
	uint8_t hdr[WIRE_HDR_LEN];

	if (m != NULL)
		h.length = (uint32_t)protobuf_c_message_get_packed_size(m);
	else if (type == WIRE_PAGES)
		h.length = count * page_size;
	wire_hdr_encode(hdr, &h);
	put(s, hdr, sizeof(hdr));
	if (m != NULL)
		put_msg(s, m);
	else
		for (uint32_t i = 0; i < h.length; i++)
			put_le(s, (uint8_t)(index + i), 1);
}

static const char *outdir;

static void
write_seed(const char *target, const char *name, const struct seed *s)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", outdir, target);
	if (mkdir(path, 0755) < 0 && errno != EEXIST) {
		perror(path);
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/%s/%s", outdir, target, name);
	if ((f = fopen(path, "wb")) == NULL ||
	    fwrite(s->b, 1, s->len, f) != s->len || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

/* The messages the seeds are made of: a 16-page guest of 64-byte pages
 * for the frame stream (seed prefix: shift 2, 16 pages), 4096-byte pages
 * for single messages. */
#define G_PAGES		16
#define G_SHIFT		2		/* 16 << 2 = 64-byte pages */
#define G_PS		64

static void
wire_seeds(void)
{
	static const uint64_t hashes[4] = {
		0x0123456789abcdefull, 0xfedcba9876543210ull, 0, ~0ull
	};
	Pcd__Wire__Hello hello = PCD__WIRE__HELLO__INIT;
	Pcd__Wire__Welcome welcome = PCD__WIRE__WELCOME__INIT;
	Pcd__Wire__PageRange r0 = PCD__WIRE__PAGE_RANGE__INIT,
	    r1 = PCD__WIRE__PAGE_RANGE__INIT;
	Pcd__Wire__PageRange *have[2] = { &r0, &r1 };
	Pcd__Wire__PageRequest rq = PCD__WIRE__PAGE_REQUEST__INIT;
	Pcd__Wire__Switchover sw = PCD__WIRE__SWITCHOVER__INIT;
	Pcd__Wire__Digest dg = PCD__WIRE__DIGEST__INIT;
	Pcd__Wire__Complete done = PCD__WIRE__COMPLETE__INIT;
	Pcd__Wire__Error e = PCD__WIRE__ERROR__INIT;
	Pcd__Wire__Ping ping = PCD__WIRE__PING__INIT;
	Pcd__Wire__Precopy pre = PCD__WIRE__PRECOPY__INIT;
	Pcd__Wire__Stale stale = PCD__WIRE__STALE__INIT;
	Pcd__Status ok = PCD__STATUS__INIT, bad = PCD__STATUS__INIT;
	const ProtobufCMessage *msgs[WIRE_TYPE_MAX] = { 0 };
	static const char *const names[WIRE_TYPE_MAX] = {
		[WIRE_HELLO] = "hello", [WIRE_WELCOME] = "welcome",
		[WIRE_PAGE_REQUEST] = "page_request",
		[WIRE_SWITCHOVER] = "switchover", [WIRE_DIGEST] = "digest",
		[WIRE_COMPLETE] = "complete", [WIRE_ERROR] = "error",
		[WIRE_PING] = "ping", [WIRE_PRECOPY] = "precopy",
		[WIRE_STALE] = "stale",
	};
	struct seed s;

	hello.version = WIRE_VERSION;
	hello.migration_id = (char *)"fuzz-mig";
	hello.channel = PCD__WIRE__CHANNEL__CHANNEL_BULK;
	hello.guest_size = (uint64_t)G_PAGES * G_PS;
	hello.page_size = G_PS;
	hello.session_token.data = (uint8_t *)"0123456789abcdef";
	hello.session_token.len = WIRE_TOKEN_LEN;
	hello.bulk_channels = 4;	/* parallel bulk channels: the third */
	hello.bulk_index = 2;
	welcome.status = &ok;
	welcome.version = WIRE_VERSION;
	r0.first = 0;
	r0.count = 2;
	r1.first = 5;
	r1.count = 11;
	welcome.n_have = 2;
	welcome.have = have;
	rq.index = 3;
	rq.count = 4;
	sw.device_state.data = (uint8_t *)"device-state";
	sw.device_state.len = 12;
	sw.paused_at_ms = 1764110000000ull;
	dg.first = 0;
	dg.n_hash = 4;
	dg.hash = (uint64_t *)hashes;
	done.ok = 1;
	done.pages_verified = G_PAGES;
	done.message = (char *)"all pages verified";
	bad.code = 9;
	bad.message = (char *)"wire protocol version 2 is not supported";
	e.status = &bad;
	ping.seq = 7;
	msgs[WIRE_HELLO] = &hello.base;
	msgs[WIRE_WELCOME] = &welcome.base;
	msgs[WIRE_PAGE_REQUEST] = &rq.base;
	msgs[WIRE_SWITCHOVER] = &sw.base;
	msgs[WIRE_DIGEST] = &dg.base;
	msgs[WIRE_COMPLETE] = &done.base;
	msgs[WIRE_ERROR] = &e.base;
	msgs[WIRE_PING] = &ping.base;
	pre.round = 2;
	stale.n_pages = 2;
	stale.pages = have;
	stale.last = 1;
	msgs[WIRE_PRECOPY] = &pre.base;
	msgs[WIRE_STALE] = &stale.base;

	/* wire_msg: type, npages (4096-byte pages), body. */
	hello.guest_size = (uint64_t)G_PAGES * 4096;
	hello.page_size = 4096;
	for (unsigned t = 1; t < WIRE_TYPE_MAX; t++) {
		if (msgs[t] == NULL)
			continue;
		s.len = 0;
		put_le(&s, t, 1);
		put_le(&s, G_PAGES, 8);
		put_msg(&s, msgs[t]);
		write_seed("wire_msg", names[t], &s);
	}
	hello.guest_size = (uint64_t)G_PAGES * G_PS;
	hello.page_size = G_PS;

	/* wire_frames: the bulk channel as the destination sees it. */
	s.len = 0;
	put_le(&s, G_SHIFT, 1);
	put_le(&s, G_PAGES, 8);
	put_frame(&s, WIRE_HELLO, 0, 0, G_PS, &hello.base);
	put_frame(&s, WIRE_PAGES, 0, 2, G_PS, NULL);
	put_frame(&s, WIRE_ZERO, 2, 6, G_PS, NULL);
	put_frame(&s, WIRE_PAGES, 8, 8, G_PS, NULL);
	put_frame(&s, WIRE_PRECOPY, 0, 0, G_PS, &pre.base);
	put_frame(&s, WIRE_PAGES, 8, 2, G_PS, NULL);
	put_frame(&s, WIRE_STALE, 0, 0, G_PS, &stale.base);
	put_frame(&s, WIRE_PING, 0, 0, G_PS, &ping.base);
	put_frame(&s, WIRE_DIGEST, 0, 0, G_PS, &dg.base);
	dg.first = 4;
	put_frame(&s, WIRE_DIGEST, 0, 0, G_PS, &dg.base);
	dg.first = 0;
	write_seed("wire_frames", "bulk", &s);

	/* The urgent channel: requests one way, answers and switchover. */
	s.len = 0;
	put_le(&s, G_SHIFT, 1);
	put_le(&s, G_PAGES, 8);
	hello.channel = PCD__WIRE__CHANNEL__CHANNEL_URGENT;
	put_frame(&s, WIRE_HELLO, 0, 0, G_PS, &hello.base);
	put_frame(&s, WIRE_PAGE_REQUEST, 0, 0, G_PS, &rq.base);
	put_frame(&s, WIRE_PAGES, 3, 1, G_PS, NULL);
	put_frame(&s, WIRE_SWITCHOVER, 0, 0, G_PS, &sw.base);
	put_frame(&s, WIRE_COMPLETE, 0, 0, G_PS, &done.base);
	put_frame(&s, WIRE_ERROR, 0, 0, G_PS, &e.base);
	write_seed("wire_frames", "urgent", &s);

	/* The source's side of a handshake: Welcome (resume: held ranges). */
	s.len = 0;
	put_le(&s, G_SHIFT, 1);
	put_le(&s, G_PAGES, 8);
	put_frame(&s, WIRE_WELCOME, 0, 0, G_PS, &welcome.base);
	put_frame(&s, WIRE_PAGE_REQUEST, 0, 0, G_PS, &rq.base);
	write_seed("wire_frames", "welcome", &s);
}

static void
vmm_put_frame(struct seed *s, const Pcd__VmmMessage *m)
{
	put_le(s, pcd__vmm_message__get_packed_size(m), 4);
	put_msg(s, &m->base);
}

static void
vmm_seeds(void)
{
	Pcd__VmmMessage m = PCD__VMM_MESSAGE__INIT;
	Pcd__VmmAttach a = PCD__VMM_ATTACH__INIT;
	Pcd__VmmPaused pd = PCD__VMM_PAUSED__INIT;
	Pcd__VmmDetach dt = PCD__VMM_DETACH__INIT;
	struct seed s;

	a.version = VMM_PROTOCOL_VERSION;
	a.id = (char *)"vm-42.test_1";
	a.base_addr = 0x7f0000000000ull;
	a.size = 256ull << 20;
	a.offset = 0;
	a.page_size = 4096;
	m.body_case = PCD__VMM_MESSAGE__BODY_ATTACH;
	m.attach = &a;

	/* Source: memfd only, then Paused and Detach. */
	a.role = PCD__VMM_ROLE__VMM_ROLE_SOURCE;
	a.mode = PCD__VMM_MODE__VMM_MODE_MINOR;
	s.len = 0;
	put_le(&s, 1, 1);
	vmm_put_frame(&s, &m);
	pd.device_state.data = (uint8_t *)"cpu+devices";
	pd.device_state.len = 11;
	m.body_case = PCD__VMM_MESSAGE__BODY_PAUSED;
	m.paused = &pd;
	vmm_put_frame(&s, &m);
	dt.reason = (char *)"migrated";
	m.body_case = PCD__VMM_MESSAGE__BODY_DETACH;
	m.detach = &dt;
	vmm_put_frame(&s, &m);
	write_seed("vmm_attach", "source", &s);

	/* Destination, MINOR: memfd + uffd, memfd offset 1 MiB. */
	m.body_case = PCD__VMM_MESSAGE__BODY_ATTACH;
	m.attach = &a;
	a.role = PCD__VMM_ROLE__VMM_ROLE_DEST;
	a.offset = 1 << 20;
	s.len = 0;
	put_le(&s, 2, 1);
	vmm_put_frame(&s, &m);
	write_seed("vmm_attach", "dest_minor", &s);

	/* Destination, COPY: the uffd only. */
	a.mode = PCD__VMM_MODE__VMM_MODE_COPY;
	a.offset = 0;
	s.len = 0;
	put_le(&s, 1, 1);
	vmm_put_frame(&s, &m);
	write_seed("vmm_attach", "dest_copy", &s);
}


static void
rpc_put(struct seed *s, uint8_t kind, uint16_t flags, uint32_t call_id,
    uint16_t method, const ProtobufCMessage *m)
{
	uint8_t *buf;
	size_t n;

	if (rpc_frame_pack(kind, flags, call_id, method, m, &buf, &n) < 0) {
		fprintf(stderr, "seedgen: rpc_frame_pack failed\n");
		exit(1);
	}
	put(s, buf, n);
	free(buf);
}

static void
rpc_seeds(void)
{
	Pcd__TlsProfile tls = PCD__TLS_PROFILE__INIT;
	Pcd__LibvirtDomain lv = PCD__LIBVIRT_DOMAIN__INIT;
	Pcd__PrepareRequest prep = PCD__PREPARE_REQUEST__INIT;
	Pcd__MigrateRequest mig = PCD__MIGRATE_REQUEST__INIT;
	Pcd__StatusRequest streq = PCD__STATUS_REQUEST__INIT;
	Pcd__CancelRequest can = PCD__CANCEL_REQUEST__INIT;
	Pcd__WatchRequest wr = PCD__WATCH_REQUEST__INIT;
	Pcd__SetBandwidthRequest bw = PCD__SET_BANDWIDTH_REQUEST__INIT;
	Pcd__Status ok = PCD__STATUS__INIT, bad = PCD__STATUS__INIT;
	Pcd__PrepareReply prep_r = PCD__PREPARE_REPLY__INIT;
	Pcd__StatusReply st_r = PCD__STATUS_REPLY__INIT;
	Pcd__MigrationInfo mi = PCD__MIGRATION_INFO__INIT;
	Pcd__MigrationInfo *mis[1] = { &mi };
	Pcd__TypedParam tp[3] = { PCD__TYPED_PARAM__INIT,
	    PCD__TYPED_PARAM__INIT, PCD__TYPED_PARAM__INIT };
	Pcd__TypedParam *tps[3] = { &tp[0], &tp[1], &tp[2] };
	uint64_t hist[4] = { 0, 3, 10, 1 };
	Pcd__WatchEvent ev = PCD__WATCH_EVENT__INIT;
	Pcd__VersionReply ver = PCD__VERSION_REPLY__INIT;
	Pcd__KernelFeature kf = PCD__KERNEL_FEATURE__INIT;
	Pcd__KernelFeature *kfs[1] = { &kf };
	Pcd__CheckKernelReply ck = PCD__CHECK_KERNEL_REPLY__INIT;
	struct seed s;

	tls.dir = (char *)"/etc/postcopyd/tls";
	tls.peer_name = (char *)"dest.example";
	lv.uri = (char *)"test:///default";
	lv.domain = (char *)"vm1";
	prep.id = (char *)"vm-1";
	prep.listen = (char *)"127.0.0.1:0";
	prep.tls = &tls;
	prep.libvirt = &lv;
	mig.id = (char *)"vm-1";
	mig.dest = (char *)"[::1]:4444";
	mig.tls = &tls;
	mig.bandwidth_bps = 500000000;
	streq.id = (char *)"";
	can.id = (char *)"vm-1";
	wr.id = (char *)"vm-1";
	wr.interval_ms = 100;
	bw.id = (char *)"vm-1";
	bw.bandwidth_bps = 1 << 20;

	/* rpc_request: one connection's calls, one per method. */
	s.len = 0;
	rpc_put(&s, RPC_REQUEST, 0, 1, RPC_M_PREPARE, &prep.base);
	rpc_put(&s, RPC_REQUEST, 0, 2, RPC_M_MIGRATE, &mig.base);
	rpc_put(&s, RPC_REQUEST, 0, 3, RPC_M_STATUS, &streq.base);
	rpc_put(&s, RPC_REQUEST, 0, 4, RPC_M_CANCEL, &can.base);
	rpc_put(&s, RPC_REQUEST, 0, 5, RPC_M_WATCH, &wr.base);
	rpc_put(&s, RPC_REQUEST, 0, 6, RPC_M_SET_BANDWIDTH, &bw.base);
	rpc_put(&s, RPC_REQUEST, 0, 7, RPC_M_VERSION, NULL);
	rpc_put(&s, RPC_REQUEST, 0, 8, RPC_M_CHECK_KERNEL, NULL);
	write_seed("rpc_request", "calls", &s);
	s.len = 0;
	rpc_put(&s, RPC_REQUEST, 0, 1, RPC_M_MIGRATE, &mig.base);
	write_seed("rpc_request", "migrate", &s);

	/* rpc_answer: what postcopyctl reads back. */
	ok.message = (char *)"";
	bad.code = STATUS_NOT_FOUND;
	bad.message = (char *)"no migration 'vm-\"2\"'\n\t\x01";
	prep_r.status = &ok;
	prep_r.listen = (char *)"127.0.0.1:40123";
	mi.id = (char *)"vm-1";
	mi.role = (char *)"dest";
	mi.state = (char *)"postcopy";
	mi.page_size = 4096;
	mi.pages_total = 262144;
	mi.n_lat_hist = 4;
	mi.lat_hist = hist;
	tp[0].field = (char *)"time_elapsed";
	tp[0].type = 4;
	tp[0].value_case = PCD__TYPED_PARAM__VALUE_U;
	tp[0].u = 1234;
	tp[1].field = (char *)"compression_ratio";
	tp[1].type = 5;
	tp[1].value_case = PCD__TYPED_PARAM__VALUE_D;
	tp[1].d = 0.75;
	tp[2].field = (char *)"state";
	tp[2].type = 7;
	tp[2].value_case = PCD__TYPED_PARAM__VALUE_S;
	tp[2].s = (char *)"running";
	mi.n_job = 3;
	mi.job = tps;
	st_r.status = &ok;
	st_r.n_migrations = 1;
	st_r.migrations = mis;
	ev.status = &ok;
	ev.info = &mi;
	ev.final = 1;
	ver.status = &ok;
	ver.version = (char *)"0.1.0";
	ver.protocol = 1;
	kf.name = (char *)"UFFD_FEATURE_MINOR_SHMEM";
	kf.present = 1;
	kf.detail = (char *)"";
	ck.status = &ok;
	ck.ok = 1;
	ck.release = (char *)"6.1.0";
	ck.summary = (char *)"ok";
	ck.n_features = 1;
	ck.features = kfs;
	s.len = 0;
	rpc_put(&s, RPC_REPLY, 0, 1, RPC_M_PREPARE, &prep_r.base);
	rpc_put(&s, RPC_REPLY, 0, 3, RPC_M_STATUS, &st_r.base);
	rpc_put(&s, RPC_EVENT, RPC_F_END_STREAM, 5, RPC_M_WATCH, &ev.base);
	rpc_put(&s, RPC_REPLY, 0, 7, RPC_M_VERSION, &ver.base);
	rpc_put(&s, RPC_REPLY, 0, 8, RPC_M_CHECK_KERNEL, &ck.base);
	rpc_put(&s, RPC_ERROR, 0, 4, RPC_M_CANCEL, &bad.base);
	write_seed("rpc_answer", "answers", &s);
}

static void
config_seeds(void)
{
	static const char full[] =
	    "# postcopyd.conf\n"
	    "control_socket = /run/postcopyd/control.sock\n"
	    "vmm_socket = \"/run/postcopyd/vmm.sock\"   # quoted\n"
	    "log_level = debug\n"
	    "\n"
	    "metrics_listen = 127.0.0.1:9464\n"
	    "control_tcp_listen = off\n"
	    "control_tls_dir = /etc/postcopyd/control-tls\n"
	    "tls_dir = /etc/postcopyd/tls\n"
	    "max_migrations = 8\n"
	    "max_connections = 64\n"
	    "max_frame = 1M\n"
	    "max_inflight = 16\r\n";
	static const char odd[] =
	    "\t  # indented comment\n"
	    "tls_dir=/a#b\n"
	    "metrics_listen = [::1]:80 # v6\n"
	    "log_level = warning\n";
	struct seed s;

	s.len = 0;
	put(&s, full, sizeof(full) - 1);
	write_seed("config", "full", &s);
	s.len = 0;
	put(&s, odd, sizeof(odd) - 1);
	write_seed("config", "odd", &s);
}

int
main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: seedgen CORPUS_DIR\n");
		return 2;
	}
	outdir = argv[1];
	wire_seeds();
	vmm_seeds();
	rpc_seeds();
	config_seeds();
	return 0;
}
