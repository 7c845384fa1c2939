/* test_vmm_attach.c - the VMM attach socket against real descriptors.
 *
 * A real vmm_server runs on its own libevent loop (a thread of this
 * program) with vmm_ops of this test. The main thread plays VMMs through
 * libpcvmm (and raw frames for what the library will not send): every bad
 * attach must be refused with a message naming the problem, and after each
 * one the server must still accept a good attach. A good attach must
 * deliver descriptors that really are the VMM's memfd and userfaultfd, and
 * the pause / paused / resume / complete / detach sequence must carry the
 * device state.
 *
 * With --huge (run by tests/lib/hugepages.sh, which reserves a few 2 MiB
 * huge pages) it checks huge-page guests instead: hugetlbfs memfds claimed
 * with the wrong page size, misaligned layouts, a good 2 MiB attach, and a
 * daemon whose data path cannot carry huge pages refusing it.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/memfd.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "dirty.h"
#include "log.h"
#include "pcvmm.h"
#include "probe.h"
#include "vmm.h"
#include "vmm.pb-c.h"
#include "testlib.h"

#define PS		4096u
#define HPS		(2u << 20)	/* 2 MiB huge pages */
#define GPS		(1u << 30)
#define MAGIC		0x5043564d4d414731ull	/* written into the memfd */
#define MAX_LIVE	16


/* ---- the daemon side: a tiny migration layer for the test ------------ */

struct live {
	struct vmm_session	*s;
	struct vmm_guest	 g;	/* with the delivered fds */
};

struct tstate {
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	struct event_base	*base;
	struct live		 live[MAX_LIVE];
	int			 nattached, ndetached;
	struct vmm_guest	 last;		/* fds -1 */
	bool			 last_memfd_ok, last_uffd_ok;
	bool			 last_dirty;	/* a tracker came along */
	char			 last_dirty_why[512];
	char			 state[64];	/* device state from Paused */
	size_t			 state_len;
	bool			 have_state;
	bool			 flow_done;
};

static struct live *
live_find(struct tstate *t, struct vmm_session *s)
{
	for (int i = 0; i < MAX_LIVE; i++)
		if (t->live[i].s == s)
			return &t->live[i];
	return NULL;
}

static struct live *
live_role(struct tstate *t, const char *id, enum mig_role role)
{
	for (int i = 0; i < MAX_LIVE; i++)
		if (t->live[i].s != NULL && t->live[i].g.role == role &&
		    strcmp(t->live[i].g.id, id) == 0)
			return &t->live[i];
	return NULL;
}

/* The flow: both VMMs of migration "flow" attached and the source paused:
 * hand the state to the destination, complete both. Loop thread. */
static void
flow_step(struct tstate *t)
{
	struct live *src = live_role(t, "flow", MIG_ROLE_SOURCE);
	struct live *dst = live_role(t, "flow", MIG_ROLE_DEST);

	if (src == NULL || dst == NULL || !t->have_state || t->flow_done)
		return;
	t->flow_done = true;
	CHECK(vmm_session_resume(dst->s, t->state, t->state_len) == 0, "resume");
	CHECK(vmm_session_complete(dst->s, true, "all pages mapped") == 0,
	    "complete dest");
	CHECK(vmm_session_complete(src->s, true, "guest released") == 0,
	    "complete source");
	/* Wrong-role and repeated requests are refused locally. */
	CHECK(vmm_session_pause(dst->s) == -EINVAL, "pause a destination");
	CHECK(vmm_session_resume(src->s, NULL, 0) == -EINVAL, "resume a source");
	CHECK(vmm_session_pause(src->s) == -EALREADY, "second pause");
}

static void
flow_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tstate *t = arg;

	pthread_mutex_lock(&t->mu);
	flow_step(t);
	pthread_mutex_unlock(&t->mu);
}

static int
t_attached(void *arg, struct vmm_session *s, struct vmm_guest *g, char *err,
    size_t errlen)
{
	struct tstate *t = arg;
	struct timeval now = { 0, 0 };
	uint64_t v = 0;
	char link[128] = "";
	char path[64];
	ssize_t n;
	int slot = -1;

	if (strcmp(g->id, "refuse-me") == 0) {
		snprintf(err, errlen, "no migration %s is prepared", g->id);
		return -ENOENT;
	}
	pthread_mutex_lock(&t->mu);
	for (int i = 0; i < MAX_LIVE; i++)
		if (t->live[i].s == NULL) {
			slot = i;
			break;
		}
	if (slot < 0) {
		pthread_mutex_unlock(&t->mu);
		snprintf(err, errlen, "test: too many sessions");
		return -ENOSPC;
	}
	t->live[slot].s = s;
	t->live[slot].g = *g;
	t->last = *g;
	t->last.memfd = t->last.uffd = -1;
	t->last_memfd_ok = g->memfd >= 0 &&
	    pread(g->memfd, &v, sizeof(v), (off_t)g->offset) == sizeof(v) &&
	    v == MAGIC;
	t->last_dirty = g->dirty != NULL;
	snprintf(t->last_dirty_why, sizeof(t->last_dirty_why), "%s",
	    g->dirty_why != NULL ? g->dirty_why : "");
	t->last_uffd_ok = false;
	if (g->uffd >= 0) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", g->uffd);
		n = readlink(path, link, sizeof(link) - 1);
		if (n > 0)
			link[n] = '\0';
		t->last_uffd_ok = strcmp(link, "anon_inode:[userfaultfd]") == 0;
	}
	t->nattached++;
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
	/* The source is paused from inside this callback (the request is
	 * held until the AttachReply is out); the destination's step runs
	 * later from the loop. */
	if (strcmp(g->id, "flow") == 0 && g->role == MIG_ROLE_SOURCE)
		CHECK(vmm_session_pause(s) == 0, "pause inside attached()");
	else if (strcmp(g->id, "flow") == 0)
		event_base_once(t->base, -1, EV_TIMEOUT, flow_cb, t, &now);
	return 0;
}

static void
t_paused(void *arg, struct vmm_session *s, const void *state, size_t len)
{
	struct tstate *t = arg;

	pthread_mutex_lock(&t->mu);
	t->state_len = len < sizeof(t->state) ? len : sizeof(t->state);
	memcpy(t->state, state, t->state_len);
	t->have_state = true;
	flow_step(t);
	pthread_mutex_unlock(&t->mu);
}

static void
t_detached(void *arg, struct vmm_session *s)
{
	struct tstate *t = arg;
	struct live *l;

	pthread_mutex_lock(&t->mu);
	if ((l = live_find(t, s)) != NULL) {
		if (l->g.memfd >= 0)
			close(l->g.memfd);
		if (l->g.uffd >= 0)
			close(l->g.uffd);
		memset(l, 0, sizeof(*l));
	}
	t->ndetached++;
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
}

static const struct vmm_ops t_ops = {
	.attached = t_attached,
	.paused = t_paused,
	.detached = t_detached,
	.huge_pages = VMM_CARRY_2M | VMM_CARRY_1G | VMM_CARRY_COPY_2M,
};

/* A migration layer whose data path moves base pages only. */
static const struct vmm_ops t_ops_nohuge = {
	.attached = t_attached,
	.paused = t_paused,
	.detached = t_detached,
};

static void *
loop_main(void *arg)
{
	struct tstate *t = arg;

	event_base_loop(t->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

/* Waits until ndetached reaches n (the server processed a detach). */
static bool
wait_detached(struct tstate *t, int n)
{
	struct timespec ts;
	bool ok = true;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5;
	pthread_mutex_lock(&t->mu);
	while (t->ndetached < n && ok)
		ok = pthread_cond_timedwait(&t->cv, &t->mu, &ts) == 0;
	ok = t->ndetached >= n;
	pthread_mutex_unlock(&t->mu);
	return ok;
}

/* ---- the VMM side ----------------------------------------------------- */

static const char *sock_path;

struct vmm {
	int	 memfd, uffd;
	void	*map;
	size_t	 size;
};

static void
vmm_make(struct vmm *v, size_t size, size_t memfd_size, bool uffd)
{
	uint64_t magic = MAGIC;

	v->size = size;
	v->memfd = memfd_create("test-guest", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (v->memfd < 0 || ftruncate(v->memfd, (off_t)memfd_size) < 0 ||
	    pwrite(v->memfd, &magic, sizeof(magic), 0) != sizeof(magic)) {
		perror("memfd");
		exit(1);
	}
	v->map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED,
	    v->memfd, 0);
	if (v->map == MAP_FAILED) {
		/* A memfd smaller than the layout: reserve the range anyway. */
		v->map = mmap(NULL, size, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	}
	v->uffd = -1;
	if (uffd) {
		struct uffdio_api api = { .api = UFFD_API,
		    .features = UFFD_FEATURE_MINOR_SHMEM |
		    UFFD_FEATURE_MISSING_SHMEM };
		v->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
		if (v->uffd < 0 || ioctl(v->uffd, UFFDIO_API, &api) < 0) {
			perror("userfaultfd");
			exit(1);
		}
	}
}

static void
vmm_free(struct vmm *v)
{
	munmap(v->map, v->size);
	close(v->memfd);
	if (v->uffd >= 0)
		close(v->uffd);
}

static struct pcvmm_attach_args
args_for(const struct vmm *v, const char *id, enum pcvmm_role role)
{
	struct pcvmm_attach_args a = {
		.socket_path = sock_path,
		.id = id,
		.role = role,
		.mode = PCVMM_MODE_MINOR,
		.base = v->map,
		.size = v->size,
		.offset = 0,
		.memfd = v->memfd,
		.uffd = role == PCVMM_ROLE_DEST ? v->uffd : -1,
		.connect_timeout_ms = 2000,
	};
	return a;
}

/* A good attach and detach: the server still serves. */
static void
still_serving(struct tstate *t, const char *after)
{
	static int seq;
	struct vmm v;
	struct pcvmm *p = NULL;
	struct pcvmm_attach_args a;
	char id[32], err[512];
	int before, r;

	snprintf(id, sizeof(id), "alive-%d", seq++);
	vmm_make(&v, 16 * PS, 16 * PS, false);
	a = args_for(&v, id, PCVMM_ROLE_SOURCE);
	r = pcvmm_attach(&a, &p, err, sizeof(err));
	CHECK(r == 0, "after %s, a good attach failed: %s", after, err);
	pthread_mutex_lock(&t->mu);
	before = t->ndetached;
	pthread_mutex_unlock(&t->mu);
	if (r == 0) {
		pcvmm_detach(p, "test done");
		CHECK(wait_detached(t, before + 1), "after %s: no detached "
		    "callback", after);
	}
	vmm_free(&v);
}

/* Attach with a, expect refusal rc and a message containing want. */
static void
expect_refused(struct tstate *t, const char *what,
    const struct pcvmm_attach_args *a, int rc, const char *want)
{
	struct pcvmm *p = NULL;
	char err[512] = "";
	int r;

	r = pcvmm_attach(a, &p, err, sizeof(err));
	CHECK(r == rc, "%s: attach returned %d (%s), want %d", what, r,
	    strerror(-r), rc);
	CHECK(strstr(err, want) != NULL, "%s: message \"%s\" lacks \"%s\"",
	    what, err, want);
	if (r == 0)
		pcvmm_detach(p, NULL);
	else
		printf("ok: %s refused: %s\n", what, err);
	still_serving(t, what);
}

/* Sends raw bytes, returns the AttachReply status message (or ""). */
static int
raw_exchange(const void *buf, size_t len, char *msg, size_t msglen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	uint8_t in[4096];
	size_t got = 0;
	int fd, code = -1;

	msg[0] = '\0';
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		perror("raw connect");
		exit(1);
	}
	if (write(fd, buf, len) != (ssize_t)len) {
		close(fd);
		return -1;
	}
	shutdown(fd, SHUT_WR);
	for (;;) {
		ssize_t n = read(fd, in + got, sizeof(in) - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (got >= 4) {
		uint32_t flen = in[0] | in[1] << 8 | in[2] << 16 |
		    (uint32_t)in[3] << 24;
		Pcd__VmmMessage *m = flen <= got - 4 ?
		    pcd__vmm_message__unpack(NULL, flen, in + 4) : NULL;
		if (m != NULL && m->body_case ==
		    PCD__VMM_MESSAGE__BODY_ATTACH_REPLY) {
			code = (int)m->attach_reply->status->code;
			snprintf(msg, msglen, "%s",
			    m->attach_reply->status->message);
		}
		if (m != NULL)
			pcd__vmm_message__free_unpacked(m, NULL);
	}
	return code;
}

static size_t
frame(uint8_t *out, const Pcd__VmmMessage *m)
{
	size_t len = pcd__vmm_message__get_packed_size(m);

	out[0] = len & 0xff;
	out[1] = (len >> 8) & 0xff;
	out[2] = (len >> 16) & 0xff;
	out[3] = (len >> 24) & 0xff;
	pcd__vmm_message__pack(m, out + 4);
	return len + 4;
}

static void
test_raw(struct tstate *t)
{
	Pcd__VmmMessage m = PCD__VMM_MESSAGE__INIT;
	Pcd__VmmAttach a = PCD__VMM_ATTACH__INIT;
	Pcd__VmmDetach d = PCD__VMM_DETACH__INIT;
	uint8_t buf[512];
	char msg[512];
	size_t n;
	int code;

	/* Wrong protocol version. */
	a.version = 99;
	a.id = (char *)"raw";
	a.role = PCD__VMM_ROLE__VMM_ROLE_SOURCE;
	a.base_addr = 0x10000000;
	a.size = 16 * PS;
	a.page_size = PS;
	m.body_case = PCD__VMM_MESSAGE__BODY_ATTACH;
	m.attach = &a;
	n = frame(buf, &m);
	code = raw_exchange(buf, n, msg, sizeof(msg));
	CHECK(code == 9 && strstr(msg, "protocol version 99") != NULL,
	    "version: code %d \"%s\"", code, msg);
	printf("ok: wrong version refused: %s\n", msg);
	still_serving(t, "wrong version");

	/* A mapping beyond the user address space (libpcvmm would fail
	 * to madvise it, so this one is sent raw). */
	a.version = VMM_PROTOCOL_VERSION;
	a.base_addr = 1ull << 60;
	n = frame(buf, &m);
	code = raw_exchange(buf, n, msg, sizeof(msg));
	CHECK(code == 3 && strstr(msg, "outside the user address space"),
	    "base beyond user space: code %d \"%s\"", code, msg);
	printf("ok: base beyond user space refused: %s\n", msg);
	still_serving(t, "base beyond user space");
	a.base_addr = 0x10000000;

	/* Right version but no descriptors. */
	a.version = VMM_PROTOCOL_VERSION;
	n = frame(buf, &m);
	code = raw_exchange(buf, n, msg, sizeof(msg));
	CHECK(code == 3 && strstr(msg, "expected 1 descriptor") != NULL,
	    "no fds: code %d \"%s\"", code, msg);
	printf("ok: attach without descriptors refused: %s\n", msg);
	still_serving(t, "no descriptors");

	/* dirty_tracking is for a source. */
	a.role = PCD__VMM_ROLE__VMM_ROLE_DEST;
	a.dirty_tracking = true;
	n = frame(buf, &m);
	code = raw_exchange(buf, n, msg, sizeof(msg));
	CHECK(code == 3 && strstr(msg, "dirty_tracking is for a source"),
	    "dest dirty_tracking: code %d \"%s\"", code, msg);
	printf("ok: dirty_tracking on a destination refused: %s\n", msg);
	a.role = PCD__VMM_ROLE__VMM_ROLE_SOURCE;
	/* ... and a source announcing it sends three descriptors. */
	n = frame(buf, &m);
	code = raw_exchange(buf, n, msg, sizeof(msg));
	CHECK(code == 3 && strstr(msg, "expected 3 descriptors (memfd, "
	    "userfaultfd, pagemap)"), "dirty no fds: code %d \"%s\"", code,
	    msg);
	a.dirty_tracking = false;
	still_serving(t, "dirty_tracking refusals");

	/* First message not an Attach. */
	m.body_case = PCD__VMM_MESSAGE__BODY_DETACH;
	m.detach = &d;
	n = frame(buf, &m);
	code = raw_exchange(buf, n, msg, sizeof(msg));
	CHECK(code == 9 && strstr(msg, "first message must be Attach"),
	    "detach first: code %d \"%s\"", code, msg);
	still_serving(t, "detach first");

	/* A frame length beyond the pre-attach cap. */
	memcpy(buf, "\xff\xff\xff\x7f", 4);
	code = raw_exchange(buf, 4, msg, sizeof(msg));
	CHECK(code == 3 && strstr(msg, "frame length") != NULL,
	    "huge frame: code %d \"%s\"", code, msg);
	printf("ok: oversized frame refused: %s\n", msg);
	still_serving(t, "oversized frame");

	/* Garbage that is not a protobuf message. */
	memcpy(buf, "\x08\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff", 12);
	code = raw_exchange(buf, 12, msg, sizeof(msg));
	CHECK(code == 3 && strstr(msg, "malformed") != NULL,
	    "garbage: code %d \"%s\"", code, msg);
	still_serving(t, "garbage");

	/* Connect and hang up at once. */
	code = raw_exchange(buf, 0, msg, sizeof(msg));
	still_serving(t, "hang-up");
}

static void
test_bad_attaches(struct tstate *t)
{
	struct pcvmm_attach_args a;
	struct vmm v, small;
	char path[] = "/tmp/test_vmm_attach.XXXXXX";
	int filefd, pipefd[2], evfd;
	char longid[80];

	vmm_make(&v, 64 * PS, 64 * PS, true);

	/* A regular file as guest memory. */
	filefd = mkstemp(path);
	CHECK(filefd >= 0 && ftruncate(filefd, 64 * PS) == 0, "tmpfile");
	unlink(path);
	a = args_for(&v, "m1", PCVMM_ROLE_SOURCE);
	a.memfd = filefd;
	expect_refused(t, "regular file as memfd", &a, -EINVAL,
	    "is not a memfd");
	/* A pipe as guest memory. */
	CHECK(pipe2(pipefd, O_CLOEXEC) == 0, "pipe");
	a.memfd = pipefd[0];
	expect_refused(t, "pipe as memfd", &a, -EINVAL, "is not a memfd");
	/* A pipe / eventfd / memfd as the userfaultfd. */
	a = args_for(&v, "m1", PCVMM_ROLE_DEST);
	a.uffd = pipefd[1];
	expect_refused(t, "pipe as uffd", &a, -EINVAL, "is not a userfaultfd");
	evfd = eventfd(0, EFD_CLOEXEC);
	a.uffd = evfd;
	expect_refused(t, "eventfd as uffd", &a, -EINVAL,
	    "is not a userfaultfd");
	a.uffd = v.memfd;
	expect_refused(t, "memfd as uffd", &a, -EINVAL, "is not a userfaultfd");
	/* Destination without its uffd. */
	a.uffd = -1;
	expect_refused(t, "destination without uffd", &a, -EINVAL,
	    "expected 2 descriptors");
	/* Source with a uffd. */
	a = args_for(&v, "m1", PCVMM_ROLE_SOURCE);
	a.uffd = v.uffd;
	expect_refused(t, "source with a uffd", &a, -EINVAL,
	    "expected 1 descriptor");

	/* A memfd smaller than the layout. */
	vmm_make(&small, 64 * PS, 16 * PS, false);
	a = args_for(&small, "m1", PCVMM_ROLE_SOURCE);
	expect_refused(t, "memfd smaller than layout", &a, -EINVAL,
	    "smaller than the layout");
	/* ... and a fitting memfd with an offset that runs past its end. */
	a = args_for(&v, "m1", PCVMM_ROLE_SOURCE);
	a.size = 48 * PS;
	a.offset = 32 * PS;
	expect_refused(t, "offset past memfd end", &a, -EINVAL,
	    "smaller than the layout");

	/* Alignment and sizes. */
	a = args_for(&v, "m1", PCVMM_ROLE_SOURCE);
	a.base = (char *)v.map + 100;
	expect_refused(t, "unaligned base", &a, -EINVAL, "base address");
	a = args_for(&v, "m1", PCVMM_ROLE_SOURCE);
	a.size = 16 * PS + 1;
	expect_refused(t, "unaligned size", &a, -EINVAL, "size 65537");
	a.size = 0;
	expect_refused(t, "zero size", &a, -EINVAL, "size 0");
	a = args_for(&v, "m1", PCVMM_ROLE_SOURCE);
	a.size = 16 * PS;
	a.offset = 100;
	expect_refused(t, "unaligned offset", &a, -EINVAL, "offset 100");
	a = args_for(&v, "m1", PCVMM_ROLE_SOURCE);
	a.page_size = 8192;
	expect_refused(t, "page size 8192", &a, -EINVAL, "page size 8192 is "
	    "not supported: want 4096 (this host's base page), 2097152 (2 MiB "
	    "huge pages) or 1073741824 (1 GiB huge pages)");

	/* Ids. */
	a = args_for(&v, "bad id!", PCVMM_ROLE_SOURCE);
	expect_refused(t, "bad id", &a, -EINVAL, "invalid migration id");
	memset(longid, 'x', 65);
	longid[65] = '\0';
	a.id = longid;
	expect_refused(t, "65-byte id", &a, -EINVAL, "invalid migration id");
	a.id = "";
	expect_refused(t, "empty id", &a, -EINVAL, "invalid migration id");

	/* Role and mode. */
	a = args_for(&v, "m1", (enum pcvmm_role)7);
	expect_refused(t, "bad role", &a, -EINVAL, "invalid role 7");
	a = args_for(&v, "m1", PCVMM_ROLE_SOURCE);
	a.mode = PCVMM_MODE_COPY;
	expect_refused(t, "COPY mode on a source", &a, -EINVAL,
	    "destination only");
	a = args_for(&v, "m1", PCVMM_ROLE_DEST);
	a.mode = PCVMM_MODE_COPY;
	a.memfd = -1;
	a.uffd = filefd;
	expect_refused(t, "COPY mode with a file as uffd", &a, -EINVAL,
	    "is not a userfaultfd");

	/* A write-sealed memfd cannot be a destination. */
	{
		struct vmm sealed;
		vmm_make(&sealed, 16 * PS, 16 * PS, true);
		munmap(sealed.map, sealed.size);	/* no writable mapping */
		CHECK(fcntl(sealed.memfd, F_ADD_SEALS, F_SEAL_WRITE) == 0,
		    "seal: %s", strerror(errno));
		sealed.map = mmap(NULL, sealed.size, PROT_READ, MAP_SHARED,
		    sealed.memfd, 0);
		a = args_for(&sealed, "m1", PCVMM_ROLE_DEST);
		expect_refused(t, "write-sealed memfd", &a, -EINVAL,
		    "write-sealed");
		vmm_free(&sealed);
	}

	/* A hugetlbfs memfd (when the kernel offers one). */
	{
		int hfd = memfd_create("test-huge", MFD_CLOEXEC | MFD_HUGETLB);
		if (hfd >= 0 && ftruncate(hfd, 2u << 20) == 0) {
			a = args_for(&v, "m1", PCVMM_ROLE_SOURCE);
			a.memfd = hfd;
			a.size = 16 * PS;
			a.page_size = PS;	/* libpcvmm would say 2 MiB */
			expect_refused(t, "hugetlbfs memfd", &a, -EINVAL,
			    "memfd is hugetlbfs with 2 MiB pages, but the "
			    "attach declares 4 KiB base pages");
		} else
			printf("skip: no hugetlbfs memfd here (%s)\n",
			    strerror(errno));
		if (hfd >= 0)
			close(hfd);
	}

	/* The migration layer refuses. */
	a = args_for(&v, "refuse-me", PCVMM_ROLE_SOURCE);
	expect_refused(t, "refused by the migration layer", &a, -ENOENT,
	    "no migration refuse-me is prepared");

	close(filefd);
	close(pipefd[0]);
	close(pipefd[1]);
	close(evfd);
	vmm_free(&small);
	vmm_free(&v);
}

static void
test_duplicate(struct tstate *t)
{
	struct pcvmm_attach_args a;
	struct pcvmm *p1 = NULL, *p2 = NULL;
	struct vmm v;
	char err[512];
	int r;

	vmm_make(&v, 16 * PS, 16 * PS, true);
	a = args_for(&v, "dup", PCVMM_ROLE_SOURCE);
	r = pcvmm_attach(&a, &p1, err, sizeof(err));
	CHECK(r == 0, "first attach: %s", err);
	expect_refused(t, "duplicate source attach", &a, -EEXIST,
	    "already has a source VMM attached");
	/* The other role of the same id is fine. */
	a = args_for(&v, "dup", PCVMM_ROLE_DEST);
	r = pcvmm_attach(&a, &p2, err, sizeof(err));
	CHECK(r == 0, "dest attach of dup: %s", err);
	pcvmm_detach(p2, NULL);
	pcvmm_detach(p1, NULL);
	vmm_free(&v);
}

static void
test_good_and_flow(struct tstate *t)
{
	struct pcvmm_attach_args a;
	struct pcvmm *src = NULL, *dst = NULL;
	struct pcvmm_event ev;
	struct vmm vs, vd;
	const char state[] = "device-state-0123456789";
	char err[512];
	uint64_t magic = MAGIC;
	int r, before;

	/* Source with a memfd offset: the delivered fd must be the memfd
	 * (the magic is read back through it at the offset). */
	vmm_make(&vs, 32 * PS, 64 * PS, false);
	CHECK(pwrite(vs.memfd, &magic, sizeof(magic), 32 * PS) == 8, "pwrite");
	munmap(vs.map, vs.size);
	vs.map = mmap(NULL, vs.size, PROT_READ | PROT_WRITE, MAP_SHARED,
	    vs.memfd, 32 * PS);
	a = args_for(&vs, "flow", PCVMM_ROLE_SOURCE);
	a.offset = 32 * PS;
	r = pcvmm_attach(&a, &src, err, sizeof(err));
	CHECK(r == 0, "source attach: %s", err);
	pthread_mutex_lock(&t->mu);
	CHECK(t->last_memfd_ok, "source memfd not delivered intact");
	CHECK(t->last.base == (uint64_t)(uintptr_t)vs.map &&
	    t->last.size == vs.size && t->last.offset == 32 * PS &&
	    t->last.page_size == PS && t->last.role == MIG_ROLE_SOURCE &&
	    t->last.mode == VMM_MODE_MINOR && t->last.pid == getpid() &&
	    t->last.uid == getuid(), "source layout");
	pthread_mutex_unlock(&t->mu);
	if (r != 0)
		return;
	r = pcvmm_next_event(src, 5000, &ev);
	CHECK(r == 0 && ev.type == PCVMM_EV_PAUSE, "pause: r=%d type=%d", r,
	    ev.type);
	CHECK(pcvmm_send_paused(src, state, sizeof(state)) == 0, "paused");

	vmm_make(&vd, 32 * PS, 32 * PS, true);
	a = args_for(&vd, "flow", PCVMM_ROLE_DEST);
	r = pcvmm_attach(&a, &dst, err, sizeof(err));
	CHECK(r == 0, "dest attach: %s", err);
	pthread_mutex_lock(&t->mu);
	CHECK(t->last_memfd_ok && t->last_uffd_ok, "dest fds not delivered");
	CHECK(t->last.role == MIG_ROLE_DEST, "dest role");
	pthread_mutex_unlock(&t->mu);
	if (r == 0) {
		r = pcvmm_next_event(dst, 5000, &ev);
		CHECK(r == 0 && ev.type == PCVMM_EV_RESUME &&
		    ev.state_len == sizeof(state) &&
		    memcmp(ev.state, state, sizeof(state)) == 0,
		    "resume with state: r=%d type=%d len=%zu", r, ev.type,
		    ev.state_len);
		pcvmm_event_clear(&ev);
		r = pcvmm_next_event(dst, 5000, &ev);
		CHECK(r == 0 && ev.type == PCVMM_EV_COMPLETE && ev.ok &&
		    strcmp(ev.message, "all pages mapped") == 0,
		    "dest complete: r=%d", r);
		/* Nothing more is pending. */
		CHECK(pcvmm_next_event(dst, 0, &ev) == -EAGAIN, "no more");
	}
	r = pcvmm_next_event(src, 5000, &ev);
	CHECK(r == 0 && ev.type == PCVMM_EV_COMPLETE && ev.ok, "src complete");
	printf("ok: pause/paused/resume/complete carried %zu bytes of state\n",
	    sizeof(state));

	/* A second Paused is a protocol error: the daemon drops the VMM
	 * (calling detached) and says so by closing. */
	pthread_mutex_lock(&t->mu);
	before = t->ndetached;
	pthread_mutex_unlock(&t->mu);
	CHECK(pcvmm_send_paused(src, NULL, 0) == 0, "second paused");
	CHECK(wait_detached(t, before + 1), "unexpected Paused not dropped");
	CHECK(pcvmm_next_event(src, 5000, &ev) == -ECONNRESET,
	    "closed after protocol error");
	pcvmm_detach(src, NULL);
	before = t->ndetached;
	pcvmm_detach(dst, "done");
	CHECK(wait_detached(t, before + 1), "dest detach");
	vmm_free(&vs);
	vmm_free(&vd);
	still_serving(t, "the flow");
}


/* Precopy's descriptors: a source sending its userfaultfd and pagemap
 * gets a working tracker (the session keeps it; detaching removes the
 * protection); one without gets postcopy-only, said plainly; descriptors
 * that do not fit are refused, naming the problem. */
static void
test_dirty_attach(struct tstate *t)
{
	struct pcvmm_attach_args a;
	struct pcvmm *p = NULL;
	struct live *l;
	struct dirty *d = NULL;
	struct vmm v;
	char err[512], why[256];
	uint64_t bits = 0, n = 0;
	int r, before, uffd, pagemap, efd;
	pid_t child;

	if (dirty_selftest(why, sizeof(why)) < 0) {
		printf("note: dirty-tracking attach not tested: %s\n", why);
		return;
	}
	vmm_make(&v, 16 * PS, 16 * PS, false);
	memset(v.map, 1, 16 * PS);
	CHECK(pcvmm_dirty_fds_open(&uffd, &pagemap, err, sizeof(err)) == 0,
	    "pcvmm_dirty_fds_open: %s", err);
	a = args_for(&v, "dirty", PCVMM_ROLE_SOURCE);
	a.track_dirty = true;
	a.uffd = uffd;
	a.pagemap_fd = pagemap;
	r = pcvmm_attach(&a, &p, err, sizeof(err));
	CHECK(r == 0, "source attach with dirty tracking: %s", err);
	pthread_mutex_lock(&t->mu);
	CHECK(t->last_dirty && t->last_dirty_why[0] == '\0',
	    "no tracker delivered: %s", t->last_dirty_why);
	l = live_role(t, "dirty", MIG_ROLE_SOURCE);
	if (l != NULL)
		d = vmm_session_dirty(l->s);
	pthread_mutex_unlock(&t->mu);
	CHECK(d != NULL, "the session kept no tracker");
	CHECK(testlib_vmflag(v.map, "uw") == 1, "guest mapping not registered for WP");
	if (d != NULL) {
		CHECK(dirty_start(d) == 0, "dirty_start");
		((char *)v.map)[3 * PS] = 3;
		((char *)v.map)[9 * PS + 5] = 9;
		CHECK(dirty_scan(d, &bits, &n) == 0 && n == 2 &&
		    bits == (1u << 3 | 1u << 9), "scan: pages 0x%llx (%llu)",
		    (unsigned long long)bits, (unsigned long long)n);
		printf("ok: dirty tracking through the attached descriptors: "
		    "pages 0x%llx\n", (unsigned long long)bits);
	}
	pthread_mutex_lock(&t->mu);
	before = t->ndetached;
	pthread_mutex_unlock(&t->mu);
	if (r == 0)
		pcvmm_detach(p, "done");
	CHECK(wait_detached(t, before + 1), "dirty: detach");
	/* The session closes its tracker right after the detached()
	 * callback, on the loop thread: give it a moment. */
	for (int i = 0; i < 200 && testlib_vmflag(v.map, "uw") != 0; i++)
		usleep(10000);
	CHECK(testlib_vmflag(v.map, "uw") == 0, "detach left the guest registered");
	((char *)v.map)[4 * PS] = 4;	/* and it can still write */
	printf("ok: detaching removed the write protection\n");

	/* A VMM that sends none: postcopy-only, said so. */
	a = args_for(&v, "no-dirty", PCVMM_ROLE_SOURCE);
	r = pcvmm_attach(&a, &p, err, sizeof(err));
	CHECK(r == 0, "source attach without: %s", err);
	pthread_mutex_lock(&t->mu);
	CHECK(!t->last_dirty && strstr(t->last_dirty_why, "postcopy-only") &&
	    strstr(t->last_dirty_why, "older VMM"), "why: %s",
	    t->last_dirty_why);
	printf("ok: without them: %s\n", t->last_dirty_why);
	pthread_mutex_unlock(&t->mu);
	if (r == 0)
		pcvmm_detach(p, NULL);

	/* The third descriptor is not a pagemap. */
	efd = eventfd(0, EFD_CLOEXEC);
	a = args_for(&v, "dirty-bad", PCVMM_ROLE_SOURCE);
	a.track_dirty = true;
	a.uffd = uffd;
	a.pagemap_fd = efd;
	expect_refused(t, "eventfd as pagemap", &a, -EINVAL,
	    "third descriptor is not a pagemap");
	/* Another process's pagemap. */
	if ((child = fork()) == 0) {
		pause();
		_exit(0);
	}
	snprintf(why, sizeof(why), "/proc/%d/pagemap", (int)child);
	close(efd);
	efd = open(why, O_RDONLY | O_CLOEXEC);
	CHECK(efd >= 0, "open %s", why);
	a.pagemap_fd = efd;
	expect_refused(t, "another process's pagemap", &a, -EINVAL,
	    "the pagemap is not the same process as the userfaultfd");
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	/* Without the uffd: refused by the library before connecting. */
	a.uffd = -1;
	r = pcvmm_attach(&a, &p, err, sizeof(err));
	CHECK(r == -EINVAL && strstr(err, "track_dirty needs"), "no uffd: %s",
	    err);
	close(efd);
	close(uffd);
	close(pagemap);
	vmm_free(&v);
}

static void
test_retry_connect(struct tstate *t, const char *dir)
{
	/* No daemon at this path: attach retries, then names the socket. */
	struct pcvmm_attach_args a;
	struct pcvmm *p = NULL;
	struct vmm v;
	char path[512], err[512];
	struct timespec t0, t1;
	double ms;
	int r;

	snprintf(path, sizeof(path), "%s/absent.sock", dir);
	vmm_make(&v, 16 * PS, 16 * PS, false);
	a = args_for(&v, "x", PCVMM_ROLE_SOURCE);
	a.socket_path = path;
	a.connect_timeout_ms = 300;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r = pcvmm_attach(&a, &p, err, sizeof(err));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
	CHECK(r == -ENOENT && strstr(err, path) != NULL, "absent: %d %s", r,
	    err);
	CHECK(ms >= 250 && ms < 2000, "retried for %.0f ms", ms);
	vmm_free(&v);
}

/* ---- huge pages (--huge) ---------------------------------------------- */

/* A hugetlbfs memfd of len bytes with 2 MiB pages (none allocated yet). */
static int
huge_memfd(size_t len)
{
	int fd = memfd_create("test-huge", MFD_CLOEXEC | MFD_HUGETLB |
	    MFD_HUGE_2MB);

	if (fd < 0 || ftruncate(fd, (off_t)len) < 0) {
		perror("hugetlbfs memfd");
		exit(1);
	}
	return fd;
}

static int
huge_uffd(void)
{
	struct uffdio_api api = { .api = UFFD_API,
	    .features = UFFD_FEATURE_MINOR_HUGETLBFS |
	    UFFD_FEATURE_MISSING_HUGETLBFS };
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0 || ioctl(fd, UFFDIO_API, &api) < 0) {
		perror("userfaultfd with the hugetlbfs features");
		exit(1);
	}
	return fd;
}

/* len bytes of address space aligned to align, reserved (PROT_NONE): a
 * layout can point there without a mapping of that page size. */
static void *
aligned_range(size_t len, size_t align, void **res, size_t *reslen)
{
	*reslen = len + align;
	*res = mmap(NULL, *reslen, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS |
	    MAP_NORESERVE, -1, 0);
	if (*res == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	return (void *)(((uintptr_t)*res + align - 1) & ~(uintptr_t)(align - 1));
}

static struct pcvmm_attach_args
huge_args(const char *id, enum pcvmm_role role, void *base, size_t size,
    uint32_t page_size, int memfd, int uffd)
{
	struct pcvmm_attach_args a = {
		.socket_path = sock_path, .id = id, .role = role,
		.mode = PCVMM_MODE_MINOR, .base = base, .size = size,
		.page_size = page_size, .memfd = memfd,
		.uffd = role == PCVMM_ROLE_DEST ? uffd : -1,
		.connect_timeout_ms = 2000,
	};
	return a;
}

/* Mismatches between the declared page size, the memfd and the layout. */
static void
test_huge_refused(struct tstate *t, int hfd, int uffd, void *base)
{
	struct pcvmm_attach_args a;
	void *gres, *gbase;
	size_t greslen;
	int sfd, gfd;
	char want[160];

	a = huge_args("h1", PCVMM_ROLE_SOURCE, base, 4 * HPS, PS, hfd, -1);
	expect_refused(t, "2 MiB hugetlbfs memfd declared as 4 KiB pages", &a,
	    -EINVAL, "memfd is hugetlbfs with 2 MiB pages, but the attach "
	    "declares 4 KiB base pages (page size 4096): declare page size "
	    "2097152");
	a.role = PCVMM_ROLE_DEST;
	a.uffd = uffd;
	expect_refused(t, "... as a destination", &a, -EINVAL,
	    "memfd is hugetlbfs with 2 MiB pages");

	sfd = memfd_create("test-shmem", MFD_CLOEXEC);
	CHECK(sfd >= 0 && ftruncate(sfd, 8 * HPS) == 0, "shmem memfd");
	a = huge_args("h1", PCVMM_ROLE_SOURCE, base, 4 * HPS, HPS, sfd, -1);
	expect_refused(t, "4 KiB shmem memfd declared as 2 MiB pages", &a,
	    -EINVAL, "the attach declares 2 MiB huge pages (page size "
	    "2097152), but the memfd is not hugetlbfs (it has 4 KiB pages)");

	a = huge_args("h1", PCVMM_ROLE_SOURCE, base, 3 * HPS / 2, HPS, hfd, -1);
	expect_refused(t, "size 3 MiB with 2 MiB pages", &a, -EINVAL,
	    "size 3145728 is not a non-zero multiple of the page size 2097152");
	a.size = 4 * HPS;
	a.offset = PS;
	expect_refused(t, "offset 4 KiB with 2 MiB pages", &a, -EINVAL,
	    "memfd offset 4096 is not a multiple of the page size 2097152");
	a.offset = 0;
	a.base = (char *)base + PS;
	snprintf(want, sizeof(want), "base address %p is not a non-zero "
	    "multiple of the page size 2097152", a.base);
	expect_refused(t, "base 4 KiB past a 2 MiB boundary", &a, -EINVAL,
	    want);

	/* 1 GiB declared for a memfd of 2 MiB pages (nothing allocated). */
	gbase = aligned_range(GPS, GPS, &gres, &greslen);
	gfd = huge_memfd(GPS);
	a = huge_args("h1", PCVMM_ROLE_SOURCE, gbase, GPS, GPS, gfd, -1);
	expect_refused(t, "2 MiB hugetlbfs memfd declared as 1 GiB pages", &a,
	    -EINVAL, "memfd has 2 MiB huge pages, but the attach declares "
	    "page size 1073741824 (1 GiB)");

	close(gfd);
	close(sfd);
	munmap(gres, greslen);
}

/* A good 2 MiB guest (page size left to libpcvmm, mapped at a memfd
 * offset) is attached by a daemon that carries huge pages, and refused
 * by one that does not. */
static void
test_huge_good(struct tstate *t, int hfd, int uffd, const char *nohuge)
{
	struct pcvmm_attach_args a;
	struct pcvmm *p = NULL;
	uint64_t magic = MAGIC;
	char err[512] = "";
	void *map;
	int before, r;

	map = mmap(NULL, 2 * HPS, PROT_READ | PROT_WRITE, MAP_SHARED, hfd,
	    2 * HPS);
	if (map == MAP_FAILED) {
		CHECK(0, "mapping 2 huge pages: %s", strerror(errno));
		return;
	}
	memcpy(map, &magic, sizeof(magic));
	for (int role = PCVMM_ROLE_SOURCE; role <= PCVMM_ROLE_DEST; role++) {
		a = huge_args("huge", role, map, 2 * HPS, 0, hfd, uffd);
		a.offset = 2 * HPS;
		r = pcvmm_attach(&a, &p, err, sizeof(err));
		CHECK(r == 0, "2 MiB guest attach (role %d): %s", role, err);
		pthread_mutex_lock(&t->mu);
		CHECK(r != 0 || (t->last.page_size == HPS &&
		    t->last.size == 2 * HPS && t->last.offset == 2 * HPS &&
		    t->last_memfd_ok && (role == PCVMM_ROLE_SOURCE ||
		    t->last_uffd_ok)), "2 MiB guest layout (role %d): page "
		    "size %u, memfd %s", role, t->last.page_size,
		    t->last_memfd_ok ? "ok" : "not delivered");
		before = t->ndetached;
		pthread_mutex_unlock(&t->mu);
		if (r == 0) {
			printf("ok: 2 MiB guest attached (%s, page size %u "
			    "found by libpcvmm)\n", role == PCVMM_ROLE_SOURCE ?
			    "source" : "destination", t->last.page_size);
			pcvmm_detach(p, "test done");
			CHECK(wait_detached(t, before + 1), "huge detach");
		}
	}

	a = huge_args("huge", PCVMM_ROLE_DEST, map, 2 * HPS, HPS, hfd, uffd);
	a.offset = 2 * HPS;
	a.socket_path = nohuge;
	r = pcvmm_attach(&a, &p, err, sizeof(err));
	CHECK(r == -EOPNOTSUPP && strstr(err, "the guest's 2 MiB huge pages "
	    "are valid, but this daemon's data path cannot migrate 2 MiB "
	    "huge-page guests") != NULL, "a daemon without huge pages: %d %s",
	    r, err);
	if (r == 0)
		pcvmm_detach(p, NULL);
	else
		printf("ok: huge pages refused by a base-page data path: %s\n",
		    err);
	munmap(map, 2 * HPS);
}

/* A userfaultfd for COPY mode on anonymous huge pages. */
static int
copy_uffd(void)
{
	struct uffdio_api api = { .api = UFFD_API,
	    .features = UFFD_FEATURE_MISSING_HUGETLBFS };
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0 || ioctl(fd, UFFDIO_API, &api) < 0) {
		perror("userfaultfd for COPY mode");
		exit(1);
	}
	return fd;
}

/* COPY mode (no memfd): the declared page size is checked against the
 * guest mapping's (smaps KernelPageSize); 2 MiB anonymous huge pages are
 * carried, 1 GiB ones are not. */
static void
test_huge_copy(struct tstate *t, const char *nohuge)
{
	struct pcvmm_attach_args a;
	struct pcvmm *p = NULL;
	size_t reslen, greslen;
	void *res, *base, *gres, *gbase, *hmap;
	char err[512] = "";
	int uffd, before, r;

	hmap = mmap(NULL, 2 * HPS, PROT_READ | PROT_WRITE, MAP_PRIVATE |
	    MAP_ANONYMOUS | MAP_HUGETLB | (21 << MAP_HUGE_SHIFT), -1, 0);
	CHECK(hmap != MAP_FAILED, "2 anonymous huge pages: %s",
	    strerror(errno));
	if (hmap == MAP_FAILED)
		return;
	uffd = copy_uffd();
	a = huge_args("hc", PCVMM_ROLE_DEST, hmap, 2 * HPS, 0, -1, uffd);
	a.mode = PCVMM_MODE_COPY;
	r = pcvmm_attach(&a, &p, err, sizeof(err));
	CHECK(r == 0, "COPY mode on 2 MiB anonymous huge pages: %s", err);
	pthread_mutex_lock(&t->mu);
	CHECK(r != 0 || (t->last.page_size == HPS && t->last.mode ==
	    VMM_MODE_COPY && t->last_uffd_ok), "COPY huge layout: page size "
	    "%u", t->last.page_size);
	before = t->ndetached;
	pthread_mutex_unlock(&t->mu);
	if (r == 0) {
		printf("ok: COPY mode on 2 MiB anonymous huge pages attached "
		    "(page size %u found by libpcvmm)\n", HPS);
		pcvmm_detach(p, "test done");
		CHECK(wait_detached(t, before + 1), "COPY huge detach");
	}
	close(uffd);

	/* Huge pages declared as base pages. */
	uffd = copy_uffd();
	a = huge_args("hc", PCVMM_ROLE_DEST, hmap, 2 * HPS, PS, -1, uffd);
	a.mode = PCVMM_MODE_COPY;
	expect_refused(t, "COPY mode: 2 MiB huge pages declared as 4 KiB", &a,
	    -EINVAL, "has 2 MiB pages, but the attach declares 4 KiB pages "
	    "(page size 4096): declare page size 2097152");
	close(uffd);
	munmap(hmap, 2 * HPS);

	/* Base pages declared as 2 MiB huge pages. */
	base = aligned_range(2 * HPS, HPS, &res, &reslen);
	CHECK(mmap(base, 2 * HPS, PROT_READ | PROT_WRITE, MAP_PRIVATE |
	    MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) == base,
	    "anonymous base pages");
	uffd = copy_uffd();
	a = huge_args("hc", PCVMM_ROLE_DEST, base, 2 * HPS, HPS, -1, uffd);
	a.mode = PCVMM_MODE_COPY;
	expect_refused(t, "COPY mode: 4 KiB pages declared as 2 MiB", &a,
	    -EINVAL, "has 4 KiB pages, but the attach declares 2 MiB huge "
	    "pages (page size 2097152): in COPY mode map the guest with "
	    "mmap(MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB)");
	close(uffd);
	munmap(res, reslen);

	/* 1 GiB pages in COPY mode: not carried (nothing mapped there). */
	gbase = aligned_range(GPS, GPS, &gres, &greslen);
	uffd = copy_uffd();
	a = huge_args("hc", PCVMM_ROLE_DEST, gbase, GPS, GPS, -1, uffd);
	a.mode = PCVMM_MODE_COPY;
	expect_refused(t, "COPY mode with 1 GiB pages", &a, -EOPNOTSUPP,
	    "the guest's 1 GiB huge pages are valid, but this daemon cannot "
	    "migrate them in COPY mode");
	a.socket_path = nohuge;
	a.page_size = HPS;
	a.size = 2 * HPS;
	expect_refused(t, "COPY mode 2 MiB, a daemon without huge pages", &a,
	    -EOPNOTSUPP, "cannot migrate 2 MiB huge-page guests in COPY mode");
	close(uffd);
	munmap(gres, greslen);
}

static void
test_hugepages(struct tstate *t, const char *nohuge)
{
	void *res, *base;
	size_t reslen;
	int hfd, uffd;

	base = aligned_range(8 * HPS, HPS, &res, &reslen);
	hfd = huge_memfd(8 * HPS);
	uffd = huge_uffd();
	test_huge_refused(t, hfd, uffd, base);
	test_huge_copy(t, nohuge);
	test_huge_good(t, hfd, uffd, nohuge);
	close(uffd);
	close(hfd);
	munmap(res, reslen);
}

int
main(int argc, char **argv)
{
	struct tstate t = { .mu = PTHREAD_MUTEX_INITIALIZER,
	    .cv = PTHREAD_COND_INITIALIZER };
	struct vmm_server *srv = NULL, *srv2 = NULL;
	char dir[] = "/tmp/test_vmm.XXXXXX";
	char path[256], path2[256];
	bool huge = argc > 1 && strcmp(argv[1], "--huge") == 0;
	pthread_t th;
	int r;

	log_init("test_vmm_attach", LOG_LVL_NOTICE);
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/vmm.sock", dir);
	sock_path = path;
	evthread_use_pthreads();
	t.base = event_base_new();
	r = vmm_server_open(t.base, path, -1, &t_ops, &t, &srv);
	if (r < 0) {
		fprintf(stderr, "vmm_server_open: %s\n", strerror(-r));
		return 1;
	}
	snprintf(path2, sizeof(path2), "%s/nohuge.sock", dir);
	if (huge && vmm_server_open(t.base, path2, -1, &t_ops_nohuge, &t,
	    &srv2) < 0) {
		fprintf(stderr, "vmm_server_open %s failed\n", path2);
		return 1;
	}
	pthread_create(&th, NULL, loop_main, &t);

	still_serving(&t, "startup");
	if (huge) {
		test_hugepages(&t, path2);
	} else {
		test_bad_attaches(&t);
		test_raw(&t);
		test_duplicate(&t);
		test_good_and_flow(&t);
		test_dirty_attach(&t);
		test_retry_connect(&t, dir);
	}

	event_base_loopbreak(t.base);
	pthread_join(th, NULL);
	vmm_server_free(srv2);
	vmm_server_free(srv);
	event_base_free(t.base);
	rmdir(dir);
	printf("%s: %d failure(s)\n", failures ? "FAILED" : "PASSED", failures);
	return failures ? 1 : 0;
}
