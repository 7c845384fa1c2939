/* vmm.c - the VMM attach socket, daemon side (see vmm.h and
 * client/pcvmm/VMM-PROTOCOL.md).
 *
 * Raw libevent events, not bufferevents: the Attach frame's descriptors
 * arrive as SCM_RIGHTS ancillary data, which only recvmsg(2) returns. Reads
 * are non-blocking and capped per event; writes are queued in an evbuffer
 * and flushed when the socket is writable. A session is torn down only from
 * its own deferred "reap" event, never from inside a caller's stack.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <linux/magic.h>
#include <linux/userfaultfd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "bytes.h"
#include "dirty.h"
#include "log.h"
#include "pbcheck.h"
#include "probe.h"
#include "status.h"
#include "unixsock.h"
#include "util.h"
#include "vmm.h"
#include "vmm.pb-c.h"

#define VMM_READ_CHUNK		(256u << 10)	/* bytes read per event */
#define VMM_MAX_FDS		4		/* we take at most 3 */
#define VMM_PROC_MAGIC		0x9fa0		/* PROC_SUPER_MAGIC */
#define VMM_OUT_MAX		(2ull * VMM_FRAME_MAX)
#define VMM_USER_ADDR_MAX	(1ull << 57)	/* above any user address */

enum vmm_sstate {
	VMM_S_HELLO,		/* connected, waiting for Attach */
	VMM_S_HELD,		/* attached for an id nobody prepared: pool */
	VMM_S_ATTACHED,		/* accepted by ops->attached */
	VMM_S_CLOSING,		/* flushing output, then reaped */
	VMM_S_DEAD,		/* reap scheduled */
};

struct vmm_session {
	TAILQ_ENTRY(vmm_session) entry;
	struct vmm_server	*srv;
	int			 fd;
	enum vmm_sstate		 state;
	bool			 accepted;	/* detached() owed */
	bool			 notify_detach;
	bool			 pause_sent;
	bool			 paused_seen;
	bool			 hold;		/* inside ops->attached */
	struct event		*rev, *wev, *reap, *timer;
	uint8_t			*in;
	size_t			 inlen, incap;
	struct evbuffer		*out;
	int			 pfds[VMM_MAX_FDS];	/* received, unclaimed */
	int			 npfds;
	struct vmm_guest	 guest;		/* fds are -1 here */
	struct dirty		*dirty;		/* source: kept tracker */
	char			 dirty_why[VMM_DIRTY_WHY_MAX];
	struct vmm_guest	 held;		/* VMM_S_HELD: with its fds */
	bool			 in_pool;
	pid_t			 pid;
	uid_t			 uid;
	void			*data;
};

TAILQ_HEAD(vmm_sessions, vmm_session);

struct vmm_server {
	struct event_base	*base;
	struct unixsock		 sock;
	struct event		*lev;
	struct event		*backoff;	/* accept paused (EMFILE) */
	const struct vmm_ops	*ops;
	void			*arg;
	struct vmm_sessions	 sessions;
	unsigned		 nsessions;
	unsigned		 pool_max, pool_timeout_s, nheld;
};

static void vmm_session_read_cb(evutil_socket_t, short, void *);
static void vmm_session_write_cb(evutil_socket_t, short, void *);
static void vmm_session_reap_cb(evutil_socket_t, short, void *);
static void vmm_session_timeout_cb(evutil_socket_t, short, void *);
static void vmm_pool_leave(struct vmm_session *s);
static int vmm_send_complete(struct vmm_session *s, bool ok, const char *msg);

/* ---- helpers ---------------------------------------------------------- */

static void
vmm_close_pending_fds(struct vmm_session *s)
{
	for (int i = 0; i < s->npfds; i++)
		close(s->pfds[i]);
	s->npfds = 0;
}

static const char *
vmm_peer(const struct vmm_session *s, char *buf, size_t len)
{
	if (s->guest.id[0] != '\0')
		snprintf(buf, len, "vmm %s/%s (pid %d)", s->guest.id,
		    mig_role_name(s->guest.role), (int)s->pid);
	else
		snprintf(buf, len, "vmm pid %d", (int)s->pid);
	return buf;
}

/* Takes s out of the pool of unclaimed VMMs, closing the fds it holds. */
static void
vmm_pool_leave(struct vmm_session *s)
{
	if (!s->in_pool)
		return;
	s->in_pool = false;
	s->srv->nheld--;
	if (s->held.memfd >= 0)
		close(s->held.memfd);
	if (s->held.uffd >= 0)
		close(s->held.uffd);
	s->held.memfd = s->held.uffd = -1;
}

/* Schedules teardown; safe to call from anywhere, any number of times. */
static void
vmm_session_kill(struct vmm_session *s, bool notify)
{
	if (s->state == VMM_S_DEAD)
		return;
	s->state = VMM_S_DEAD;
	s->notify_detach = notify && s->accepted;
	event_del(s->rev);
	event_del(s->wev);
	event_del(s->timer);
	event_active(s->reap, EV_TIMEOUT, 0);
}

static void
vmm_session_destroy(struct vmm_session *s)
{
	struct vmm_server *srv = s->srv;

	if (s->notify_detach && srv->ops->detached != NULL)
		srv->ops->detached(srv->arg, s);
	TAILQ_REMOVE(&srv->sessions, s, entry);
	srv->nsessions--;
	vmm_close_pending_fds(s);
	dirty_close(s->dirty);	/* removes the write protection */
	vmm_pool_leave(s);
	if (s->rev != NULL)
		event_free(s->rev);
	if (s->wev != NULL)
		event_free(s->wev);
	if (s->reap != NULL)
		event_free(s->reap);
	if (s->timer != NULL)
		event_free(s->timer);
	if (s->out != NULL)
		evbuffer_free(s->out);
	if (s->fd >= 0)
		close(s->fd);
	free(s->in);
	free(s);
}

static void
vmm_session_reap_cb(evutil_socket_t fd, short what, void *arg)
{
	vmm_session_destroy(arg);
}

static void
vmm_session_flush(struct vmm_session *s)
{
	char who[128];

	while (evbuffer_get_length(s->out) > 0) {
		int n = evbuffer_write(s->out, s->fd);
		if (n > 0)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			event_add(s->wev, NULL);
			return;
		}
		if (n < 0 && errno != EPIPE && errno != ECONNRESET)
			log_warn("%s: write", vmm_peer(s, who, sizeof(who)));
		vmm_session_kill(s, true);
		return;
	}
	event_del(s->wev);
	if (s->state == VMM_S_CLOSING)
		vmm_session_kill(s, true);
}

static void
vmm_session_write_cb(evutil_socket_t fd, short what, void *arg)
{
	vmm_session_flush(arg);
}

/* Queues one frame and tries to send it at once. */
static int
vmm_session_send(struct vmm_session *s, const Pcd__VmmMessage *m)
{
	size_t len = pcd__vmm_message__get_packed_size(m);
	uint8_t hdr[4];
	uint8_t *buf;

	if (s->state == VMM_S_DEAD)
		return -ENOTCONN;
	if (len == 0 || len > VMM_FRAME_MAX)
		return -EMSGSIZE;
	if (evbuffer_get_length(s->out) + len + 4 > VMM_OUT_MAX)
		return -ENOBUFS;
	if ((buf = malloc(len)) == NULL)
		return -ENOMEM;
	pcd__vmm_message__pack(m, buf);
	bytes_put_le32(hdr, (uint32_t)len);
	if (evbuffer_add(s->out, hdr, 4) < 0 ||
	    evbuffer_add(s->out, buf, len) < 0) {
		free(buf);
		return -ENOMEM;
	}
	free(buf);
	if (!s->hold)
		vmm_session_flush(s);
	return 0;
}

static int
vmm_send_attach_reply(struct vmm_session *s, uint32_t code, const char *msg)
{
	Pcd__VmmMessage m = PCD__VMM_MESSAGE__INIT;
	Pcd__VmmAttachReply r = PCD__VMM_ATTACH_REPLY__INIT;
	Pcd__Status st = PCD__STATUS__INIT;
	char buf[1024];

	str_copy(buf, msg, sizeof(buf));
	st.code = code;
	st.message = utf8_sanitize(buf);
	r.status = &st;
	r.version = VMM_PROTOCOL_VERSION;
	r.daemon_version = (char *)"postcopyd " PCD_VERSION;
	m.body_case = PCD__VMM_MESSAGE__BODY_ATTACH_REPLY;
	m.attach_reply = &r;
	return vmm_session_send(s, &m);
}

/* Refuses the attach: reply, close the received fds, then close. */
static void
vmm_refuse(struct vmm_session *s, uint32_t code, const char *msg)
{
	char who[128];

	log_warnx("%s: attach refused: %s", vmm_peer(s, who, sizeof(who)), msg);
	vmm_close_pending_fds(s);
	event_del(s->rev);
	event_del(s->timer);
	s->state = VMM_S_CLOSING;
	if (vmm_send_attach_reply(s, code, msg) < 0)
		vmm_session_kill(s, false);
}

/* ---- validation ------------------------------------------------------- */

static int
vmm_fd_link(int fd, char *buf, size_t len)
{
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if ((n = readlink(path, buf, len - 1)) < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

/* "4 KiB", "2 MiB", "1 GiB" or "N-byte". */
static const char *
vmm_page_name(uint64_t ps, char *buf, size_t len)
{
	if (ps >= (1u << 30) && ps % (1u << 30) == 0)
		snprintf(buf, len, "%" PRIu64 " GiB", ps >> 30);
	else if (ps >= (1u << 20) && ps % (1u << 20) == 0)
		snprintf(buf, len, "%" PRIu64 " MiB", ps >> 20);
	else if (ps >= (1u << 10) && ps % (1u << 10) == 0)
		snprintf(buf, len, "%" PRIu64 " KiB", ps >> 10);
	else
		snprintf(buf, len, "%" PRIu64 "-byte", ps);
	return buf;
}

static bool
vmm_page_huge(uint64_t ps)
{
	return ps == VMM_HUGE_2M || ps == VMM_HUGE_1G;
}

/* The declared page size against the memfd: a base-page guest is not on
 * hugetlbfs; a huge-page guest is, with pages of exactly that size. */
static int
vmm_check_memfd_pages(int fd, const struct stat *st, const Pcd__VmmAttach *a,
    char *err, size_t errlen)
{
	char have[32], want[32];
	struct statfs sf;
	bool huge;

	if (fstatfs(fd, &sf) < 0) {
		snprintf(err, errlen, "memfd: fstatfs: %s", strerror(errno));
		return -EINVAL;
	}
	huge = (uint64_t)sf.f_type == (uint64_t)HUGETLBFS_MAGIC;
	vmm_page_name((uint64_t)st->st_blksize, have, sizeof(have));
	vmm_page_name(a->page_size, want, sizeof(want));
	if (huge && !vmm_page_huge(a->page_size)) {
		snprintf(err, errlen, "memfd is hugetlbfs with %s pages, but "
		    "the attach declares %s base pages (page size %u): declare "
		    "page size %ld for this guest", have, want, a->page_size,
		    (long)st->st_blksize);
		return -EINVAL;
	}
	if (!huge && vmm_page_huge(a->page_size)) {
		snprintf(err, errlen, "the attach declares %s huge pages (page "
		    "size %u), but the memfd is not hugetlbfs (it has %s "
		    "pages): create it with memfd_create(MFD_HUGETLB | "
		    "MFD_HUGE_%s)", want, a->page_size, have,
		    a->page_size == VMM_HUGE_1G ? "1GB" : "2MB");
		return -EINVAL;
	}
	if ((uint64_t)st->st_blksize != a->page_size) {
		snprintf(err, errlen, "memfd has %s %spages, but the attach "
		    "declares page size %u (%s)", have, huge ? "huge " : "",
		    a->page_size, want);
		return -EINVAL;
	}
	return 0;
}

/* A huge-page guest that validated: can the migration layer carry it? */
static int
vmm_check_huge_carried(const struct vmm_server *srv, const Pcd__VmmAttach *a,
    char *err, size_t errlen)
{
	bool copy = a->mode == PCD__VMM_MODE__VMM_MODE_COPY;
	unsigned bit = a->page_size == VMM_HUGE_2M ? VMM_CARRY_2M :
	    a->page_size == VMM_HUGE_1G ? VMM_CARRY_1G : 0;
	char name[32];

	if (copy)
		bit <<= 2;	/* VMM_CARRY_COPY_* */
	if (bit == 0 || (srv->ops->huge_pages & bit) != 0)
		return 0;
	vmm_page_name(a->page_size, name, sizeof(name));
	if (copy && (srv->ops->huge_pages & (bit >> 2)) != 0)
		snprintf(err, errlen, "the guest's %s huge pages are valid, but "
		    "this daemon cannot migrate them in COPY mode (it would "
		    "assemble each %s page in a bounce buffer of its own); "
		    "refused rather than migrated wrongly (use MINOR mode: a "
		    "hugetlbfs memfd)", name, name);
	else
		snprintf(err, errlen, "the guest's %s huge pages are valid, but "
		    "this daemon's data path cannot migrate %s huge-page "
		    "guests%s; refused rather than migrated wrongly (back the "
		    "guest with base pages)", name, name, copy ? " in COPY "
		    "mode" : "");
	return -EOPNOTSUPP;
}

static int
vmm_check_memfd(int fd, const Pcd__VmmAttach *a, bool dest, char *err,
    size_t errlen)
{
	char link[256];
	struct stat st;
	int seals, fl, r;

	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "memfd: fstat: %s", strerror(errno));
		return -EINVAL;
	}
	if ((r = vmm_fd_link(fd, link, sizeof(link))) < 0) {
		snprintf(err, errlen, "memfd: cannot inspect the descriptor "
		    "(/proc/self/fd: %s)", strerror(-r));
		return -EINVAL;
	}
	if (!S_ISREG(st.st_mode) || strncmp(link, "/memfd:", 7) != 0) {
		snprintf(err, errlen, "first descriptor is not a memfd "
		    "(it is \"%s\"); guest memory must be a memfd", link);
		return -EINVAL;
	}
	if ((seals = fcntl(fd, F_GET_SEALS)) < 0) {
		snprintf(err, errlen, "first descriptor is not a memfd "
		    "(F_GET_SEALS: %s)", strerror(errno));
		return -EINVAL;
	}
	if ((r = vmm_check_memfd_pages(fd, &st, a, err, errlen)) < 0)
		return r;
	if ((uint64_t)st.st_size < a->offset + a->size) {
		snprintf(err, errlen, "memfd is %" PRIu64 " bytes, smaller than "
		    "the layout (offset %" PRIu64 " + size %" PRIu64 " = %" PRIu64
		    ")", (uint64_t)st.st_size, a->offset, a->size,
		    a->offset + a->size);
		return -EINVAL;
	}
	if ((fl = fcntl(fd, F_GETFL)) < 0) {
		snprintf(err, errlen, "memfd: F_GETFL: %s", strerror(errno));
		return -EINVAL;
	}
	if (dest) {
		if ((fl & O_ACCMODE) != O_RDWR) {
			snprintf(err, errlen, "memfd is not open read-write; "
			    "the destination writes pages through it");
			return -EINVAL;
		}
		if (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) {
			snprintf(err, errlen, "memfd is write-sealed; the "
			    "destination writes pages through it");
			return -EINVAL;
		}
	} else if ((fl & O_ACCMODE) == O_WRONLY) {
		snprintf(err, errlen, "memfd is open write-only; the source "
		    "reads pages through it");
		return -EINVAL;
	}
	return 0;
}

static int
vmm_check_uffd(int fd, const char *what, char *err, size_t errlen)
{
	char link[256];
	int r;

	if ((r = vmm_fd_link(fd, link, sizeof(link))) < 0) {
		snprintf(err, errlen, "%s: cannot inspect the descriptor "
		    "(/proc/self/fd: %s)", what, strerror(-r));
		return -EINVAL;
	}
	if (strcmp(link, "anon_inode:[userfaultfd]") != 0) {
		snprintf(err, errlen, "%s is not a userfaultfd (it is \"%s\")",
		    what, link);
		return -EINVAL;
	}
	return 0;
}

/* Whether the VMAs of [base, end) in /proc/PID/smaps (f) are all there
 * and registered for MISSING faults (VmFlags "um"), and, when kps is not
 * 0, have pages of kps bytes (KernelPageSize). 1 yes, 0 not registered,
 * -1 another page size (in *got). */
static int
vmm_smaps_registered(FILE *f, uint64_t base, uint64_t end, uint64_t kps,
    uint64_t *got)
{
	char line[PATH_MAX + 128];
	uint64_t covered = base, vs = 0, ve = 0;
	bool inside = false;

	while (covered < end && fgets(line, sizeof(line), f) != NULL) {
		unsigned long long a, b, k;

		if (sscanf(line, "%llx-%llx ", &a, &b) == 2 &&
		    strchr(line, ':') != NULL && line[0] != 'V') {
			vs = a, ve = b;
			inside = vs < end && ve > base;
			continue;
		}
		if (inside && kps != 0 &&
		    sscanf(line, "KernelPageSize: %llu kB", &k) == 1 &&
		    (uint64_t)k << 10 != kps) {
			*got = (uint64_t)k << 10;
			return -1;
		}
		if (!inside || strncmp(line, "VmFlags:", 8) != 0)
			continue;
		if (vs > covered || strstr(line + 8, " um") == NULL)
			return 0;
		covered = ve < end ? ve : end;
	}
	return covered >= end;
}

/* COPY mode: the guest mapping's pages (smaps) are not the declared ones. */
static int
vmm_copy_pages_refuse(const Pcd__VmmAttach *a, uint64_t got, char *err,
    size_t errlen)
{
	char have[32], want[32];

	vmm_page_name(got, have, sizeof(have));
	vmm_page_name(a->page_size, want, sizeof(want));
	if (vmm_page_huge(a->page_size))
		snprintf(err, errlen, "the guest mapping 0x%" PRIx64 "+0x%"
		    PRIx64 " has %s pages, but the attach declares %s huge "
		    "pages (page size %u): in COPY mode map the guest with "
		    "mmap(MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | "
		    "MAP_HUGE_%s)", a->base_addr, a->size, have, want,
		    a->page_size, a->page_size == VMM_HUGE_1G ? "1GB" : "2MB");
	else
		snprintf(err, errlen, "the guest mapping 0x%" PRIx64 "+0x%"
		    PRIx64 " has %s pages, but the attach declares %s pages "
		    "(page size %u): declare page size %" PRIu64, a->base_addr,
		    a->size, have, want, a->page_size, got);
	return -EINVAL;
}

/* A userfaultfd acts on the address space of the process that created it,
 * whoever holds it. Registers the guest range through it (the registration
 * the fault loop needs; a no-op when already registered), which fails
 * when its creator has no such shmem mapping, then checks that the VMM's
 * own mapping of that range is the one now registered: a uffd made by,
 * say, a child forked after the guest was mapped registers the child's
 * copy of the mapping instead. In COPY mode (no memfd to look at) the same
 * read of smaps checks that the mapping has pages of the declared size
 * (KernelPageSize: huge pages need MAP_HUGETLB). The second check needs
 * /proc/PID/smaps of the VMM (same user, or root); when it cannot be read
 * (a daemon confined with ProtectProc=invisible, another user) the first
 * one stands alone. On re-attach the VMM's mapping is registered already,
 * so only the first check tells. */
static int
vmm_check_uffd_owner(struct vmm_session *s, int uffd, const Pcd__VmmAttach *a,
    bool copy, char *err, size_t errlen)
{
	uint64_t mode = copy ? UFFDIO_REGISTER_MODE_MISSING :
	    UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR;
	char why[400], path[64], who[128];
	uint64_t got = 0;
	FILE *f;
	int r;

	if ((r = probe_uffd(uffd, a->base_addr, a->size, mode, NULL, why,
	    sizeof(why))) < 0 && r != -ENOTSUP) {
		snprintf(err, errlen, "the userfaultfd does not act on this "
		    "VMM's guest memory (was it created by another process?): "
		    "%s", why);
		return -EINVAL;
	}
	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)s->pid);
	if (s->pid <= 0 || (f = fopen(path, "re")) == NULL) {
		log_debug("%s: %s: %s: the userfaultfd's owner is not "
		    "checked", vmm_peer(s, who, sizeof(who)), path,
		    strerror(errno));
		return 0;
	}
	r = vmm_smaps_registered(f, a->base_addr, a->base_addr + a->size,
	    copy ? a->page_size : 0, &got);
	fclose(f);
	if (r < 0)
		return vmm_copy_pages_refuse(a, got, err, errlen);
	if (r == 0) {
		snprintf(err, errlen, "the userfaultfd was created by another "
		    "process: registering 0x%" PRIx64 "+0x%" PRIx64 " through "
		    "it did not register the VMM's (pid %d) own mapping of "
		    "that range; send a userfaultfd the VMM made itself",
		    a->base_addr, a->size, (int)s->pid);
		return -EINVAL;
	}
	return 0;
}

static const char *
vmm_fd_names(bool copy, bool dest, bool dirty)
{
	if (copy)
		return "userfaultfd";
	if (dirty)
		return "memfd, userfaultfd, pagemap";
	return dest ? "memfd, userfaultfd" : "memfd";
}

/* ---- dirty tracking descriptors (source, precopy) --------------------- */

/* dirty_tracking is for a source; it adds two descriptors. */
static uint32_t
vmm_dirty_check_layout(const Pcd__VmmAttach *a, char *err, size_t errlen)
{
	if (a->dirty_tracking && a->role != PCD__VMM_ROLE__VMM_ROLE_SOURCE) {
		snprintf(err, errlen, "dirty_tracking is for a source VMM "
		    "(precopy tracks the writes of the guest that runs)");
		return STATUS_INVALID_ARGUMENT;
	}
	return 0;
}

static int
vmm_dirty_nfds(const Pcd__VmmAttach *a)
{
	return a->dirty_tracking ? 2 : 0;
}

/* The second and third descriptors: a userfaultfd and a procfs pagemap. */
static int
vmm_dirty_check_fds(struct vmm_session *s, char *err, size_t errlen)
{
	struct statfs sf;
	char link[256];
	size_t n;
	int r;

	if ((r = vmm_check_uffd(s->pfds[1], "second descriptor", err,
	    errlen)) < 0)
		return r;
	if ((r = vmm_fd_link(s->pfds[2], link, sizeof(link))) < 0 ||
	    fstatfs(s->pfds[2], &sf) < 0) {
		snprintf(err, errlen, "third descriptor: cannot inspect it: %s",
		    strerror(r < 0 ? -r : errno));
		return -EINVAL;
	}
	n = strlen(link);
	if (sf.f_type != VMM_PROC_MAGIC || n < 8 ||
	    strcmp(link + n - 8, "/pagemap") != 0) {
		snprintf(err, errlen, "third descriptor is not a pagemap (it is "
		    "\"%s\"); send the VMM's open(\"/proc/self/pagemap\")",
		    link);
		return -EINVAL;
	}
	return 0;
}

/* A source VMM's dirty-tracking descriptors: takes them from the pending
 * list into a tracker (s->dirty). A kernel without the features leaves
 * the attach accepted, postcopy-only (s->dirty_why says why); descriptors
 * that do not fit refuse it (-errno, err). */
static int
vmm_dirty_take(struct vmm_session *s, const Pcd__VmmAttach *a, char *err,
    size_t errlen)
{
	char who[128], why[VMM_DIRTY_WHY_MAX - 128];
	int r;

	/* s->guest is not filled yet: name the VMM from the message. */
	snprintf(who, sizeof(who), "vmm %s/source (pid %d)", a->id,
	    (int)s->pid);
	if (!a->dirty_tracking) {
		snprintf(s->dirty_why, sizeof(s->dirty_why), "the VMM sent no "
		    "dirty-tracking descriptors (userfaultfd, pagemap): an "
		    "older VMM; this migration can only run postcopy-only");
		log_notice("%s: %s", who, s->dirty_why);
		return 0;
	}
	if ((r = vmm_dirty_check_fds(s, err, errlen)) < 0)
		return r;
	/* dirty_open takes (and on failure closes) both descriptors. */
	s->npfds = 1;
	r = dirty_open(s->pfds[1], s->pfds[2], a->base_addr, a->size,
	    a->page_size, &s->dirty, why, sizeof(why));
	if (r == -ENOTSUP) {
		snprintf(s->dirty_why, sizeof(s->dirty_why), "no dirty "
		    "tracking: %s; this migration can only run postcopy-only",
		    why);
		log_notice("%s: %s", who, s->dirty_why);
		return 0;
	}
	if (r < 0) {
		snprintf(err, errlen, "dirty tracking: %s", why);
		return r;
	}
	log_info("%s: dirty tracking ready (precopy possible)", who);
	return 0;
}

struct dirty *
vmm_session_dirty(struct vmm_session *s)
{
	return s->dirty;
}

const char *
vmm_session_dirty_why(struct vmm_session *s)
{
	return s->dirty_why;
}

/* Checks the layout; fills err and returns a gRPC code, or 0. */
static uint32_t
vmm_check_layout(const Pcd__VmmAttach *a, int nfds, char *err, size_t errlen)
{
	long ps = sysconf(_SC_PAGESIZE);
	bool dest, copy;
	uint32_t code;
	int want;

	if (a->version != VMM_PROTOCOL_VERSION) {
		snprintf(err, errlen, "protocol version %u is not supported "
		    "(this daemon speaks version %u)", a->version,
		    VMM_PROTOCOL_VERSION);
		return STATUS_FAILED_PRECONDITION;
	}
	if (mig_id_check(a->id, "Attach", err, errlen) < 0)
		return STATUS_INVALID_ARGUMENT;
	if (a->role != PCD__VMM_ROLE__VMM_ROLE_SOURCE &&
	    a->role != PCD__VMM_ROLE__VMM_ROLE_DEST) {
		snprintf(err, errlen, "invalid role %d: want SOURCE (1) or "
		    "DEST (2)", (int)a->role);
		return STATUS_INVALID_ARGUMENT;
	}
	dest = a->role == PCD__VMM_ROLE__VMM_ROLE_DEST;
	if (a->mode != PCD__VMM_MODE__VMM_MODE_MINOR &&
	    a->mode != PCD__VMM_MODE__VMM_MODE_COPY) {
		snprintf(err, errlen, "invalid mode %d: want MINOR (0) or "
		    "COPY (1)", (int)a->mode);
		return STATUS_INVALID_ARGUMENT;
	}
	copy = a->mode == PCD__VMM_MODE__VMM_MODE_COPY;
	if (copy && !dest) {
		snprintf(err, errlen, "COPY mode is for the destination only; "
		    "a source always attaches a memfd");
		return STATUS_INVALID_ARGUMENT;
	}
	if (!vmm_page_huge(a->page_size) &&
	    (ps <= 0 || a->page_size != (uint64_t)ps)) {
		snprintf(err, errlen, "page size %u is not supported: want %ld "
		    "(this host's base page), %u (2 MiB huge pages) or %u "
		    "(1 GiB huge pages)", a->page_size, ps, VMM_HUGE_2M,
		    VMM_HUGE_1G);
		return STATUS_INVALID_ARGUMENT;
	}
	if (a->size == 0 || a->size % a->page_size != 0) {
		snprintf(err, errlen, "size %" PRIu64 " is not a non-zero "
		    "multiple of the page size %u", a->size, a->page_size);
		return STATUS_INVALID_ARGUMENT;
	}
	if (a->size > VMM_SIZE_MAX) {
		snprintf(err, errlen, "size %" PRIu64 " exceeds the limit of %"
		    PRIu64 " bytes", a->size, (uint64_t)VMM_SIZE_MAX);
		return STATUS_INVALID_ARGUMENT;
	}
	if (a->base_addr == 0 || a->base_addr % a->page_size != 0) {
		snprintf(err, errlen, "base address 0x%" PRIx64 " is not a "
		    "non-zero multiple of the page size %u", a->base_addr,
		    a->page_size);
		return STATUS_INVALID_ARGUMENT;
	}
	if (a->base_addr >= VMM_USER_ADDR_MAX ||
	    a->size > VMM_USER_ADDR_MAX - a->base_addr) {
		snprintf(err, errlen, "guest mapping 0x%" PRIx64 "+%" PRIu64
		    " lies outside the user address space", a->base_addr,
		    a->size);
		return STATUS_INVALID_ARGUMENT;
	}
	if (a->offset % a->page_size != 0) {
		snprintf(err, errlen, "memfd offset %" PRIu64 " is not a "
		    "multiple of the page size %u", a->offset, a->page_size);
		return STATUS_INVALID_ARGUMENT;
	}
	if (a->offset > UINT64_MAX - a->size || (copy && a->offset != 0)) {
		snprintf(err, errlen, "memfd offset %" PRIu64 " is invalid%s",
		    a->offset, copy ? " (COPY mode has no memfd: want 0)" :
		    " (offset + size overflows)");
		return STATUS_INVALID_ARGUMENT;
	}
	if ((code = vmm_dirty_check_layout(a, err, errlen)) != 0)
		return code;
	want = copy ? 1 : (dest ? 2 : 1 + vmm_dirty_nfds(a));
	if (nfds != want) {
		snprintf(err, errlen, "expected %d descriptor%s (%s) with "
		    "the attach message, got %d", want, want == 1 ? "" : "s",
		    vmm_fd_names(copy, dest, a->dirty_tracking), nfds);
		return STATUS_INVALID_ARGUMENT;
	}
	return 0;
}

int
vmm_frame_len(const uint8_t *p, size_t avail, size_t cap, uint32_t *len)
{
	uint32_t n;

	if (avail < 4)
		return 0;
	n = bytes_get_le32(p);
	*len = n;
	if (n == 0 || n > cap)
		return -EMSGSIZE;
	return avail - 4 >= n ? 1 : 0;
}

uint32_t
vmm_attach_parse(const uint8_t *buf, size_t len, int nfds,
    Pcd__VmmMessage **out, char *err, size_t errlen)
{
	Pcd__VmmMessage *m;
	char why[160];
	uint32_t code;

	*out = NULL;
	if ((m = (Pcd__VmmMessage *)pbcheck_unpack_why(
	    &pcd__vmm_message__descriptor, len, buf, why,
	    sizeof(why))) == NULL) {
		snprintf(err, errlen, "malformed frame: %s", why);
		return STATUS_INVALID_ARGUMENT;
	}
	if (m->body_case != PCD__VMM_MESSAGE__BODY_ATTACH) {
		snprintf(err, errlen, "the first message must be Attach");
		code = STATUS_FAILED_PRECONDITION;
	} else
		code = vmm_check_layout(m->attach, nfds, err, errlen);
	if (code != 0) {
		pcd__vmm_message__free_unpacked(m, NULL);
		return code;
	}
	*out = m;
	return 0;
}

/* ---- messages from the VMM -------------------------------------------- */

/* ---- the pool of VMMs attached for ids nobody prepared ----------------
 *
 * A VMM may attach before the orchestrator prepares (or migrates) its id,
 * e.g. a VMM re-attaching across a daemon restart. Such VMMs are held here
 * with their descriptors, at most pool_max of them and each for
 * pool_timeout_s, and never become migrations: invented ids cannot take
 * the orchestrator's max_migrations, and Prepare is never refused because
 * of them. Prepare/Migrate claims a held VMM (vmm_server_claim). */

static void
vmm_pool_enter(struct vmm_session *s, const struct vmm_guest *g)
{
	struct vmm_server *srv = s->srv;
	struct timeval tv = { srv->pool_timeout_s, 0 };
	char msg[256], who[128];

	if (srv->nheld >= srv->pool_max) {
		s->state = VMM_S_HELLO;
		if (srv->pool_max == 0)
			snprintf(msg, sizeof(msg), "no migration '%s' is "
			    "prepared on this daemon: prepare (or migrate) it "
			    "first", g->id);
		else
			snprintf(msg, sizeof(msg), "no migration '%s' is "
			    "prepared on this daemon, and %u VMMs already wait "
			    "for theirs (vmm_unclaimed_max): prepare (or "
			    "migrate) it first", g->id, srv->nheld);
		vmm_refuse(s, STATUS_RESOURCE_EXHAUSTED, msg);
		return;
	}
	s->held = *g;
	s->npfds = 0;			/* the fds are in s->held now */
	s->in_pool = true;
	srv->nheld++;
	s->state = VMM_S_HELD;
	evtimer_add(s->timer, &tv);
	log_info("%s: no migration '%s' here yet: held for up to %u s (%u "
	    "held)", vmm_peer(s, who, sizeof(who)), g->id, srv->pool_timeout_s,
	    srv->nheld);
	snprintf(msg, sizeof(msg), "attached; waiting up to %u s for "
	    "migration '%s' to be prepared here", srv->pool_timeout_s, g->id);
	vmm_send_attach_reply(s, STATUS_OK, msg);
}

static void
vmm_pool_expire(struct vmm_session *s)
{
	char msg[256], who[128];

	snprintf(msg, sizeof(msg), "no migration '%s' was prepared (or "
	    "migrated) on this daemon within %u s of the attach "
	    "(vmm_unclaimed_timeout)", s->guest.id, s->srv->pool_timeout_s);
	log_warnx("%s: %s: closing", vmm_peer(s, who, sizeof(who)), msg);
	vmm_pool_leave(s);
	s->state = VMM_S_CLOSING;
	event_del(s->rev);
	if (vmm_send_complete(s, false, msg) < 0)
		vmm_session_kill(s, false);
}

void
vmm_server_set_pool(struct vmm_server *srv, unsigned max, unsigned timeout_s)
{
	srv->pool_max = max;
	srv->pool_timeout_s = timeout_s > 0 ? timeout_s : 1;
}

/* Offers a held VMM to its migration, as at attach time. */
static void
vmm_pool_claim(struct vmm_session *s)
{
	struct vmm_server *srv = s->srv;
	struct vmm_guest g = s->held;
	char err[512] = "", who[128];
	int r;

	s->held.memfd = s->held.uffd = -1;	/* offered with g */
	vmm_pool_leave(s);
	event_del(s->timer);
	s->state = VMM_S_ATTACHED;
	s->hold = true;
	r = srv->ops->attached(srv->arg, s, &g, err, sizeof(err));
	s->hold = false;
	if (r == 0) {
		s->accepted = true;
		log_info("%s: claimed by its migration",
		    vmm_peer(s, who, sizeof(who)));
		vmm_session_flush(s);
		return;
	}
	if (g.memfd >= 0)
		close(g.memfd);
	if (g.uffd >= 0)
		close(g.uffd);
	evbuffer_drain(s->out, evbuffer_get_length(s->out));
	if (err[0] == '\0')
		snprintf(err, sizeof(err), "the daemon refused the attach: %s",
		    r == VMM_HOLD ? "no migration" : strerror(-r));
	log_warnx("%s: %s: closing", vmm_peer(s, who, sizeof(who)), err);
	s->state = VMM_S_CLOSING;
	event_del(s->rev);
	if (vmm_send_complete(s, false, err) < 0)
		vmm_session_kill(s, false);
}

bool
vmm_server_held(struct vmm_server *srv, const char *id, struct vmm_guest *out)
{
	struct vmm_session *s;

	TAILQ_FOREACH(s, &srv->sessions, entry) {
		if (s->state == VMM_S_HELD && strcmp(s->guest.id, id) == 0) {
			*out = s->guest;
			return true;
		}
	}
	return false;
}

bool
vmm_server_claim(struct vmm_server *srv, const char *id, int role)
{
	struct vmm_session *s;

	TAILQ_FOREACH(s, &srv->sessions, entry) {
		if (s->state == VMM_S_HELD && (int)s->guest.role == role &&
		    strcmp(s->guest.id, id) == 0) {
			vmm_pool_claim(s);
			return true;
		}
	}
	return false;
}

/* The descriptors (memfd, userfaultfd, dirty tracking), the page size the
 * data path can carry and the one-VMM-per-role rule. Returns 0, or the
 * status to refuse with and the reason in err. */
static int
vmm_attach_check(struct vmm_session *s, const Pcd__VmmAttach *a, char *err,
    size_t errlen)
{
	struct vmm_server *srv = s->srv;
	struct vmm_session *o;
	bool dest = a->role == PCD__VMM_ROLE__VMM_ROLE_DEST;
	int r;

	/* vmm_attach_parse checked the layout. */
	if (a->mode == PCD__VMM_MODE__VMM_MODE_COPY) {
		r = vmm_check_uffd(s->pfds[0], "the descriptor", err, errlen);
	} else {
		r = vmm_check_memfd(s->pfds[0], a, dest, err, errlen);
		if (r == 0 && dest)
			r = vmm_check_uffd(s->pfds[1], "second descriptor",
			    err, errlen);
		else if (r == 0)
			r = vmm_dirty_take(s, a, err, errlen);
	}
	if (r < 0)
		return STATUS_INVALID_ARGUMENT;
	if (vmm_check_huge_carried(srv, a, err, errlen) < 0)
		return STATUS_UNIMPLEMENTED;
	if (dest && vmm_check_uffd_owner(s, s->pfds[a->mode ==
	    PCD__VMM_MODE__VMM_MODE_COPY ? 0 : 1], a, a->mode ==
	    PCD__VMM_MODE__VMM_MODE_COPY, err, errlen) < 0)
		return STATUS_INVALID_ARGUMENT;
	TAILQ_FOREACH(o, &srv->sessions, entry) {
		if (o != s && (o->accepted || o->in_pool) &&
		    o->state != VMM_S_DEAD &&
		    o->guest.role == (enum mig_role)a->role &&
		    strcmp(o->guest.id, a->id) == 0) {
			snprintf(err, errlen, "migration %s already has a %s VMM "
			    "attached (pid %d); detach it first", a->id,
			    mig_role_name(o->guest.role), (int)o->pid);
			return STATUS_ALREADY_EXISTS;
		}
	}
	return STATUS_OK;
}

/* The guest the attach describes; the session keeps a copy without the
 * descriptors, which pass to the callee. */
static void
vmm_attach_guest(struct vmm_session *s, const Pcd__VmmAttach *a,
    struct vmm_guest *g)
{
	bool dest = a->role == PCD__VMM_ROLE__VMM_ROLE_DEST;
	bool copy = a->mode == PCD__VMM_MODE__VMM_MODE_COPY;

	memset(g, 0, sizeof(*g));
	str_copy(g->id, a->id, sizeof(g->id));
	g->role = dest ? MIG_ROLE_DEST : MIG_ROLE_SOURCE;
	g->mode = copy ? VMM_MODE_COPY : VMM_MODE_MINOR;
	g->memfd = copy ? -1 : s->pfds[0];
	g->uffd = copy ? s->pfds[0] : (dest ? s->pfds[1] : -1);
	g->base = a->base_addr;
	g->size = a->size;
	g->offset = a->offset;
	g->page_size = a->page_size;
	g->pid = s->pid;
	g->uid = s->uid;
	g->reattach = a->reattach;
	g->resumed = a->reattach && a->resumed;
	g->dirty = s->dirty;
	g->dirty_why = s->dirty_why;
	s->guest = *g;
	s->guest.memfd = s->guest.uffd = -1;
	s->guest.dirty = NULL;
}

static void
vmm_handle_attach(struct vmm_session *s, const Pcd__VmmAttach *a)
{
	struct vmm_server *srv = s->srv;
	struct vmm_guest g;
	struct evbuffer *held;
	char err[512] = "";
	char who[128], pname[32];
	bool copy = a->mode == PCD__VMM_MODE__VMM_MODE_COPY;
	int r;

	if ((r = vmm_attach_check(s, a, err, sizeof(err))) != STATUS_OK) {
		vmm_refuse(s, r, err);
		return;
	}
	vmm_attach_guest(s, a, &g);

	/* Requests the callee makes from inside attached() are held and
	 * sent after the AttachReply (or dropped if it refuses). */
	err[0] = '\0';
	s->state = VMM_S_ATTACHED;
	s->hold = true;
	r = srv->ops->attached != NULL ?
	    srv->ops->attached(srv->arg, s, &g, err, sizeof(err)) : -ENOTSUP;
	s->hold = false;
	s->dirty = g.dirty;	/* NULL if the callee took it */
	if (r == VMM_HOLD) {
		s->pause_sent = false;
		evbuffer_drain(s->out, evbuffer_get_length(s->out));
		vmm_pool_enter(s, &g);
		return;
	}
	if (r < 0) {
		s->state = VMM_S_HELLO;
		s->pause_sent = false;
		evbuffer_drain(s->out, evbuffer_get_length(s->out));
		if (err[0] == '\0')
			snprintf(err, sizeof(err), "the daemon refused the "
			    "attach: %s", strerror(-r));
		vmm_refuse(s, status_from_errno(r), err);
		return;
	}
	/* The callee owns the fds now. */
	s->npfds = 0;
	s->accepted = true;
	event_del(s->timer);
	log_info("%s: attached %s%s: %" PRIu64 " MiB at 0x%" PRIx64
	    " (memfd offset %" PRIu64 ", %s pages)",
	    vmm_peer(s, who, sizeof(who)), mig_role_name(g.role),
	    copy ? " in COPY mode" : "", g.size >> 20, g.base, g.offset,
	    vmm_page_name(g.page_size, pname, sizeof(pname)));
	held = s->out;
	if ((s->out = evbuffer_new()) == NULL) {
		s->out = held;
		vmm_session_kill(s, true);
		return;
	}
	vmm_send_attach_reply(s, STATUS_OK, "attached");
	if (s->state == VMM_S_ATTACHED) {
		evbuffer_add_buffer(s->out, held);
		vmm_session_flush(s);
	}
	evbuffer_free(held);
}

/* Handles one decoded frame. Returns false when the session must end. */
static bool
vmm_handle_frame(struct vmm_session *s, const uint8_t *buf, size_t len)
{
	struct vmm_server *srv = s->srv;
	Pcd__VmmMessage *m;
	char who[128];
	bool ok = true;

	if (s->state == VMM_S_HELLO) {
		char err[512];
		uint32_t code;

		code = vmm_attach_parse(buf, len, s->npfds, &m, err,
		    sizeof(err));
		if (code != 0) {
			vmm_refuse(s, code, err);
			return false;
		}
		vmm_handle_attach(s, m->attach);
		ok = s->state == VMM_S_ATTACHED || s->state == VMM_S_HELD;
		goto out;
	}
	m = (Pcd__VmmMessage *)pbcheck_unpack(
	    &pcd__vmm_message__descriptor, len, buf);
	if (m == NULL) {
		log_warnx("%s: malformed frame (%zu bytes): closing",
		    vmm_peer(s, who, sizeof(who)), len);
		return false;
	}
	if (s->npfds > 0) {
		log_warnx("%s: descriptors sent with a frame other than "
		    "Attach: closing", vmm_peer(s, who, sizeof(who)));
		ok = false;
		goto out;
	}
	switch (m->body_case) {
	case PCD__VMM_MESSAGE__BODY_PAUSED:
		if (s->guest.role != MIG_ROLE_SOURCE || !s->pause_sent ||
		    s->paused_seen) {
			log_warnx("%s: unexpected Paused (%s): closing",
			    vmm_peer(s, who, sizeof(who)),
			    s->guest.role != MIG_ROLE_SOURCE ?
			    "not a source" : s->paused_seen ?
			    "already paused" : "no pause was requested");
			ok = false;
			break;
		}
		if (m->paused->device_state.len > VMM_STATE_MAX) {
			log_warnx("%s: device state of %zu bytes exceeds %u: "
			    "closing", vmm_peer(s, who, sizeof(who)),
			    m->paused->device_state.len, VMM_STATE_MAX);
			ok = false;
			break;
		}
		s->paused_seen = true;
		log_info("%s: paused, %zu bytes of device state",
		    vmm_peer(s, who, sizeof(who)), m->paused->device_state.len);
		if (srv->ops->paused != NULL)
			srv->ops->paused(srv->arg, s,
			    m->paused->device_state.data,
			    m->paused->device_state.len);
		break;
	case PCD__VMM_MESSAGE__BODY_DETACH:
		log_info("%s: detached%s%s", vmm_peer(s, who, sizeof(who)),
		    m->detach->reason[0] ? ": " : "", m->detach->reason);
		ok = false;
		break;
	default:
		log_warnx("%s: unexpected message (case %d): closing",
		    vmm_peer(s, who, sizeof(who)), (int)m->body_case);
		ok = false;
		break;
	}
out:
	pcd__vmm_message__free_unpacked(m, NULL);
	return ok;
}

/* Receives into s->in, collecting descriptors. 0, -EAGAIN, or -errno
 * (-ECONNRESET at end of stream). */
static int
vmm_session_recv(struct vmm_session *s, size_t want)
{
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int) * VMM_MAX_FDS)];
	} cbuf;
	struct msghdr msg = { 0 };
	struct iovec iov;
	struct cmsghdr *c;
	ssize_t n;
	int r = 0;

	if (s->incap - s->inlen < want) {
		size_t ncap = s->incap * 2;
		if (ncap < s->inlen + want)
			ncap = s->inlen + want;
		uint8_t *p = realloc(s->in, ncap);
		if (p == NULL)
			return -ENOMEM;
		s->in = p;
		s->incap = ncap;
	}
	iov.iov_base = s->in + s->inlen;
	iov.iov_len = want;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cbuf.buf;
	msg.msg_controllen = sizeof(cbuf.buf);
	n = recvmsg(s->fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (n < 0)
		return errno == EINTR ? -EAGAIN : -errno;
	for (c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
		size_t nf;
		int *fds;
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		nf = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		fds = (int *)CMSG_DATA(c);
		for (size_t i = 0; i < nf; i++) {
			int fd;
			memcpy(&fd, &fds[i], sizeof(fd));
			if (s->npfds < VMM_MAX_FDS)
				s->pfds[s->npfds++] = fd;
			else {
				close(fd);
				r = -E2BIG;
			}
		}
	}
	if (msg.msg_flags & MSG_CTRUNC)
		r = -E2BIG;
	if (n == 0)
		return -ECONNRESET;
	s->inlen += (size_t)n;
	return r;
}

static void
vmm_session_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct vmm_session *s = arg;
	size_t cap = s->state == VMM_S_HELLO ? VMM_ATTACH_FRAME_MAX :
	    VMM_FRAME_MAX;
	/* Before attach nothing larger than one Attach frame is needed:
	 * idle connections cost a page, not a read chunk. */
	size_t off = 0, budget = s->state == VMM_S_HELLO ?
	    VMM_ATTACH_FRAME_MAX + 4 - s->inlen : VMM_READ_CHUNK;
	char who[128];
	int r;

	if (s->state != VMM_S_HELLO && s->state != VMM_S_ATTACHED &&
	    s->state != VMM_S_HELD)
		return;
	if (budget == 0 || budget > VMM_READ_CHUNK)	/* cannot happen */
		budget = VMM_READ_CHUNK;
	r = vmm_session_recv(s, budget);
	if (r == -EAGAIN)
		return;
	if (r == -E2BIG) {
		if (s->state == VMM_S_HELLO)
			vmm_refuse(s, STATUS_INVALID_ARGUMENT, "too many "
			    "descriptors: at most 3 (memfd, userfaultfd, "
			    "pagemap)");
		else
			vmm_session_kill(s, true);
		return;
	}
	if (r < 0) {
		if (r != -ECONNRESET)
			log_warnx("%s: receive: %s",
			    vmm_peer(s, who, sizeof(who)), strerror(-r));
		else if (s->state == VMM_S_ATTACHED)
			log_info("%s: connection closed",
			    vmm_peer(s, who, sizeof(who)));
		vmm_session_kill(s, true);
		return;
	}
	for (;;) {
		const uint8_t *p = s->in + off;
		uint32_t len = 0;

		r = vmm_frame_len(p, s->inlen - off, cap, &len);
		if (r == 0)
			break;
		if (r < 0) {
			char msg[128];
			snprintf(msg, sizeof(msg), "frame length %u is out of "
			    "range (1..%zu%s)", len, cap,
			    s->state == VMM_S_HELLO ? " before attach" : "");
			if (s->state == VMM_S_HELLO)
				vmm_refuse(s, STATUS_INVALID_ARGUMENT, msg);
			else {
				log_warnx("%s: %s: closing",
				    vmm_peer(s, who, sizeof(who)), msg);
				vmm_session_kill(s, true);
			}
			return;
		}
		if (!vmm_handle_frame(s, p + 4, len)) {
			if (s->state == VMM_S_ATTACHED ||
			    s->state == VMM_S_HELLO || s->state == VMM_S_HELD)
				vmm_session_kill(s, true);
			return;
		}
		off += 4 + (size_t)len;
		if (s->state != VMM_S_ATTACHED && s->state != VMM_S_HELD)
			return;
		cap = VMM_FRAME_MAX;
	}
	if (off > 0) {
		memmove(s->in, s->in + off, s->inlen - off);
		s->inlen -= off;
	}
	/* Keep the buffer from lingering at its peak size. */
	if (s->inlen == 0 && s->incap > VMM_READ_CHUNK) {
		free(s->in);
		s->in = NULL;
		s->incap = 0;
	}
}

static void
vmm_session_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct vmm_session *s = arg;

	if (s->state == VMM_S_HELLO)
		vmm_refuse(s, STATUS_FAILED_PRECONDITION, "no Attach message "
		    "within 10 seconds");
	else if (s->state == VMM_S_HELD)
		vmm_pool_expire(s);
}

/* ---- the listening socket --------------------------------------------- */

static void
vmm_backoff_cb(evutil_socket_t fd, short what, void *arg)
{
	struct vmm_server *srv = arg;

	event_add(srv->lev, NULL);
}

static void
vmm_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct vmm_server *srv = arg;
	struct timeval tv = { VMM_ATTACH_TIMEOUT_S, 0 };
	struct vmm_session *s;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	int fd;

	fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		    errno == ENOMEM) {
			struct timeval one = { 1, 0 };
			log_warn("vmm: accept (pausing for 1 s)");
			event_del(srv->lev);
			event_add(srv->backoff, &one);
		} else if (errno != EAGAIN && errno != EINTR &&
		    errno != ECONNABORTED)
			log_warn("vmm: accept");
		return;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		log_warnx("vmm: out of memory for a session");
		close(fd);
		return;
	}
	s->srv = srv;
	s->fd = fd;
	s->state = VMM_S_HELLO;
	s->guest.memfd = s->guest.uffd = -1;
	s->held.memfd = s->held.uffd = -1;
	s->pid = -1;
	s->uid = (uid_t)-1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0) {
		s->pid = cred.pid;
		s->uid = cred.uid;
	}
	TAILQ_INSERT_TAIL(&srv->sessions, s, entry);
	srv->nsessions++;
	s->rev = event_new(srv->base, fd, EV_READ | EV_PERSIST,
	    vmm_session_read_cb, s);
	s->wev = event_new(srv->base, fd, EV_WRITE | EV_PERSIST,
	    vmm_session_write_cb, s);
	s->reap = event_new(srv->base, -1, 0, vmm_session_reap_cb, s);
	s->timer = evtimer_new(srv->base, vmm_session_timeout_cb, s);
	s->out = evbuffer_new();
	if (s->rev == NULL || s->wev == NULL || s->reap == NULL ||
	    s->timer == NULL || s->out == NULL) {
		log_warnx("vmm: out of memory for a session");
		vmm_session_destroy(s);
		return;
	}
	if (srv->nsessions > VMM_MAX_SESSIONS) {
		char msg[96];
		snprintf(msg, sizeof(msg), "too many VMM connections (limit "
		    "%d)", VMM_MAX_SESSIONS);
		vmm_refuse(s, STATUS_RESOURCE_EXHAUSTED, msg);
		return;
	}
	event_add(s->rev, NULL);
	event_add(s->timer, &tv);
	log_debug("vmm: connection from pid %d uid %d", (int)s->pid,
	    (int)s->uid);
}

static int
vmm_server_start(struct event_base *base, const struct unixsock *sock,
    const struct vmm_ops *ops, void *arg, struct vmm_server **out)
{
	struct vmm_server *srv;

	if ((srv = calloc(1, sizeof(*srv))) == NULL)
		return -ENOMEM;
	srv->base = base;
	srv->sock = *sock;
	srv->ops = ops;
	srv->arg = arg;
	srv->pool_max = 4;
	srv->pool_timeout_s = 60;
	TAILQ_INIT(&srv->sessions);
	srv->lev = event_new(base, sock->fd, EV_READ | EV_PERSIST,
	    vmm_accept_cb, srv);
	srv->backoff = evtimer_new(base, vmm_backoff_cb, srv);
	if (srv->lev == NULL || srv->backoff == NULL ||
	    event_add(srv->lev, NULL) < 0) {
		srv->sock.fd = -1;	/* the caller closes it */
		srv->sock.created = false;
		vmm_server_free(srv);
		return -ENOMEM;
	}
	*out = srv;
	return 0;
}

int
vmm_server_open(struct event_base *base, const char *path, int activated_fd,
    const struct vmm_ops *ops, void *arg, struct vmm_server **out)
{
	struct unixsock sock;
	char err[512];
	int r;

	if ((r = unixsock_listen(path, 0660, activated_fd, &sock, err,
	    sizeof(err))) < 0) {
		log_warnx("VMM socket: %s", err);
		return r;
	}
	if ((r = vmm_server_start(base, &sock, ops, arg, out)) < 0) {
		unixsock_unlink(&sock);
		close(sock.fd);
		return r;
	}
	if (activated_fd >= 0)
		log_info("vmm: listening on fd %d from socket activation",
		    activated_fd);
	else
		log_info("vmm: listening on %s", path);
	return 0;
}

void
vmm_server_free(struct vmm_server *srv)
{
	struct vmm_session *s;

	if (srv == NULL)
		return;
	while ((s = TAILQ_FIRST(&srv->sessions)) != NULL) {
		/* Best effort: a queued Complete reaches the VMM. */
		if (s->out != NULL && evbuffer_get_length(s->out) > 0)
			(void)evbuffer_write(s->out, s->fd);
		if (s->state != VMM_S_DEAD)
			s->notify_detach = s->accepted;
		if (s->reap != NULL)
			event_del(s->reap);
		vmm_session_destroy(s);
	}
	if (srv->lev != NULL)
		event_free(srv->lev);
	if (srv->backoff != NULL)
		event_free(srv->backoff);
	unixsock_unlink(&srv->sock);
	if (srv->sock.fd >= 0)
		close(srv->sock.fd);
	free(srv);
}

/* ---- requests to the VMM ---------------------------------------------- */

int
vmm_session_pause(struct vmm_session *s)
{
	Pcd__VmmMessage m = PCD__VMM_MESSAGE__INIT;
	Pcd__VmmPause p = PCD__VMM_PAUSE__INIT;
	int r;

	if (s == NULL || s->state != VMM_S_ATTACHED)
		return -ENOTCONN;
	if (s->guest.role != MIG_ROLE_SOURCE)
		return -EINVAL;
	if (s->pause_sent)
		return -EALREADY;
	m.body_case = PCD__VMM_MESSAGE__BODY_PAUSE;
	m.pause = &p;
	if ((r = vmm_session_send(s, &m)) == 0)
		s->pause_sent = true;
	return r;
}

int
vmm_session_resume(struct vmm_session *s, const void *state, size_t len)
{
	Pcd__VmmMessage m = PCD__VMM_MESSAGE__INIT;
	Pcd__VmmResume rs = PCD__VMM_RESUME__INIT;

	if (s == NULL || s->state != VMM_S_ATTACHED)
		return -ENOTCONN;
	if (s->guest.role != MIG_ROLE_DEST || len > VMM_STATE_MAX ||
	    (len > 0 && state == NULL))
		return -EINVAL;
	rs.device_state.data = (uint8_t *)state;
	rs.device_state.len = len;
	m.body_case = PCD__VMM_MESSAGE__BODY_RESUME;
	m.resume = &rs;
	return vmm_session_send(s, &m);
}

int
vmm_session_complete(struct vmm_session *s, bool ok, const char *msg)
{
	if (s == NULL || s->state != VMM_S_ATTACHED)
		return -ENOTCONN;
	return vmm_send_complete(s, ok, msg);
}

static int
vmm_send_complete(struct vmm_session *s, bool ok, const char *msg)
{
	Pcd__VmmMessage m = PCD__VMM_MESSAGE__INIT;
	Pcd__VmmComplete c = PCD__VMM_COMPLETE__INIT;
	char buf[1024];

	str_copy(buf, msg != NULL ? msg : "", sizeof(buf));
	c.ok = ok;
	c.message = utf8_sanitize(buf);
	m.body_case = PCD__VMM_MESSAGE__BODY_COMPLETE;
	m.complete = &c;
	return vmm_session_send(s, &m);
}

int
vmm_session_detach(struct vmm_session *s, const char *reason)
{
	Pcd__VmmMessage m = PCD__VMM_MESSAGE__INIT;
	Pcd__VmmDetach d = PCD__VMM_DETACH__INIT;
	char buf[512];

	if (s == NULL || s->state != VMM_S_ATTACHED)
		return -ENOTCONN;
	str_copy(buf, reason != NULL ? reason : "", sizeof(buf));
	d.reason = utf8_sanitize(buf);
	m.body_case = PCD__VMM_MESSAGE__BODY_DETACH;
	m.detach = &d;
	return vmm_session_send(s, &m);
}

void
vmm_session_set_data(struct vmm_session *s, void *data)
{
	s->data = data;
}

void *
vmm_session_data(struct vmm_session *s)
{
	return s->data;
}
