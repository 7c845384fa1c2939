/* ctl_rawframe - hostile and malformed frames on a live daemon's control
 * socket: oversize and undersize lengths, bad versions, unknown methods,
 * payloads that do not unpack, wrong kinds, pipelining, random junk, too
 * many calls in flight, a half-sent frame. After each, the daemon must
 * still answer a Version call.
 *
 *   ctl_rawframe SOCKET MIGRATION_ID MAX_CONNECTIONS
 *
 * MIGRATION_ID names a migration that is not over (watches on it stay
 * open); MAX_CONNECTIONS is the daemon's max_connections.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "common.pb-c.h"
#include "control.pb-c.h"
#include "rpc.h"
#include "vmm.pb-c.h"
#include "util.h"

static const char *sock_path;
static int failures;

static void check_alive(const char *after);
static bool expect_closed(int fd);

static void __attribute__((format(printf, 1, 2)))
fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "FAIL: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	failures++;
}

static int
conn(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	str_copy(sun.sun_path, sock_path, sizeof(sun.sun_path));
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		fprintf(stderr, "cannot connect to %s: %s\n", sock_path,
		    strerror(errno));
		exit(1);
	}
	return fd;
}

static void
send_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w <= 0)
			return;		/* the daemon may have closed: fine */
		p += w;
		n -= (size_t)w;
	}
}

static void
send_frame(int fd, uint8_t version, uint8_t kind, uint32_t call,
    uint16_t method, uint16_t reserved, const void *payload, size_t n)
{
	struct rpc_hdr h = { .len = (uint32_t)(RPC_ENVELOPE_SIZE + n),
	    .version = version, .kind = kind, .call_id = call,
	    .method = method, .reserved = reserved };
	uint8_t hb[RPC_HDR_SIZE];

	rpc_hdr_encode(hb, &h);
	send_all(fd, hb, sizeof(hb));
	if (n > 0)
		send_all(fd, payload, n);
}

static int
read_full(int fd, void *buf, size_t n, int timeout_ms)
{
	char *p = buf;

	while (n > 0) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&pfd, 1, timeout_ms) <= 0)
			return -ETIMEDOUT;
		r = recv(fd, p, n, 0);
		if (r == 0)
			return -ECONNRESET;
		if (r < 0)
			return -errno;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Reads one answer: 0 and *h, *code, and (msg not NULL) the status
 * message as raw bytes; -ECONNRESET at EOF, -EPROTO if it does not
 * decode. */
static int
recv_status(int fd, struct rpc_hdr *h, uint32_t *code, char *msg,
    size_t msglen)
{
	uint8_t hb[RPC_HDR_SIZE], *p = NULL;
	const ProtobufCMessageDescriptor *d = &pcd__status__descriptor;
	const ProtobufCMethodDescriptor *m;
	ProtobufCMessage *pm;
	const Pcd__Status *st;
	size_t n;
	int r;

	if ((r = read_full(fd, hb, sizeof(hb), 5000)) < 0)
		return r;
	if (rpc_hdr_decode(hb, RPC_MAX_FRAME_LIMIT, h) < 0)
		return -EPROTO;
	n = rpc_payload_len(h);
	if (n > 0 && ((p = malloc(n)) == NULL ||
	    read_full(fd, p, n, 5000) < 0)) {
		free(p);
		return -EPROTO;
	}
	if (h->kind != RPC_ERROR) {
		if ((m = rpc_method_get(h->method)) == NULL) {
			free(p);
			return -EPROTO;
		}
		d = m->output;
	}
	/* Plain protobuf-c: it does not check UTF-8, so the test can. */
	if ((pm = protobuf_c_message_unpack(d, NULL, n, p)) == NULL) {
		free(p);
		return -EPROTO;
	}
	st = h->kind == RPC_ERROR ? (const Pcd__Status *)pm :
	    *(Pcd__Status **)((char *)pm +
	    protobuf_c_message_descriptor_get_field(d, 1)->offset);
	*code = st != NULL ? st->code : 0;
	if (msg != NULL)
		str_copy(msg, st != NULL && st->message != NULL ?
		    st->message : "", msglen);
	protobuf_c_message_free_unpacked(pm, NULL);
	free(p);
	return 0;
}

static int
recv_answer(int fd, struct rpc_hdr *h, uint32_t *code)
{
	return recv_status(fd, h, code, NULL, 0);
}

/* A request whose payload is given as raw protobuf bytes; the answer's
 * code must be want, its message valid UTF-8 and contain expect. */
static void
raw_call(const char *what, uint16_t method, const void *p, size_t n,
    uint32_t want, const char *expect)
{
	struct rpc_hdr h;
	char msg[1024];
	uint32_t code;
	int fd = conn();

	send_frame(fd, RPC_VERSION, RPC_REQUEST, 5, method, 0, p, n);
	if (recv_status(fd, &h, &code, msg, sizeof(msg)) < 0)
		fail("%s: no answer", what);
	else if (code != want)
		fail("%s: code %s, expected %s (%s)", what,
		    status_name(code), status_name(want), msg);
	else if (!utf8_valid((const uint8_t *)msg, strlen(msg)))
		fail("%s: the answer's message is not valid UTF-8", what);
	else if (strstr(msg, expect) == NULL)
		fail("%s: message \"%s\" does not say \"%s\"", what, msg,
		    expect);
	else
		printf("ok: %s -> %s: %s\n", what, status_name(code), msg);
	close(fd);
}

/* Attach frames with bad ids on the VMM socket (no descriptors: the id is
 * checked first). The AttachReply must refuse and say why, in UTF-8. */
static void
vmm_raw_attach(const char *vmm_path, const char *what, const uint8_t *id,
    size_t idlen, const char *expect)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	uint8_t att[128], frame[160], in[2048];
	size_t an = 0, fn = 0;
	Pcd__VmmMessage *m;
	ssize_t got = 0, r;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	/* VmmAttach{version=1, id, role=SOURCE, base=4096, size=4096,
	 * page_size=4096} inside VmmMessage{attach=1}. */
	att[an++] = 0x08; att[an++] = 0x01;
	att[an++] = 0x12; att[an++] = (uint8_t)idlen;
	memcpy(att + an, id, idlen); an += idlen;
	att[an++] = 0x18; att[an++] = 0x01;
	att[an++] = 0x20; att[an++] = 0x80; att[an++] = 0x20;
	att[an++] = 0x28; att[an++] = 0x80; att[an++] = 0x20;
	att[an++] = 0x38; att[an++] = 0x80; att[an++] = 0x20;
	fn = 4;
	frame[fn++] = 0x0a; frame[fn++] = (uint8_t)an;
	memcpy(frame + fn, att, an); fn += an;
	frame[0] = (uint8_t)(fn - 4); frame[1] = frame[2] = frame[3] = 0;
	str_copy(sun.sun_path, vmm_path, sizeof(sun.sun_path));
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		fail("%s: cannot connect to %s", what, vmm_path);
		return;
	}
	send_all(fd, frame, fn);
	while ((r = recv(fd, in + got, sizeof(in) - (size_t)got, 0)) > 0)
		got += r;
	close(fd);
	if (got < 4 || (m = pcd__vmm_message__unpack(NULL, (size_t)got - 4,
	    in + 4)) == NULL || m->body_case !=
	    PCD__VMM_MESSAGE__BODY_ATTACH_REPLY) {
		fail("%s: no AttachReply", what);
		return;
	}
	if (m->attach_reply->status == NULL ||
	    m->attach_reply->status->code == 0)
		fail("%s: attach not refused", what);
	else if (!utf8_valid((const uint8_t *)m->attach_reply->status->message,
	    strlen(m->attach_reply->status->message)))
		fail("%s: AttachReply message is not valid UTF-8", what);
	else if (strstr(m->attach_reply->status->message, expect) == NULL)
		fail("%s: AttachReply \"%s\" does not say \"%s\"", what,
		    m->attach_reply->status->message, expect);
	else
		printf("ok: %s -> refused: %s\n", what,
		    m->attach_reply->status->message);
	pcd__vmm_message__free_unpacked(m, NULL);
}

/* --ids CTL_SOCKET VMM_SOCKET: ids with a NUL inside or invalid UTF-8
 * are refused by control calls and VMM attaches, and no answer carries a
 * byte that is not UTF-8. */
static int
ids_main(const char *vmm_path)
{
	static const uint8_t nul_id[] = { 0x0a, 0x03, 'a', 0x00, 'b' };
	static const uint8_t bad_id[] = { 0x0a, 0x02, 0xff, 0xfe };
	uint8_t long_id[2 + 66];
	static const uint8_t a0b[] = { 'a', 0x00, 'b' };
	static const uint8_t ff[] = { 'v', 0xff };
	static const uint8_t e9[] = { 'v', 0xc3, 0xa9 };

	/* 22 three-byte characters: a "%.64s" would cut the last one. */
	long_id[0] = 0x0a;
	long_id[1] = 66;
	for (int i = 0; i < 22; i++)
		memcpy(long_id + 2 + 3 * i, "\xe2\x82\xac", 3);
	check_alive("nothing");
	raw_call("Prepare id \"a\\0b\"", RPC_M_PREPARE, nul_id,
	    sizeof(nul_id), STATUS_INVALID_ARGUMENT, "contains a NUL byte");
	raw_call("Status id \"a\\0b\"", RPC_M_STATUS, nul_id,
	    sizeof(nul_id), STATUS_INVALID_ARGUMENT, "contains a NUL byte");
	raw_call("Prepare id \\xff\\xfe", RPC_M_PREPARE, bad_id,
	    sizeof(bad_id), STATUS_INVALID_ARGUMENT, "not valid UTF-8");
	raw_call("Status id \\xff\\xfe", RPC_M_STATUS, bad_id,
	    sizeof(bad_id), STATUS_INVALID_ARGUMENT, "not valid UTF-8");
	raw_call("Cancel id of 22 euro signs", RPC_M_CANCEL, long_id,
	    sizeof(long_id), STATUS_INVALID_ARGUMENT, "\\xe2\\x82\\xac");
	raw_call("Watch id of 22 euro signs", RPC_M_WATCH, long_id,
	    sizeof(long_id), STATUS_INVALID_ARGUMENT, "\\xe2\\x82\\xac");
	/* Nothing called "a" was made from "a\0b". */
	raw_call("Status a", RPC_M_STATUS, "\x0a\x01" "a", 3, STATUS_NOT_FOUND,
	    "no migration 'a'");
	vmm_raw_attach(vmm_path, "Attach id \"a\\0b\"", a0b, sizeof(a0b),
	    "contains a NUL byte");
	vmm_raw_attach(vmm_path, "Attach id v\\xff", ff, sizeof(ff),
	    "not valid UTF-8");
	vmm_raw_attach(vmm_path, "Attach id v\\xc3\\xa9", e9, sizeof(e9),
	    "'v\\xc3\\xa9'");
	check_alive("bad ids");
	return failures == 0 ? 0 : 1;
}

/* Connects to "unix:PATH" or "tcp:HOST:PORT" (numeric IPv4). */
static int
conn_target(const char *target)
{
	int fd;

	if (strncmp(target, "unix:", 5) == 0) {
		sock_path = target + 5;
		return conn();
	}
	if (strncmp(target, "tcp:", 4) == 0) {
		struct sockaddr_in sin = { .sin_family = AF_INET };
		char host[64];
		uint16_t port;

		if (parse_hostport(target + 4, host, sizeof(host), &port) < 0 ||
		    inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
			fprintf(stderr, "bad target %s\n", target);
			exit(2);
		}
		sin.sin_port = htons(port);
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sin,
		    sizeof(sin)) < 0) {
			fprintf(stderr, "cannot connect to %s: %s\n", target,
			    strerror(errno));
			exit(1);
		}
		return fd;
	}
	fprintf(stderr, "bad target %s\n", target);
	exit(2);
}

/* --hold TARGET N SECS: opens N connections that send nothing and waits
 * up to SECS for the daemon to close every one (over budget: at once;
 * otherwise at the handshake or idle deadline). Prints what it saw; exit
 * 0 when all were closed in time. Plaintext on a TCP port is a peer that
 * never starts TLS. */
static int
hold_main(const char *target, int n, int secs)
{
	struct pollfd *pf = calloc((size_t)n, sizeof(*pf));
	uint64_t t0 = now_ns(), end = t0 + (uint64_t)secs * 1000000000ull;
	int open = n, frames = 0;

	for (int i = 0; i < n; i++) {
		pf[i].fd = conn_target(target);
		pf[i].events = POLLIN;
	}
	printf("holding %d idle connections to %s\n", n, target);
	fflush(stdout);
	while (open > 0 && now_ns() < end) {
		int left = (int)((end - now_ns()) / 1000000) + 1;

		if (poll(pf, (nfds_t)n, left) <= 0)
			continue;
		for (int i = 0; i < n; i++) {
			char buf[4096];
			ssize_t r;

			if (pf[i].fd < 0 || pf[i].revents == 0)
				continue;
			if ((r = recv(pf[i].fd, buf, sizeof(buf), 0)) > 0) {
				frames++;
				continue;
			}
			close(pf[i].fd);
			pf[i].fd = -1;
			open--;
		}
	}
	printf("%d of %d closed by the daemon after %.1f s (%d reads with "
	    "data)\n", n - open, n, (double)(now_ns() - t0) / 1e9, frames);
	for (int i = 0; i < n; i++)
		if (pf[i].fd >= 0)
			close(pf[i].fd);
	free(pf);
	return open == 0 ? 0 : 1;
}

/* --zero-len SOCKET: a bare 4-byte length of 0 is answered with an
 * INVALID_ARGUMENT error and the connection closed within a second. */
static int
zero_len_main(void)
{
	static const uint8_t zero[4];
	struct rpc_hdr h;
	char msg[512];
	uint32_t code;
	int fd = conn(), r;
	uint64_t t0 = now_ns();

	send_all(fd, zero, sizeof(zero));
	r = recv_status(fd, &h, &code, msg, sizeof(msg));
	if (r < 0 || h.kind != RPC_ERROR || code != STATUS_INVALID_ARGUMENT)
		fail("length 0: no INVALID_ARGUMENT error frame (%s)",
		    strerror(-r));
	else if (now_ns() - t0 > 1000000000ull)
		fail("length 0: answered after %.1f s, not at once",
		    (double)(now_ns() - t0) / 1e9);
	else if (!expect_closed(fd))
		fail("length 0: connection not closed");
	else
		printf("ok: a bare length of 0 -> %s, closed (%s)\n",
		    status_name(code), msg);
	close(fd);
	check_alive("a bare length of 0");
	return failures == 0 ? 0 : 1;
}

/* Expects EOF (after optional answers) within the timeout. */
static bool
expect_closed(int fd)
{
	struct rpc_hdr h;
	uint32_t code;
	int r;

	while ((r = recv_answer(fd, &h, &code)) == 0)
		;
	return r == -ECONNRESET;
}

static bool
version_ok(int fd)
{
	Pcd__VersionRequest req = PCD__VERSION_REQUEST__INIT;
	uint8_t *buf;
	size_t n;
	struct rpc_hdr h;
	uint32_t code;

	if (rpc_frame_pack(RPC_REQUEST, 0, 4242, RPC_M_VERSION, &req.base,
	    &buf, &n) < 0)
		return false;
	send_all(fd, buf, n);
	free(buf);
	return recv_answer(fd, &h, &code) == 0 && h.kind == RPC_REPLY &&
	    h.call_id == 4242 && code == 0;
}

static void
check_alive(const char *after)
{
	int fd = conn();

	if (!version_ok(fd))
		fail("daemon does not answer Version after %s", after);
	close(fd);
}

/* A frame that closes the connection: ERROR with call id 0, then EOF. */
static void
closing_case(const char *what, const uint8_t hdr[RPC_HDR_SIZE])
{
	struct rpc_hdr h;
	uint32_t code;
	int fd = conn();

	send_all(fd, hdr, RPC_HDR_SIZE);
	if (recv_answer(fd, &h, &code) < 0 || h.kind != RPC_ERROR ||
	    h.call_id != 0 || code != STATUS_INVALID_ARGUMENT)
		fail("%s: no INVALID_ARGUMENT error frame", what);
	else if (!expect_closed(fd))
		fail("%s: connection not closed", what);
	else
		printf("ok: %s -> INVALID_ARGUMENT, closed\n", what);
	close(fd);
	check_alive(what);
}

/* An error that leaves the connection usable. */
static void
staying_case(const char *what, uint8_t version, uint8_t kind,
    uint16_t method, uint16_t reserved, const void *p, size_t n,
    uint32_t want)
{
	struct rpc_hdr h;
	uint32_t code;
	int fd = conn();

	send_frame(fd, version, kind, 77, method, reserved, p, n);
	if (recv_answer(fd, &h, &code) < 0 || h.kind != RPC_ERROR ||
	    h.call_id != 77 || code != want || !(h.flags & RPC_F_END_STREAM))
		fail("%s: expected error %s on call 77", what,
		    status_name(want));
	else if (!version_ok(fd))
		fail("%s: connection unusable afterwards", what);
	else
		printf("ok: %s -> %s, connection still serves\n", what,
		    status_name(want));
	close(fd);
}

int
main(int argc, char **argv)
{
	uint8_t hb[RPC_HDR_SIZE];
	struct rpc_hdr h = { .version = RPC_VERSION, .kind = RPC_REQUEST,
	    .method = RPC_M_VERSION };
	static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	    0xff, 0xff, 0xff, 0xff, 0x01 };
	const char *watch_id;
	struct rpc_hdr ah;
	uint32_t code;
	int fd;

	/* --emfile SOCKET N: hold N connections for a while (more than the
	 * daemon has file descriptors), then check it serves again. */
	if (argc == 4 && strcmp(argv[1], "--emfile") == 0) {
		int n = atoi(argv[3]), *fds = calloc((size_t)n, sizeof(int));

		sock_path = argv[2];
		for (int i = 0; i < n; i++)
			fds[i] = conn();
		usleep(1500000);
		for (int i = 0; i < n; i++)
			close(fds[i]);
		free(fds);
		usleep(1500000);
		check_alive("running out of file descriptors");
		if (failures == 0)
			printf("ok: %d connections held past the fd limit, "
			    "daemon serves again\n", n);
		return failures == 0 ? 0 : 1;
	}
	if (argc == 5 && strcmp(argv[1], "--hold") == 0)
		return hold_main(argv[2], atoi(argv[3]), atoi(argv[4]));
	if (argc == 3 && strcmp(argv[1], "--zero-len") == 0) {
		sock_path = argv[2];
		return zero_len_main();
	}
	if (argc == 4 && strcmp(argv[1], "--ids") == 0) {
		sock_path = argv[2];
		return ids_main(argv[3]);
	}
	if (argc != 4) {
		fprintf(stderr, "usage: ctl_rawframe SOCKET MIGRATION_ID "
		    "MAX_CONNECTIONS\n");
		return 2;
	}
	sock_path = argv[1];
	watch_id = argv[2];
	check_alive("nothing");

	h.len = 0x7fffffff;
	rpc_hdr_encode(hb, &h);
	closing_case("length 2 GiB", hb);
	h.len = RPC_MAX_FRAME_DEFAULT + 1;
	rpc_hdr_encode(hb, &h);
	closing_case("length max_frame + 1", hb);
	h.len = 3;
	rpc_hdr_encode(hb, &h);
	closing_case("length 3 (below the envelope)", hb);
	h.len = RPC_ENVELOPE_SIZE;
	h.version = 9;
	rpc_hdr_encode(hb, &h);
	closing_case("version 9", hb);

	staying_case("unknown method 999", RPC_VERSION, RPC_REQUEST, 999, 0,
	    NULL, 0, STATUS_UNIMPLEMENTED);
	staying_case("Status payload that does not unpack", RPC_VERSION,
	    RPC_REQUEST, RPC_M_STATUS, 0, junk, sizeof(junk),
	    STATUS_INVALID_ARGUMENT);
	staying_case("Prepare payload that does not unpack", RPC_VERSION,
	    RPC_REQUEST, RPC_M_PREPARE, 0, junk, sizeof(junk),
	    STATUS_INVALID_ARGUMENT);
	staying_case("kind REPLY from a client", RPC_VERSION, RPC_REPLY,
	    RPC_M_VERSION, 0, NULL, 0, STATUS_INVALID_ARGUMENT);
	staying_case("reserved field set", RPC_VERSION, RPC_REQUEST,
	    RPC_M_VERSION, 1, NULL, 0, STATUS_INVALID_ARGUMENT);

	/* A frame cut in the middle, then the peer goes away. */
	fd = conn();
	h.version = RPC_VERSION;
	h.len = RPC_ENVELOPE_SIZE + 100;
	rpc_hdr_encode(hb, &h);
	send_all(fd, hb, sizeof(hb));
	send_all(fd, junk, 5);
	close(fd);
	check_alive("a half-sent frame");
	printf("ok: half-sent frame, peer gone\n");

	/* 200 requests in one write: 200 answers, in order of call id. */
	{
		Pcd__VersionRequest vr = PCD__VERSION_REQUEST__INIT;
		uint8_t *all = NULL, *one;
		size_t total = 0, n;
		int got = 0;

		for (uint32_t i = 1; i <= 200; i++) {
			rpc_frame_pack(RPC_REQUEST, 0, i, RPC_M_VERSION,
			    &vr.base, &one, &n);
			all = realloc(all, total + n);
			memcpy(all + total, one, n);
			total += n;
			free(one);
		}
		fd = conn();
		send_all(fd, all, total);
		free(all);
		while (got < 200 && recv_answer(fd, &ah, &code) == 0 &&
		    ah.call_id == (uint32_t)got + 1 && code == 0)
			got++;
		if (got != 200)
			fail("pipelined: %d of 200 answers", got);
		else
			printf("ok: 200 pipelined calls answered in order\n");
		close(fd);
	}

	/* Random frames: well-formed headers, random methods and payloads.
	 * Every one gets an answer (REPLY, EVENT or ERROR); none kills. */
	{
		unsigned seed = 12345;
		int answered = 0, sent = 0;

		fd = conn();
		for (int i = 0; i < 300; i++) {
			uint8_t p[64];
			size_t n = (size_t)(rand_r(&seed) % sizeof(p));
			uint16_t method = (uint16_t)(rand_r(&seed) % 10);

			if (method == RPC_M_WATCH || method == RPC_M_PREPARE ||
			    method == RPC_M_MIGRATE || method == RPC_M_CANCEL)
				method = RPC_M_STATUS;	/* no side effects */
			for (size_t k = 0; k < n; k++)
				p[k] = (uint8_t)rand_r(&seed);
			send_frame(fd, RPC_VERSION, RPC_REQUEST, (uint32_t)i + 1,
			    method, 0, p, n);
			sent++;
			if (recv_answer(fd, &ah, &code) == 0 &&
			    ah.call_id == (uint32_t)i + 1)
				answered++;
		}
		if (answered != sent)
			fail("random frames: %d of %d answered", answered, sent);
		else
			printf("ok: %d random frames answered\n", sent);
		close(fd);
	}

	/* Calls in flight: watches stay open; one past max_inflight (16
	 * by default) is refused, the connection keeps serving. */
	{
		Pcd__WatchRequest wr = PCD__WATCH_REQUEST__INIT;
		uint8_t *buf;
		size_t n;
		int refused = 0, i;

		wr.id = (char *)watch_id;
		wr.interval_ms = 60000;
		fd = conn();
		for (i = 1; i <= 17; i++) {
			rpc_frame_pack(RPC_REQUEST, 0, (uint32_t)i,
			    RPC_M_WATCH, &wr.base, &buf, &n);
			send_all(fd, buf, n);
			free(buf);
		}
		/* 16 first events and one refusal, in some order. */
		for (i = 0; i < 17; i++) {
			if (recv_answer(fd, &ah, &code) < 0)
				break;
			if (ah.kind == RPC_ERROR &&
			    code == STATUS_RESOURCE_EXHAUSTED && ah.call_id == 17)
				refused++;
		}
		if (refused != 1)
			fail("17th watch not refused with RESOURCE_EXHAUSTED");
		else
			printf("ok: 17 watches -> the 17th RESOURCE_EXHAUSTED\n");
		close(fd);
	}

	/* Connections beyond max_connections (plus the 4 kept for root and
	 * the daemon's own user, which this test runs as) are closed at
	 * once; the ones within the limit keep serving. */
	{
		int maxc = atoi(argv[3]) + 4, fds[64], n = 0, extra;

		usleep(200000);		/* let the daemon see earlier closes */
		for (; n < maxc && n < 64; n++)
			fds[n] = conn();
		for (int i = 0; i < n; i++)
			if (!version_ok(fds[i]))
				fail("connection %d of %d not served", i + 1, n);
		extra = conn();
		if (!expect_closed(extra))
			fail("connection %d beyond max_connections not closed",
			    maxc + 1);
		else
			printf("ok: connection %d beyond max_connections "
			    "closed, %d served\n", maxc + 1, n);
		close(extra);
		for (int i = 0; i < n; i++)
			close(fds[i]);
		usleep(200000);
	}

	check_alive("everything");
	if (failures == 0)
		printf("ok: daemon still serving\n");
	return failures == 0 ? 0 : 1;
}
