/* pcvmm.c - the VMM attach library (see pcvmm.h, VMM-PROTOCOL.md). */
#include "pcvmm.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <linux/magic.h>

#include "vmm.pb-c.h"

#define PCVMM_FRAME_MAX		(PCVMM_STATE_MAX + 4096u)
#define PCVMM_CONNECT_MS	5000
#define PCVMM_REPLY_MS		10000
#define PCVMM_RETRY_MS		100
#define PCVMM_MAX_FDS		3	/* memfd, userfaultfd, pagemap */
#define PCVMM_UFFD_IOC_NEW	_IO(0xAA, 0x00)	/* USERFAULTFD_IOC_NEW */

struct pcvmm {
	int		 fd;
	uint8_t		*in;
	size_t		 inlen, incap;
	/* For attaching again after the daemon restarted. */
	struct pcvmm_attach_args a;	/* strings below, fds the caller's */
	char		*socket_path;
	char		*id;
	bool		 resumed;	/* RESUME received */
	unsigned	 reattaches;
};

static int64_t
pcvmm_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ms left until deadline; -1 for no deadline. */
static int
pcvmm_left(int64_t deadline)
{
	int64_t left;

	if (deadline < 0)
		return -1;
	left = deadline - pcvmm_now_ms();
	return left < 0 ? 0 : (int)(left > 1000000 ? 1000000 : left);
}

static int
pcvmm_wait(int fd, short events, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	int r;

	for (;;) {
		r = poll(&p, 1, pcvmm_left(deadline));
		if (r > 0)
			return 0;
		if (r == 0)
			return -EAGAIN;
		if (errno != EINTR)
			return -errno;
	}
}

/* Writes all of buf (fds, if any, with the first byte). */
static int
pcvmm_write_all(int fd, const uint8_t *buf, size_t len, const int *fds,
    int nfds)
{
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int) * PCVMM_MAX_FDS)];
	} cbuf;
	size_t off = 0;

	if (nfds < 0 || nfds > PCVMM_MAX_FDS)
		return -EINVAL;
	while (off < len) {
		struct iovec iov = { (void *)(buf + off), len - off };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n;

		if (off == 0 && nfds > 0) {
			struct cmsghdr *c;
			memset(&cbuf, 0, sizeof(cbuf));
			msg.msg_control = cbuf.buf;
			msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
			c = CMSG_FIRSTHDR(&msg);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
			memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
		}
		n = sendmsg(fd, &msg, MSG_NOSIGNAL);
		if (n < 0) {
			int r;
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return -errno;
			if ((r = pcvmm_wait(fd, POLLOUT, -1)) < 0)
				return r;
			continue;
		}
		off += (size_t)n;
	}
	return 0;
}

static int
pcvmm_send(struct pcvmm *v, const Pcd__VmmMessage *m, const int *fds, int nfds)
{
	size_t len = pcd__vmm_message__get_packed_size(m);
	uint8_t *buf;
	int r;

	if (len == 0 || len > PCVMM_FRAME_MAX)
		return -EMSGSIZE;
	if ((buf = malloc(len + 4)) == NULL)
		return -ENOMEM;
	buf[0] = len & 0xff;
	buf[1] = (len >> 8) & 0xff;
	buf[2] = (len >> 16) & 0xff;
	buf[3] = (len >> 24) & 0xff;
	pcd__vmm_message__pack(m, buf + 4);
	r = pcvmm_write_all(v->fd, buf, len + 4, fds, nfds);
	free(buf);
	return r;
}

/* Returns a decoded frame, or NULL with *rc = -EAGAIN/-errno. */
static Pcd__VmmMessage *
pcvmm_recv(struct pcvmm *v, int64_t deadline, int *rc)
{
	Pcd__VmmMessage *m;
	uint32_t len;
	ssize_t n;

	for (;;) {
		if (v->inlen >= 4) {
			len = (uint32_t)v->in[0] | (uint32_t)v->in[1] << 8 |
			    (uint32_t)v->in[2] << 16 | (uint32_t)v->in[3] << 24;
			if (len == 0 || len > PCVMM_FRAME_MAX) {
				*rc = -EPROTO;
				return NULL;
			}
			if (v->inlen - 4 >= len) {
				m = pcd__vmm_message__unpack(NULL, len, v->in + 4);
				memmove(v->in, v->in + 4 + len,
				    v->inlen - 4 - len);
				v->inlen -= 4 + (size_t)len;
				if (m == NULL)
					*rc = -EPROTO;
				return m;
			}
			if (v->incap < 4 + (size_t)len) {
				uint8_t *p = realloc(v->in, 4 + (size_t)len);
				if (p == NULL) {
					*rc = -ENOMEM;
					return NULL;
				}
				v->in = p;
				v->incap = 4 + (size_t)len;
			}
		} else if (v->incap < 4096) {
			uint8_t *p = realloc(v->in, 4096);
			if (p == NULL) {
				*rc = -ENOMEM;
				return NULL;
			}
			v->in = p;
			v->incap = 4096;
		}
		n = recv(v->fd, v->in + v->inlen, v->incap - v->inlen,
		    MSG_DONTWAIT);
		if (n > 0) {
			v->inlen += (size_t)n;
			continue;
		}
		if (n == 0) {
			*rc = -ECONNRESET;
			return NULL;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN) {
			*rc = -errno;
			return NULL;
		}
		if ((*rc = pcvmm_wait(v->fd, POLLIN, deadline)) < 0)
			return NULL;
	}
}

static int
pcvmm_connect(const char *path, int timeout_ms, int *out, char *err,
    size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int64_t deadline;
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "socket path %s is too long", path);
		return -ENAMETOOLONG;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if (timeout_ms == 0)
		timeout_ms = PCVMM_CONNECT_MS;
	deadline = pcvmm_now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
	for (;;) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			snprintf(err, errlen, "socket: %s", strerror(errno));
			return -errno;
		}
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
			break;
		int e = errno;
		close(fd);
		if ((e != ENOENT && e != ECONNREFUSED && e != EAGAIN) ||
		    pcvmm_now_ms() >= deadline) {
			snprintf(err, errlen, "cannot connect to postcopyd at "
			    "%s: %s", path, strerror(e));
			return -e;
		}
		struct timespec ts = { 0, PCVMM_RETRY_MS * 1000000L };
		nanosleep(&ts, NULL);
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
		int e = errno;
		snprintf(err, errlen, "fcntl: %s", strerror(e));
		close(fd);
		return -e;
	}
	*out = fd;
	return 0;
}

static int
pcvmm_code_errno(uint32_t code)
{
	switch (code) {
	case 3:	 return -EINVAL;
	case 5:	 return -ENOENT;
	case 6:	 return -EEXIST;
	case 7:	 return -EPERM;
	case 8:	 return -ENOSPC;
	case 9:	 return -EBUSY;
	case 12: return -EOPNOTSUPP;
	case 14: return -EAGAIN;
	}
	return -EPROTO;
}

/* The page size (KernelPageSize in /proc/self/smaps) of the mapping that
 * holds addr, or 0 when it cannot be read. */
static uint32_t
pcvmm_map_page_size(const void *addr)
{
	unsigned long long a, b, kb;
	uintptr_t p = (uintptr_t)addr;
	bool inside = false;
	uint32_t ps = 0;
	char line[512];
	FILE *f;

	if ((f = fopen("/proc/self/smaps", "re")) == NULL)
		return 0;
	while (ps == 0 && fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "%llx-%llx ", &a, &b) == 2 &&
		    strchr(line, ':') != NULL && line[0] != 'V')
			inside = p >= a && p < b;
		else if (inside &&
		    sscanf(line, "KernelPageSize: %llu kB", &kb) == 1)
			ps = (uint32_t)(kb << 10);
	}
	fclose(f);
	return ps;
}

/* The page size to declare when the caller left it 0: the huge page size
 * of a hugetlbfs memfd, or in COPY mode (no memfd) of the guest mapping
 * (anonymous huge pages, MAP_HUGETLB), else the host's base page size. */
static uint32_t
pcvmm_page_size(const struct pcvmm_attach_args *a)
{
	long ps = sysconf(_SC_PAGESIZE);
	struct statfs sf;
	struct stat st;
	uint32_t mps;

	if (a->page_size != 0)
		return a->page_size;
	if (a->memfd >= 0 && fstatfs(a->memfd, &sf) == 0 &&
	    (uint64_t)sf.f_type == (uint64_t)HUGETLBFS_MAGIC &&
	    fstat(a->memfd, &st) == 0 && st.st_blksize > 0)
		return (uint32_t)st.st_blksize;
	if (a->mode == PCVMM_MODE_COPY && a->base != NULL &&
	    (mps = pcvmm_map_page_size(a->base)) != 0)
		return mps;
	return ps > 0 ? (uint32_t)ps : 4096;
}

/* Connects and attaches v->a; on success v->fd is the attached socket. */
static int
pcvmm_do_attach(struct pcvmm *v, bool reattach, int connect_ms, char *err,
    size_t errlen)
{
	const struct pcvmm_attach_args *a = &v->a;
	Pcd__VmmMessage m = PCD__VMM_MESSAGE__INIT, *rm = NULL;
	Pcd__VmmAttach at = PCD__VMM_ATTACH__INIT;
	int fds[PCVMM_MAX_FDS], nfds = 0, r;

	v->fd = -1;
	v->inlen = 0;
	r = pcvmm_connect(a->socket_path != NULL ? a->socket_path :
	    PCVMM_DEFAULT_SOCKET, connect_ms, &v->fd, err, errlen);
	if (r < 0)
		return r;
	if (a->memfd >= 0)
		fds[nfds++] = a->memfd;
	if (a->uffd >= 0)
		fds[nfds++] = a->uffd;
	if (a->role == PCVMM_ROLE_SOURCE && a->track_dirty) {
		fds[nfds++] = a->pagemap_fd;	/* after the uffd */
		at.dirty_tracking = true;
	}
	at.version = PCVMM_PROTOCOL_VERSION;
	at.id = (char *)a->id;
	at.role = (Pcd__VmmRole)a->role;
	at.mode = (Pcd__VmmMode)a->mode;
	at.base_addr = (uint64_t)(uintptr_t)a->base;
	at.size = a->size;
	at.offset = a->offset;
	at.page_size = pcvmm_page_size(a);
	at.reattach = reattach;
	at.resumed = reattach && v->resumed;
	m.body_case = PCD__VMM_MESSAGE__BODY_ATTACH;
	m.attach = &at;
	if ((r = pcvmm_send(v, &m, fds, nfds)) < 0) {
		snprintf(err, errlen, "sending the attach message: %s",
		    strerror(-r));
		goto fail;
	}
	rm = pcvmm_recv(v, pcvmm_now_ms() + (a->reply_timeout_ms > 0 ?
	    a->reply_timeout_ms : PCVMM_REPLY_MS), &r);
	if (rm == NULL) {
		snprintf(err, errlen, "no attach reply from postcopyd: %s",
		    r == -EAGAIN ? "timed out" : r == -ECONNRESET ?
		    "connection closed" : strerror(-r));
		if (r == -EAGAIN)
			r = -ETIMEDOUT;
		goto fail;
	}
	if (rm->body_case != PCD__VMM_MESSAGE__BODY_ATTACH_REPLY) {
		snprintf(err, errlen, "postcopyd answered the attach with "
		    "message case %d", (int)rm->body_case);
		r = -EPROTO;
		goto fail;
	}
	if (rm->attach_reply->status != NULL &&
	    rm->attach_reply->status->code != 0) {
		snprintf(err, errlen, "%s", rm->attach_reply->status->message);
		r = pcvmm_code_errno(rm->attach_reply->status->code);
		goto fail;
	}
	pcd__vmm_message__free_unpacked(rm, NULL);
	return 0;
fail:
	if (rm != NULL)
		pcd__vmm_message__free_unpacked(rm, NULL);
	if (v->fd >= 0)
		close(v->fd);
	v->fd = -1;
	return r;
}

/* The daemon's connection was lost: attach again until the restarted
 * daemon takes us, or the reattach time is up. */
static int
pcvmm_reattach(struct pcvmm *v)
{
	int64_t deadline = pcvmm_now_ms() + v->a.reattach_timeout_ms;
	char err[256];
	int r;

	if (v->fd >= 0)
		close(v->fd);
	v->fd = -1;
	for (;;) {
		int left = pcvmm_left(deadline);

		if (left <= 0)
			return -ECONNRESET;
		r = pcvmm_do_attach(v, true, left, err, sizeof(err));
		if (r == 0) {
			v->reattaches++;
			return 0;
		}
		/* Refused (the restarted daemon has not restored the
		 * migration yet) or not listening yet: try again. */
		struct timespec ts = { 0, 200 * 1000000L };
		nanosleep(&ts, NULL);
	}
}

int
pcvmm_attach(const struct pcvmm_attach_args *a, struct pcvmm **out,
    char *err, size_t errlen)
{
	struct pcvmm *v = NULL;
	long ps = sysconf(_SC_PAGESIZE);
	int r;
	char dummy[1];

	if (err == NULL || errlen == 0) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = '\0';
	*out = NULL;
	if (a == NULL || a->id == NULL) {
		snprintf(err, errlen, "no migration id");
		return -EINVAL;
	}
	if (a->role == PCVMM_ROLE_SOURCE && a->track_dirty &&
	    (a->uffd < 0 || a->pagemap_fd < 0 || a->memfd < 0)) {
		snprintf(err, errlen, "track_dirty needs memfd, uffd and "
		    "pagemap_fd (see pcvmm_dirty_fds_open)");
		return -EINVAL;
	}
	/* shmem THP must not back guest faults (one fault would map 2 MiB
	 * the daemon has not filled). Only a mapping the daemon would accept
	 * can be advised; the daemon reports anything else. */
	if (a->base != NULL && a->size > 0 && ps > 0 &&
	    (uintptr_t)a->base % (uintptr_t)ps == 0 &&
	    madvise(a->base, a->size, MADV_NOHUGEPAGE) < 0) {
		r = -errno;
		snprintf(err, errlen, "madvise(MADV_NOHUGEPAGE) on the guest "
		    "mapping %p+%llu: %s", a->base,
		    (unsigned long long)a->size, strerror(errno));
		return r;
	}
	if ((v = calloc(1, sizeof(*v))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	v->fd = -1;
	v->a = *a;
	v->socket_path = a->socket_path ? strdup(a->socket_path) : NULL;
	v->id = strdup(a->id);
	if ((a->socket_path && v->socket_path == NULL) || v->id == NULL) {
		snprintf(err, errlen, "out of memory");
		r = -ENOMEM;
		goto fail;
	}
	v->a.socket_path = v->socket_path;
	v->a.id = v->id;
	if ((r = pcvmm_do_attach(v, false, a->connect_timeout_ms, err,
	    errlen)) < 0)
		goto fail;
	*out = v;
	return 0;
fail:
	free(v->socket_path);
	free(v->id);
	free(v->in);
	free(v);
	return r;
}

int
pcvmm_dirty_fds_open(int *uffd, int *pagemap_fd, char *err, size_t errlen)
{
	int dev, fd = -1, r;

	*uffd = *pagemap_fd = -1;
	if ((dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC)) >= 0) {
		fd = ioctl(dev, PCVMM_UFFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		close(dev);
	}
	if (fd < 0)
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "userfaultfd for dirty tracking: %s",
		    strerror(errno));
		return r;
	}
	if ((*pagemap_fd = open("/proc/self/pagemap", O_RDONLY |
	    O_CLOEXEC)) < 0) {
		r = -errno;
		snprintf(err, errlen, "/proc/self/pagemap: %s",
		    strerror(errno));
		close(fd);
		return r;
	}
	*uffd = fd;
	return 0;
}

int
pcvmm_fd(const struct pcvmm *v)
{
	return v->fd;
}

int
pcvmm_next_event(struct pcvmm *v, int timeout_ms, struct pcvmm_event *ev)
{
	Pcd__VmmMessage *m;
	int r = 0;

	memset(ev, 0, sizeof(*ev));
	m = pcvmm_recv(v, timeout_ms < 0 ? -1 : pcvmm_now_ms() + timeout_ms,
	    &r);
	if (m == NULL) {
		/* The daemon went away mid-migration: attach again to its
		 * restarted self. */
		if (r != -EAGAIN && r != -ENOMEM && v->a.reattach_timeout_ms > 0 &&
		    pcvmm_reattach(v) == 0)
			return -EAGAIN;
		return r;
	}
	switch (m->body_case) {
	case PCD__VMM_MESSAGE__BODY_PAUSE:
		ev->type = PCVMM_EV_PAUSE;
		break;
	case PCD__VMM_MESSAGE__BODY_RESUME:
		ev->type = PCVMM_EV_RESUME;
		v->resumed = true;
		if (m->resume->device_state.len > PCVMM_STATE_MAX) {
			r = -EPROTO;
			break;
		}
		if (m->resume->device_state.len > 0) {
			ev->state = malloc(m->resume->device_state.len);
			if (ev->state == NULL) {
				r = -ENOMEM;
				break;
			}
			memcpy(ev->state, m->resume->device_state.data,
			    m->resume->device_state.len);
			ev->state_len = m->resume->device_state.len;
		}
		break;
	case PCD__VMM_MESSAGE__BODY_DETACH:
		/* The daemon stops and leaves the migration resumable: as
		 * after a loss, attach again to its restarted self. */
		pcd__vmm_message__free_unpacked(m, NULL);
		if (v->a.reattach_timeout_ms > 0 && pcvmm_reattach(v) == 0)
			return -EAGAIN;
		return -ECONNRESET;
	case PCD__VMM_MESSAGE__BODY_COMPLETE:
		ev->type = PCVMM_EV_COMPLETE;
		ev->ok = m->complete->ok;
		snprintf(ev->message, sizeof(ev->message), "%s",
		    m->complete->message);
		break;
	default:
		r = -EPROTO;
		break;
	}
	pcd__vmm_message__free_unpacked(m, NULL);
	return r;
}

void
pcvmm_event_clear(struct pcvmm_event *ev)
{
	if (ev == NULL)
		return;
	free(ev->state);
	ev->state = NULL;
	ev->state_len = 0;
}

int
pcvmm_send_paused(struct pcvmm *v, const void *state, size_t len)
{
	Pcd__VmmMessage m = PCD__VMM_MESSAGE__INIT;
	Pcd__VmmPaused p = PCD__VMM_PAUSED__INIT;

	if (len > PCVMM_STATE_MAX || (len > 0 && state == NULL))
		return -EINVAL;
	p.device_state.data = (uint8_t *)state;
	p.device_state.len = len;
	m.body_case = PCD__VMM_MESSAGE__BODY_PAUSED;
	m.paused = &p;
	return pcvmm_send(v, &m, NULL, 0);
}

void
pcvmm_detach(struct pcvmm *v, const char *reason)
{
	Pcd__VmmMessage m = PCD__VMM_MESSAGE__INIT;
	Pcd__VmmDetach d = PCD__VMM_DETACH__INIT;

	if (v == NULL)
		return;
	d.reason = (char *)(reason != NULL ? reason : "");
	m.body_case = PCD__VMM_MESSAGE__BODY_DETACH;
	m.detach = &d;
	if (v->fd >= 0) {
		(void)pcvmm_send(v, &m, NULL, 0);
		close(v->fd);
	}
	free(v->socket_path);
	free(v->id);
	free(v->in);
	free(v);
}
