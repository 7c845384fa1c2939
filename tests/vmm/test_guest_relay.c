/* test_guest_relay.c - postcopy-guest's source and destination roles, end
 * to end, through a real vmm_server, without the network.
 *
 * This program is a same-host migration layer: it serves the VMM socket
 * (daemon/vmm.c), receives the source's memfd and the destination's memfd
 * and userfaultfd, registers MISSING|MINOR on the destination VMM's guest
 * mapping THROUGH THE VMM'S USERFAULTFD (from this other process, as
 * postcopyd does), pauses the source, resumes the destination with the
 * source's device state, and resolves the destination's faults from the
 * source memfd: page written through an alias mapping then UFFDIO_CONTINUE
 * (COPY mode: UFFDIO_COPY), while a background thread moves every other
 * page. When all pages are in, both VMMs get Complete.
 *
 * A huge-page guest (--hugepages among the arguments: given to both VMMs)
 * is moved a huge page at a time: read whole into the alias, mapped by
 * one UFFDIO_CONTINUE of the huge page.
 *
 * The two postcopy-guest processes check every page against the seed; the
 * test passes when both exit 0.
 *
 * usage: test_guest_relay POSTCOPY-GUEST SIZE [DEST-ARGS...]
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "log.h"
#include "vmm.h"

#define PS		4096u
enum { ABSENT, WRITING, VALID };

extern char **environ;

struct relay {
	struct event_base	*base;
	struct event		*done_ev, *timeout_ev, *child_ev;
	pid_t			 pid[2];
	int			 status[2];	/* -1 while running */
	struct vmm_session	*src, *dst;
	struct vmm_guest	 gs, gd;
	uint64_t		 npages;	/* mapping units */
	uint64_t		 ups;		/* unit: the guest's page size */
	uint8_t			*alias;		/* dest memfd, MINOR mode */
	_Atomic uint8_t		*state;		/* per page */
	int			 stopfd;
	pthread_t		 fault_th, bulk_th;
	bool			 threads;
	int			 detached;
	atomic_uint_fast64_t	 faults, bulk_pages;
	char			 err[256];
	bool			 failed;
};

static void
relay_fail(struct relay *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
relay_fail(struct relay *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->err, sizeof(r->err), fmt, ap);
	va_end(ap);
	r->failed = true;
	fprintf(stderr, "relay: %s\n", r->err);
}

/* Brings unit idx (a page, or a huge page) into the destination; map:
 * also map it in the guest. */
static int
relay_page(struct relay *r, uint64_t idx, bool map)
{
	uint64_t ups = r->ups, addr = r->gd.base + idx * ups;
	uint8_t expect = ABSENT;
	int rc;

	if (r->gd.mode == VMM_MODE_COPY) {
		uint8_t buf[PS];
		struct uffdio_copy c = { .dst = addr,
		    .src = (uint64_t)(uintptr_t)buf, .len = PS };
		if (atomic_load(&r->state[idx]) == VALID && !map)
			return 0;
		if (pread(r->gs.memfd, buf, PS, (off_t)(r->gs.offset +
		    idx * PS)) != PS)
			return -EIO;
		rc = ioctl(r->gd.uffd, UFFDIO_COPY, &c);
		atomic_store(&r->state[idx], VALID);
	} else {
		if (atomic_compare_exchange_strong(&r->state[idx], &expect,
		    WRITING)) {
			/* Written through the alias (not registered: no
			 * fault), then valid. */
			if (pread(r->gs.memfd, r->alias + idx * ups, ups,
			    (off_t)(r->gs.offset + idx * ups)) != (ssize_t)ups)
				return -EIO;
			atomic_store(&r->state[idx], VALID);
		}
		while (atomic_load(&r->state[idx]) != VALID)
			;	/* the other thread is writing it */
		if (!map)
			return 0;
		struct uffdio_continue c = { .range = { addr, ups } };
		rc = ioctl(r->gd.uffd, UFFDIO_CONTINUE, &c);
	}
	if (rc < 0 && errno == EEXIST) {
		struct uffdio_range w = { addr, ups };
		rc = ioctl(r->gd.uffd, UFFDIO_WAKE, &w);
	}
	return rc < 0 ? -errno : 0;
}

static void *
relay_fault_main(void *arg)
{
	struct relay *r = arg;
	struct uffd_msg msgs[32];

	for (;;) {
		struct pollfd p[2] = { { r->gd.uffd, POLLIN, 0 },
		    { r->stopfd, POLLIN, 0 } };
		ssize_t n;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		n = read(r->gd.uffd, msgs, sizeof(msgs));
		if (n < 0)
			continue;
		for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++) {
			uint64_t a = msgs[i].arg.pagefault.address;
			int rc;
			if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			if (a < r->gd.base || a >= r->gd.base + r->gd.size) {
				fprintf(stderr, "relay: fault outside the "
				    "guest at 0x%" PRIx64 "\n", a);
				continue;
			}
			atomic_fetch_add(&r->faults, 1);
			if ((rc = relay_page(r, (a - r->gd.base) / r->ups,
			    true)) < 0)
				fprintf(stderr, "relay: fault at 0x%" PRIx64
				    ": %s\n", a, strerror(-rc));
		}
	}
	return NULL;
}

static void *
relay_bulk_main(void *arg)
{
	struct relay *r = arg;

	for (uint64_t i = 0; i < r->npages; i++) {
		int rc = relay_page(r, i, true);
		if (rc < 0) {
			fprintf(stderr, "relay: page %" PRIu64 ": %s\n", i,
			    strerror(-rc));
			break;
		}
		atomic_fetch_add(&r->bulk_pages, 1);
	}
	event_active(r->done_ev, EV_TIMEOUT, 0);	/* to the loop */
	return NULL;
}

static void
relay_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct relay *r = arg;
	bool ok = atomic_load(&r->bulk_pages) == r->npages;

	fprintf(stderr, "relay: %" PRIu64 " pages moved, %" PRIu64 " faults "
	    "served\n", (uint64_t)atomic_load(&r->bulk_pages),
	    (uint64_t)atomic_load(&r->faults));
	if (r->dst != NULL)
		vmm_session_complete(r->dst, ok, ok ? "every page is here" :
		    "the relay failed");
	if (r->src != NULL)
		vmm_session_complete(r->src, ok, ok ? "guest released" :
		    "the relay failed");
}

static void
relay_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct relay *r = arg;

	relay_fail(r, "timed out");
	event_base_loopbreak(r->base);
}

/* A VMM that exits before the end (e.g. 77: no /dev/kvm) ends the run. */
static void
relay_child_cb(evutil_socket_t fd, short what, void *arg)
{
	struct relay *r = arg;

	for (int i = 0; i < 2; i++) {
		int st;
		if (r->status[i] >= 0 || waitpid(r->pid[i], &st, WNOHANG) <= 0)
			continue;
		r->status[i] = WIFEXITED(st) ? WEXITSTATUS(st) :
		    128 + WTERMSIG(st);
		fprintf(stderr, "relay: %s exited %d\n", i ? "destination" :
		    "source", r->status[i]);
		if (r->status[i] != 0)
			event_base_loopbreak(r->base);
	}
}

static int
relay_attached(void *arg, struct vmm_session *s, struct vmm_guest *g,
    char *err, size_t errlen)
{
	struct relay *r = arg;
	struct uffdio_register reg;

	if (g->role == MIG_ROLE_SOURCE) {
		r->src = s;
		r->gs = *g;
	} else {
		r->dst = s;
		r->gd = *g;
		r->ups = g->page_size;
		r->npages = g->size / r->ups;
		r->state = calloc(r->npages, 1);
		if (g->mode == VMM_MODE_MINOR) {
			r->alias = mmap(NULL, g->size, PROT_READ | PROT_WRITE,
			    MAP_SHARED, g->memfd, (off_t)g->offset);
			if (r->alias == MAP_FAILED) {
				snprintf(err, errlen, "alias: %s",
				    strerror(errno));
				return -errno;
			}
		}
		/* Register on the VMM's address space through its uffd. */
		memset(&reg, 0, sizeof(reg));
		reg.range.start = g->base;
		reg.range.len = g->size;
		reg.mode = UFFDIO_REGISTER_MODE_MISSING |
		    (g->mode == VMM_MODE_MINOR ? UFFDIO_REGISTER_MODE_MINOR : 0);
		if (ioctl(g->uffd, UFFDIO_REGISTER, &reg) < 0) {
			snprintf(err, errlen, "UFFDIO_REGISTER through the VMM's "
			    "uffd: %s", strerror(errno));
			relay_fail(r, "%s", err);
			return -errno;
		}
		fprintf(stderr, "relay: registered %s on pid %d's guest "
		    "mapping 0x%" PRIx64 "+%" PRIu64 " through its uffd\n",
		    g->mode == VMM_MODE_MINOR ? "MISSING|MINOR" : "MISSING",
		    (int)g->pid, g->base, g->size);
	}
	if (r->src != NULL && r->dst != NULL) {
		if (r->gs.size != r->gd.size ||
		    r->gs.page_size != r->gd.page_size) {
			relay_fail(r, "source and destination layouts differ");
			event_base_loopbreak(r->base);
			return 0;
		}
		vmm_session_pause(r->src);
	}
	return 0;
}

static void
relay_paused(void *arg, struct vmm_session *s, const void *state, size_t len)
{
	struct relay *r = arg;

	fprintf(stderr, "relay: source paused, %zu bytes of device state\n",
	    len);
	if (pthread_create(&r->fault_th, NULL, relay_fault_main, r) != 0 ||
	    pthread_create(&r->bulk_th, NULL, relay_bulk_main, r) != 0) {
		relay_fail(r, "cannot start threads");
		event_base_loopbreak(r->base);
		return;
	}
	r->threads = true;
	if (vmm_session_resume(r->dst, state, len) < 0)
		relay_fail(r, "resume failed");
}

static void
relay_detached(void *arg, struct vmm_session *s)
{
	struct relay *r = arg;

	if (s == r->src)
		r->src = NULL;
	if (s == r->dst)
		r->dst = NULL;
	if (++r->detached == 2)
		event_base_loopbreak(r->base);
}

static const struct vmm_ops relay_ops = {
	.attached = relay_attached,
	.paused = relay_paused,
	.detached = relay_detached,
	.huge_pages = VMM_CARRY_2M | VMM_CARRY_1G,
};

static pid_t
spawn(char **argv)
{
	pid_t pid;
	int rc;

	if ((rc = posix_spawn(&pid, argv[0], NULL, NULL, argv, environ)) != 0) {
		fprintf(stderr, "relay: spawn %s: %s\n", argv[0], strerror(rc));
		exit(1);
	}
	return pid;
}

static int
reap(struct relay *r, int i)
{
	int st;

	if (r->status[i] >= 0)
		return r->status[i];
	if (waitpid(r->pid[i], &st, 0) < 0)
		return -1;
	r->status[i] = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	fprintf(stderr, "relay: %s exited %d\n", i ? "destination" : "source",
	    r->status[i]);
	return r->status[i];
}

int
main(int argc, char **argv)
{
	struct relay r = { 0 };
	struct vmm_server *srv = NULL;
	struct timeval tmo = { 240, 0 }, tick = { 0, 200000 };
	char dir[] = "/tmp/test_guest_relay.XXXXXX", path[256];
	char *sargv[32], *dargv[64];
	int n = 0, m = 0, rs, rd;
	uint64_t one = 1;

	if (argc < 3) {
		fprintf(stderr, "usage: test_guest_relay POSTCOPY-GUEST SIZE "
		    "[DEST-ARGS...]\n");
		return 2;
	}
	log_init("test_guest_relay", LOG_LVL_NOTICE);
	signal(SIGPIPE, SIG_IGN);
	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(path, sizeof(path), "%s/vmm.sock", dir);
	evthread_use_pthreads();
	r.base = event_base_new();
	r.done_ev = event_new(r.base, -1, 0, relay_done_cb, &r);
	r.timeout_ev = evtimer_new(r.base, relay_timeout_cb, &r);
	r.child_ev = event_new(r.base, -1, EV_PERSIST, relay_child_cb, &r);
	r.stopfd = eventfd(0, EFD_CLOEXEC);
	r.gs.memfd = r.gs.uffd = r.gd.memfd = r.gd.uffd = -1;
	r.status[0] = r.status[1] = -1;
	evtimer_add(r.timeout_ev, &tmo);
	event_add(r.child_ev, &tick);
	if (vmm_server_open(r.base, path, -1, &relay_ops, &r, &srv) < 0)
		return 1;

	sargv[n++] = argv[1];
	sargv[n++] = (char *)"--role";
	sargv[n++] = (char *)"source";
	sargv[n++] = (char *)"--id";
	sargv[n++] = (char *)"relay";
	sargv[n++] = (char *)"--vmm-socket";
	sargv[n++] = path;
	sargv[n++] = (char *)"--size";
	sargv[n++] = argv[2];
	sargv[n++] = (char *)"--seed";
	sargv[n++] = (char *)"7";
	sargv[n++] = (char *)"--state-size";
	sargv[n++] = (char *)"100000";
	for (int i = 3; i + 1 < argc; i++)
		if (strcmp(argv[i], "--hugepages") == 0) {
			sargv[n++] = argv[i];
			sargv[n++] = argv[i + 1];
			break;
		}
	sargv[n] = NULL;
	dargv[m++] = argv[1];
	dargv[m++] = (char *)"--role";
	dargv[m++] = (char *)"dest";
	dargv[m++] = (char *)"--id";
	dargv[m++] = (char *)"relay";
	dargv[m++] = (char *)"--vmm-socket";
	dargv[m++] = path;
	dargv[m++] = (char *)"--size";
	dargv[m++] = argv[2];
	dargv[m++] = (char *)"--json";
	for (int i = 3; i < argc && m < 62; i++)
		dargv[m++] = argv[i];
	dargv[m] = NULL;

	r.pid[0] = spawn(sargv);
	r.pid[1] = spawn(dargv);
	event_base_dispatch(r.base);

	for (int i = 0; i < 2; i++)
		if (r.status[i] < 0 && (r.failed || r.status[!i] > 0))
			kill(r.pid[i], SIGTERM);
	rs = reap(&r, 0);
	rd = reap(&r, 1);
	if (r.threads) {
		if (write(r.stopfd, &one, sizeof(one)) != sizeof(one))
			return 1;
		pthread_join(r.bulk_th, NULL);
		pthread_join(r.fault_th, NULL);
	}
	vmm_server_free(srv);
	if (r.alias != NULL && r.alias != MAP_FAILED)
		munmap(r.alias, r.gd.size);
	if (r.gs.memfd >= 0)
		close(r.gs.memfd);
	if (r.gd.memfd >= 0)
		close(r.gd.memfd);
	if (r.gd.uffd >= 0)
		close(r.gd.uffd);
	free(r.state);
	event_free(r.done_ev);
	event_free(r.timeout_ev);
	event_free(r.child_ev);
	event_base_free(r.base);
	close(r.stopfd);
	rmdir(dir);
	if (rd == 77)
		return 77;
	if (r.failed || rs != 0 || rd != 0) {
		fprintf(stderr, "FAILED: %s (source %d, destination %d)\n",
		    r.failed ? r.err : "a VMM failed", rs, rd);
		return 1;
	}
	printf("PASSED: both VMMs verified the migrated guest\n");
	return 0;
}
