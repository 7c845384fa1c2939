/* dest.c - the destination role of a migration, and its fault loop.
 *
 * On prepare the destination binds its listening socket (port 0: the
 * kernel picks one; the bound address is reported). When the destination
 * VMM has attached too:
 *   - the memfd is mapped a second time (the alias, MADV_NOHUGEPAGE), and
 *     MISSING|MINOR faults are registered on the VMM's guest mapping
 *     through the VMM's userfaultfd (which acts on the VMM's address space);
 *   - main thread: accepts the source's two TLS channels (bad peers are
 *     refused and the listener keeps serving), then receives the bulk
 *     stream: pages are read from TLS straight into the alias, hashed,
 *     marked valid and mapped into the guest a frame at a time with one
 *     UFFDIO_CONTINUE; after the source's digests it waits until every
 *     page is valid, maps what is left, compares digests and reports
 *     Complete;
 *   - urgent thread: receives Switchover (the loop resumes the VMM) and the
 *     answers to page requests, mapping each at once;
 *   - fault thread: reads uffd events; a valid page is mapped at once (a
 *     local fault), otherwise it is requested on the urgent channel with a
 *     read-ahead window (a remote fault) and mapped when it arrives.
 * A page is claimed by exactly one receiver (claimed bitmap) before any
 * byte is written; a second copy (bulk and urgent race) is read into a
 * scratch buffer and dropped, so a page the guest already owns is never
 * overwritten. A page is marked valid only after all its bytes are in.
 *
 * Network loss: a transient error on either channel (reset, timeout, broken
 * TLS record) ends the session: both channels are dropped, pages whose
 * bytes were cut off are released (claimed but never valid), the migration
 * is PAUSED, and the listener (kept open) waits for the source to come
 * back. Faulting guest threads stay blocked: their pages are never mapped
 * before they are valid. The resume Welcome lists the valid pages (and
 * whether the Switchover arrived); once the channels are back every page a
 * guest thread waits on is requested again. The fault thread pings the
 * source on the urgent channel when it has been quiet for MIG_PING_MS; a
 * channel silent for MIG_LINK_TIMEOUT_MS counts as lost. Digests are
 * compared per session (the source sends all of them again).
 *
 * Restart: with a state directory, the valid bitmap and the page hashes
 * live in a small file (m->state_path, MAP_SHARED): a page's bit is set
 * only after its bytes are in the memfd's page cache (and its hash in the
 * file), so after kill -9 the file never claims a page the page cache
 * lacks (both survive the daemon: the page cache is the VMM's memfd and
 * the file's). A VMM that attaches again (reattach) after a restart finds
 * the migration picked up from that file: valid pages are kept, everything
 * else is received again, and every guest thread that waited on the dead
 * daemon is woken to fault again. (msync is not needed for a daemon crash;
 * after a host crash the memfd is gone anyway.)
 *
 * COPY mode (the baseline, anonymous guest memory): there is no memfd and
 * no alias; pages are received into a bounce buffer and placed with
 * UFFDIO_COPY (zero runs with UFFDIO_ZEROPAGE), which maps them at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <xxhash.h>

#include "chan.h"
#include "log.h"
#include "migration_int.h"
#include "pagestate.h"
#include "probe.h"
#include "tls.h"
#include "util.h"
#include "wire.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define DEST_HANDSHAKE_MS	10000
#define DEST_LINGER_S		5	/* after Complete: wait for the source */
#define DEST_READAHEAD		8	/* pages requested per remote fault */
#define DEST_UFFD_BATCH		64	/* events per read */

struct dest {
	struct mig		*m;
	struct tls_ctx		*tls;
	int			 lfd;
	struct chan		*bulk;
	struct chan		*urgent;
	pthread_t		 main_thr, urgent_thr, fault_thr;
	bool			 main_started, urgent_started, fault_started;

	bool			 copy;		/* COPY mode */
	uint8_t			*alias;		/* MINOR mode */
	int			 memfd, uffd;
	uint64_t		 base, off, npages;
	uint32_t		 ps;
	bool			 registered;

	struct pagestate	 pg;
	/* Digests are compared as they arrive (the source sends them after
	 * its last page, so nearly every page is here by then); those of
	 * pages still in flight wait in a short list. Main thread only. */
	uint64_t		 verified, mismatched, first_bad;
	struct dest_digest {
		uint64_t	 index;
		uint64_t	 hash;
	}			*deferred;
	size_t			 ndeferred, deferred_cap;

	pthread_mutex_t		 lock;		/* below */
	pthread_cond_t		 cond;
	bool			 stop;
	bool			 finished;	/* Complete sent */
	bool			 broken;	/* this session's channels failed */

	/* The channel pointers change between sessions (main thread); the
	 * fault thread and dest_resume use them under txlock. */
	pthread_mutex_t		 txlock;
	_Atomic uint64_t	 last_tx_ns;	/* urgent: last frame sent */
	atomic_bool		 switched;	/* Switchover arrived */
	unsigned		 sessions;	/* [main] */
	atomic_bool		 unregistered;	/* guest range unregistered */
	bool			 restored;	/* picked up after a restart */
};

static bool
dest_stopped(struct dest *d)
{
	bool stop;

	pthread_mutex_lock(&d->lock);
	stop = d->stop;
	pthread_mutex_unlock(&d->lock);
	return stop;
}

/* Ends this session after an error: both channels fail so every thread
 * using them returns; the main thread decides what next. */
static void
dest_break(struct dest *d)
{
	pthread_mutex_lock(&d->lock);
	d->broken = true;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	pthread_mutex_lock(&d->txlock);
	chan_shutdown(d->urgent);
	chan_shutdown(d->bulk);
	pthread_mutex_unlock(&d->txlock);
}

/* Sends a message on the urgent channel from any thread. With no session
 * (channels lost) nothing is sent: a page request is sent again when the
 * channels are back. A send error breaks the session. */
static void
dest_send_urgent(struct dest *d, unsigned type, const ProtobufCMessage *msg)
{
	int r = 0;

	pthread_mutex_lock(&d->txlock);
	if (d->urgent != NULL && chan_error(d->urgent) == 0) {
		r = chan_send_msg(d->urgent, type, msg);
		atomic_store(&d->last_tx_ns, now_ns());
	}
	pthread_mutex_unlock(&d->txlock);
	if (r < 0)
		dest_break(d);
}

/* ---- mapping pages into the guest -------------------------------------- */

static int
dest_wake(struct dest *d, uint64_t addr, uint64_t len)
{
	struct uffdio_range r = { .start = addr, .len = len };

	if (ioctl(d->uffd, UFFDIO_WAKE, &r) < 0)
		return -errno;
	return 0;
}

/* Maps valid pages [first, first+n) into the guest (MINOR mode) and wakes
 * whoever waits on them. Pages already mapped are fine. */
static int
dest_map(struct dest *d, uint64_t first, uint64_t n)
{
	uint64_t addr = d->base + first * d->ps, end = addr + n * d->ps;

	while (addr < end) {
		struct uffdio_continue uc = {
			.range = { .start = addr, .len = end - addr },
		};

		if (ioctl(d->uffd, UFFDIO_CONTINUE, &uc) == 0)
			break;
		if (errno == EAGAIN && uc.mapped > 0) {
			addr += (uint64_t)uc.mapped;
			continue;
		}
		if (errno == EEXIST) {
			if (uc.mapped > 0)
				addr += (uint64_t)uc.mapped;
			/* Already mapped: nothing to place, but a waiter may
			 * still sleep on it. */
			dest_wake(d, addr, d->ps);
			addr += d->ps;
			continue;
		}
		if (errno == EINTR)
			continue;
		return -errno;
	}
	pagestate_mapped(&d->pg, first, n);
	return 0;
}

/* ---- receiving --------------------------------------------------------- */

static int
dest_place_copy(struct dest *d, uint64_t first, uint64_t n, const uint8_t *buf,
    bool zero)
{
	uint64_t addr = d->base + first * d->ps, end = addr + n * d->ps;

	while (addr < end) {
		int r;
		int64_t done;

		if (zero) {
			struct uffdio_zeropage z = {
				.range = { .start = addr, .len = end - addr },
			};
			r = ioctl(d->uffd, UFFDIO_ZEROPAGE, &z);
			done = z.zeropage;
		} else {
			struct uffdio_copy c = {
				.dst = addr, .len = end - addr,
				.src = (uint64_t)(uintptr_t)(buf + (addr -
				    (d->base + first * d->ps))),
			};
			r = ioctl(d->uffd, UFFDIO_COPY, &c);
			done = c.copy;
		}
		if (r == 0)
			break;
		if (errno == EAGAIN && done > 0) {
			addr += (uint64_t)done;
			continue;
		}
		if (errno == EEXIST) {
			/* Cannot happen for a claimed page unless the guest
			 * mapping changed under us. */
			if (done > 0)
				addr += (uint64_t)done;
			dest_wake(d, addr, d->ps);
			addr += d->ps;
			continue;
		}
		if (errno == EINTR)
			continue;
		return -errno;
	}
	pagestate_mapped(&d->pg, first, n);
	return 0;
}

/* Marks pages valid (after their bytes are in); the main thread waits for
 * the last one. */
static void
dest_set_valid(struct dest *d, uint64_t first, uint64_t n)
{
	if (pagestate_set_valid(&d->pg, first, n)) {
		pthread_mutex_lock(&d->lock);
		pthread_cond_broadcast(&d->cond);
		pthread_mutex_unlock(&d->lock);
	}
}

/* A PAGES frame's payload: claimed runs go to guest memory, the rest is
 * dropped. */

static int
dest_recv_pages(struct dest *d, struct chan *c, const struct wire_hdr *h,
    uint8_t *bounce, bool urgent)
{
	uint64_t k = 0;
	int r;

	while (k < h->count) {
		uint64_t i = h->index + k;
		uint64_t n = pagestate_claim_run(&d->pg, i, h->count - k);

		if (n == 0) {
			if ((r = chan_skip(c, d->ps)) < 0)
				return r;
			k++;
			continue;
		}
		if (d->copy) {
			if ((r = chan_read_full(c, bounce, n * d->ps)) < 0)
				return r;
			pagestate_hash(&d->pg, i, n, bounce);
			if ((r = dest_place_copy(d, i, n, bounce, false)) < 0)
				return chan_set_error(c, r, "UFFDIO_COPY of pages %"
				    PRIu64 "+%" PRIu64 " failed: %s", i, n,
				    strerror(-r));
			dest_set_valid(d, i, n);
		} else {
			uint8_t *p = d->alias + i * d->ps;

			if (n > 1)
				madvise(p, n * d->ps, MADV_POPULATE_WRITE);
			if ((r = chan_read_full(c, p, n * d->ps)) < 0)
				return r;
			pagestate_hash(&d->pg, i, n, p);
			dest_set_valid(d, i, n);
			if ((r = dest_map(d, i, n)) < 0)
				return chan_set_error(c, r, "UFFDIO_CONTINUE of "
				    "pages %" PRIu64 "+%" PRIu64 " failed: %s", i,
				    n, strerror(-r));
		}
		pagestate_count_pages(&d->pg, n, false, urgent);
		k += n;
	}
	return 0;
}

static int
dest_recv_zero(struct dest *d, struct chan *c, const struct wire_hdr *h,
    bool urgent)
{
	uint64_t k = 0;
	int r;

	while (k < h->count) {
		uint64_t i = h->index + k;
		uint64_t n = pagestate_claim_run(&d->pg, i, h->count - k);

		if (n == 0) {
			k++;
			continue;
		}
		pagestate_hash(&d->pg, i, n, NULL);
		if (d->copy) {
			if ((r = dest_place_copy(d, i, n, NULL, true)) < 0)
				return chan_set_error(c, r, "UFFDIO_ZEROPAGE of "
				    "pages %" PRIu64 "+%" PRIu64 " failed: %s",
				    i, n, strerror(-r));
			dest_set_valid(d, i, n);
		} else {
			/* A MINOR fault needs the page in the page cache:
			 * allocate zeroed pages without writing 4 KiB each. */
			if (fallocate(d->memfd, 0, (off_t)(d->off + i * d->ps),
			    (off_t)(n * d->ps)) < 0)
				return chan_set_error(c, -errno, "fallocate of "
				    "zero pages %" PRIu64 "+%" PRIu64 " in the "
				    "memfd failed: %s", i, n, strerror(errno));
			dest_set_valid(d, i, n);
			if ((r = dest_map(d, i, n)) < 0)
				return chan_set_error(c, r, "UFFDIO_CONTINUE of "
				    "pages %" PRIu64 "+%" PRIu64 " failed: %s",
				    i, n, strerror(-r));
		}
		pagestate_count_pages(&d->pg, n, true, urgent);
		k += n;
	}
	return 0;
}

/* Bytes count every frame; pages count the copies written (a page that
 * arrives twice counts once, on the channel that delivered it first). */
static void
dest_count_frame(struct dest *d, const struct wire_hdr *h)
{
	pagestate_count_bytes(&d->pg, WIRE_HDR_LEN + h->length);
}

/* The frames either channel may carry besides its own: a Ping (read and
 * dropped), an Error from the source, anything else is refused. */
static int
dest_recv_other(struct chan *c, const struct wire_hdr *h,
    ProtobufCMessage **msg)
{
	const Pcd__Wire__Error *e;
	int r;

	switch (h->type) {
	case WIRE_PING:
		return chan_recv_msg(c, h, msg);
	case WIRE_ERROR:
		if ((r = chan_recv_msg(c, h, msg)) < 0)
			return r;
		e = (const Pcd__Wire__Error *)*msg;
		return chan_set_error(c, -ECONNABORTED, "source reports an "
		    "error: %s", e->status && e->status->message ?
		    e->status->message : "");
	default:
		return chan_set_error(c, -EPROTO, "%s channel: unexpected %s "
		    "frame from the source", chan_name(c),
		    wire_type_name(h->type));
	}
}

static void *
dest_urgent_main(void *arg)
{
	struct dest *d = arg;
	struct wire_limits lim = { d->npages, d->ps };
	uint8_t *bounce = NULL;
	int r = 0;

	if (d->copy && (bounce = malloc((size_t)WIRE_MAX_BATCH * d->ps)) == NULL) {
		mig_post_fail(d->m, "out of memory");
		return NULL;
	}
	while (r == 0) {
		struct wire_hdr h;
		ProtobufCMessage *msg = NULL;

		if ((r = chan_recv_hdr(d->urgent, &lim, &h)) < 0)
			break;
		switch (h.type) {
		case WIRE_PAGES:
			r = dest_recv_pages(d, d->urgent, &h, bounce, true);
			dest_count_frame(d, &h);
			break;
		case WIRE_ZERO:
			r = dest_recv_zero(d, d->urgent, &h, true);
			dest_count_frame(d, &h);
			break;
		case WIRE_SWITCHOVER: {
			const Pcd__Wire__Switchover *sw;
			void *state = NULL;

			if ((r = chan_recv_msg(d->urgent, &h, &msg)) < 0)
				break;
			if (atomic_load(&d->switched)) {
				r = chan_set_error(d->urgent, -EPROTO, "urgent "
				    "channel: a second Switchover");
				break;
			}
			sw = (const Pcd__Wire__Switchover *)msg;
			if (sw->device_state.len > 0 &&
			    (state = malloc(sw->device_state.len)) == NULL) {
				r = chan_set_error(d->urgent, -ENOMEM, "out of "
				    "memory for the device state");
				break;
			}
			if (state != NULL)
				memcpy(state, sw->device_state.data,
				    sw->device_state.len);
			log_info("migration %s: switchover (%zu bytes of device "
			    "state)", d->m->id, sw->device_state.len);
			atomic_store(&d->switched, true);
			mig_post_switchover(d->m, state, sw->device_state.len,
			    sw->paused_at_ms);
			break;
		}
		default:
			r = dest_recv_other(d->urgent, &h, &msg);
			break;
		}
		if (msg != NULL)
			protobuf_c_message_free_unpacked(msg, NULL);
	}
	dest_break(d);
	free(bounce);
	return NULL;
}

/* ---- the fault loop ---------------------------------------------------- */

static int
dest_request(struct dest *d, uint64_t i)
{
	Pcd__Wire__PageRequest rq = PCD__WIRE__PAGE_REQUEST__INIT;
	uint32_t n = 1;

	/* Read ahead: the next pages nobody has asked for or holds yet. */
	while (n < DEST_READAHEAD && i + n < d->npages &&
	    !bm_test(d->pg.valid, i + n) && !bm_test(d->pg.requested, i + n) &&
	    !bm_set(d->pg.requested, i + n))
		n++;
	rq.index = i;
	rq.count = n;
	pagestate_count_request(&d->pg);
	dest_send_urgent(d, WIRE_PAGE_REQUEST, &rq.base);
	return 0;
}

static int
dest_fault(struct dest *d, uint64_t addr)
{
	uint64_t i, t0 = now_ns();
	int r;

	if (addr < d->base || addr >= d->base + d->npages * d->ps) {
		log_warnx("migration %s: fault at 0x%" PRIx64 " outside the "
		    "guest mapping", d->m->id, addr);
		return 0;
	}
	i = (addr - d->base) / d->ps;
	if (bm_test(d->pg.valid, i)) {
		pagestate_count_fault(&d->pg, true);
		if (d->copy)	/* placed with UFFDIO_COPY: just wake */
			r = dest_wake(d, d->base + i * d->ps, d->ps);
		else
			r = dest_map(d, i, 1);
		pagestate_lat_record(d->pg.c, (now_ns() - t0) / 1000);
		return r;
	}
	pagestate_count_fault(&d->pg, false);
	/* The first fault on a page demands it, even when it was asked for
	 * as read-ahead or the bulk stream carries it: those copies may sit
	 * behind megabytes of bulk data. Later faults on it just wait. */
	bool first = pagestate_fault_add(&d->pg, i, t0);
	/* The page may have become valid (and been mapped) meanwhile: the
	 * mapper may have missed our timestamp; map again (EEXIST wakes). */
	if (bm_test(d->pg.valid, i)) {
		if (d->copy)
			r = dest_wake(d, d->base + i * d->ps, d->ps);
		else
			r = dest_map(d, i, 1);
		pagestate_mapped(&d->pg, i, 1);
		return r;
	}
	if (first) {
		bm_set(d->pg.requested, i);
		return dest_request(d, i);
	}
	return 0;
}

static void *
dest_fault_main(void *arg)
{
	struct dest *d = arg;
	struct uffd_msg msgs[DEST_UFFD_BATCH];

	for (;;) {
		struct pollfd p[2] = {
			{ .fd = d->uffd, .events = POLLIN },
			{ .fd = d->m->stopfd, .events = POLLIN },
		};
		ssize_t n;
		int r = 0, pr;

		if ((pr = poll(p, 2, MIG_PING_MS / 2)) < 0) {
			if (errno == EINTR)
				continue;
			mig_post_fail(d->m, "fault loop: poll: %s", strerror(errno));
			return NULL;
		}
		if (p[1].revents & POLLIN)
			return NULL;
		if (now_ns() - atomic_load(&d->last_tx_ns) >=
		    MIG_PING_MS * 1000000ull) {
			Pcd__Wire__Ping ping = PCD__WIRE__PING__INIT;

			ping.seq = now_ns();
			dest_send_urgent(d, WIRE_PING, &ping.base);
		}
		if (pr == 0)
			continue;
		if (p[0].revents & (POLLERR | POLLHUP)) {
			mig_post_fail(d->m, "fault loop: the userfaultfd reports "
			    "an error (the VMM's address space is gone?)");
			return NULL;
		}
		n = read(d->uffd, msgs, sizeof(msgs));
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			mig_post_fail(d->m, "fault loop: reading the userfaultfd: "
			    "%s", strerror(errno));
			return NULL;
		}
		for (size_t k = 0; k < (size_t)n / sizeof(msgs[0]) && r == 0; k++) {
			if (msgs[k].event != UFFD_EVENT_PAGEFAULT)
				continue;
			r = dest_fault(d, msgs[k].arg.pagefault.address);
		}
		/* After the range was unregistered (every page mapped, its
		 * waiters woken by the kernel) a stale event's CONTINUE fails
		 * with ENOENT: nothing waits on it. */
		if (r < 0 && atomic_load(&d->unregistered))
			r = 0;
		if (r < 0) {
			if (!dest_stopped(d))
				mig_post_fail(d->m, "fault loop: cannot resolve "
				    "a fault: %s", strerror(-r));
			return NULL;
		}
	}
}

/* ---- accepting the source ---------------------------------------------- */

static void
dest_refuse(struct chan *c, uint32_t code, const char *why)
{
	Pcd__Wire__Welcome w = PCD__WIRE__WELCOME__INIT;
	Pcd__Status st = PCD__STATUS__INIT;

	st.code = code;
	st.message = (char *)why;
	w.status = &st;
	w.version = WIRE_VERSION;
	chan_send_msg(c, WIRE_WELCOME, &w.base);
}

#define DEST_HAVE_MAX	60000	/* ranges in a Welcome (its 1 MiB cap) */

/* The valid pages as ranges, for a resume Welcome. Fewer ranges than the
 * pages held is safe (the source sends the rest again and the copies are
 * dropped); more never happens: only valid pages are listed. */
static int
dest_have(struct dest *d, Pcd__Wire__PageRange **out_rs,
    Pcd__Wire__PageRange ***out_ps, size_t *out_n)
{
	Pcd__Wire__PageRange *rs = NULL, **ps = NULL;
	size_t n = 0, cap = 0;

	for (uint64_t i = 0; i < d->npages && n < DEST_HAVE_MAX; ) {
		uint64_t k = 0;

		if (!bm_test(d->pg.valid, i)) {
			i++;
			continue;
		}
		while (i + k < d->npages && bm_test(d->pg.valid, i + k))
			k++;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 256;
			void *nr = realloc(rs, nc * sizeof(*rs));

			if (nr == NULL) {
				free(rs);
				return -ENOMEM;
			}
			rs = nr;
			cap = nc;
		}
		pcd__wire__page_range__init(&rs[n]);
		rs[n].first = i;
		rs[n].count = k;
		n++;
		i += k;
	}
	if (n > 0 && (ps = calloc(n, sizeof(*ps))) == NULL) {
		free(rs);
		return -ENOMEM;
	}
	for (size_t k = 0; k < n; k++)
		ps[k] = &rs[k];
	*out_rs = rs;
	*out_ps = ps;
	*out_n = n;
	return 0;
}

/* One connection: TLS, Hello, Welcome. 0 and the channel, or an error
 * already reported as a refused peer. */
static int
dest_accept_one(struct dest *d, int fd, const char *peer, struct chan **out,
    int *kind)
{
	struct mig *m = d->m;
	struct wire_limits lim = { 0, d->ps };
	Pcd__Wire__Hello *hello = NULL;
	Pcd__Wire__Welcome w = PCD__WIRE__WELCOME__INIT;
	Pcd__Status ok = PCD__STATUS__INIT;
	struct wire_hdr h;
	struct chan *c = NULL;
	SSL *ssl = NULL;
	char why[384];
	int r;

	if ((r = tls_handshake(d->tls, fd, m->stopfd, m->tls.peer_name,
	    DEST_HANDSHAKE_MS, &ssl, why, sizeof(why))) < 0) {
		close(fd);
		if (r != -ECANCELED)
			mig_post_refused(m, "peer %s: %s", peer, why);
		return r;
	}
	if ((r = chan_new(ssl, fd, m->stopfd, "handshake", &c)) < 0) {
		SSL_free(ssl);
		close(fd);
		return r;
	}
	chan_set_timeout(c, MIG_LINK_TIMEOUT_MS);
	if ((r = chan_recv_hdr(c, &lim, &h)) < 0)
		goto fail;
	if (h.type != WIRE_HELLO) {
		r = chan_set_error(c, -EPROTO, "expected HELLO, got %s",
		    wire_type_name(h.type));
		goto fail;
	}
	if ((r = chan_recv_msg(c, &h, (ProtobufCMessage **)&hello)) < 0)
		goto fail;
	if ((r = wire_hello_check(hello, m->id, d->npages * d->ps, d->ps, why,
	    sizeof(why))) < 0) {
		dest_refuse(c, r == -EPROTONOSUPPORT ? 9 : 3, why);
		chan_set_error(c, r, "%s", why);
		goto fail;
	}
	/* A channel of a kind already accepted (no session runs while we
	 * accept) replaces it: the source gave up that attempt (e.g. its
	 * other channel failed to open) and tries again. */
	*kind = hello->channel;
	w.status = &ok;
	w.version = WIRE_VERSION;
	if (hello->resume) {
		Pcd__Wire__PageRange *rs = NULL;

		if ((r = dest_have(d, &rs, &w.have, &w.n_have)) < 0) {
			chan_set_error(c, r, "out of memory for the page list");
			goto fail;
		}
		w.switched = atomic_load(&d->switched);
		r = chan_send_msg(c, WIRE_WELCOME, &w.base);
		free(w.have);
		free(rs);
		if (r < 0)
			goto fail;
	} else if ((r = chan_send_msg(c, WIRE_WELCOME, &w.base)) < 0)
		goto fail;
	protobuf_c_message_free_unpacked(&hello->base, NULL);
	*out = c;
	return 0;
fail:
	if (r != -ECANCELED)
		mig_post_refused(m, "peer %s: %s", peer, chan_errmsg(c));
	if (hello != NULL)
		protobuf_c_message_free_unpacked(&hello->base, NULL);
	chan_free(c);
	return r;
}

static int
dest_accept_channels(struct dest *d)
{
	while (d->bulk == NULL || d->urgent == NULL) {
		struct pollfd p[2] = {
			{ .fd = d->lfd, .events = POLLIN },
			{ .fd = d->m->stopfd, .events = POLLIN },
		};
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		char host[128] = "?", serv[16] = "?", peer[160];
		struct chan *c = NULL;
		int fd, kind = 0;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (p[1].revents & POLLIN)
			return -ECANCELED;
		fd = accept4(d->lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED ||
			    errno == EAGAIN)
				continue;
			if (errno == EMFILE || errno == ENFILE) {
				log_warn("migration %s: accept", d->m->id);
				poll(&p[1], 1, 200);	/* back off */
				continue;
			}
			return -errno;
		}
		getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), serv,
		    sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV);
		snprintf(peer, sizeof(peer), "%s:%s", host, serv);
		chan_sock_setup(fd, MIG_LINK_TIMEOUT_MS);
		if (dest_accept_one(d, fd, peer, &c, &kind) < 0) {
			if (dest_stopped(d))
				return -ECANCELED;
			continue;
		}
		chan_set_name(c, kind == PCD__WIRE__CHANNEL__CHANNEL_BULK ?
		    "bulk" : "urgent");
		log_info("migration %s: %s channel from %s accepted", d->m->id,
		    kind == PCD__WIRE__CHANNEL__CHANNEL_BULK ? "bulk" : "urgent",
		    peer);
		struct chan *stale;

		pthread_mutex_lock(&d->txlock);
		if (kind == PCD__WIRE__CHANNEL__CHANNEL_BULK) {
			stale = d->bulk;
			d->bulk = c;
		} else {
			stale = d->urgent;
			d->urgent = c;
		}
		pthread_mutex_unlock(&d->txlock);
		if (stale != NULL) {
			log_info("migration %s: the new %s channel replaces one "
			    "from an abandoned attempt", d->m->id,
			    chan_name(c));
			chan_free(stale);
		}
	}
	return 0;
}

/* ---- completion -------------------------------------------------------- */

static void
dest_compare(struct dest *d, uint64_t i, uint64_t src_hash)
{
	if (d->pg.hash[i] == src_hash)
		d->verified++;
	else if (d->mismatched++ == 0)
		d->first_bad = i;
}

/* The source's digest of page i: compare now if the page is here. */
static int
dest_digest(struct dest *d, uint64_t i, uint64_t src_hash)
{
	if (bm_test(d->pg.valid, i)) {
		dest_compare(d, i, src_hash);
		return 0;
	}
	if (d->ndeferred == d->deferred_cap) {
		size_t cap = d->deferred_cap ? d->deferred_cap * 2 : 256;
		struct dest_digest *n = realloc(d->deferred, cap * sizeof(*n));

		if (n == NULL)
			return chan_set_error(d->bulk, -ENOMEM, "out of memory "
			    "for digests");
		d->deferred = n;
		d->deferred_cap = cap;
	}
	d->deferred[d->ndeferred++] = (struct dest_digest){ i, src_hash };
	return 0;
}

static int
dest_finish(struct dest *d)
{
	struct mig *m = d->m;
	Pcd__Wire__Complete done = PCD__WIRE__COMPLETE__INIT;
	uint64_t verified = 0, bad = 0, first_bad = UINT64_MAX;
	char msg[160] = "";
	int r;

	bool broken;

	pthread_mutex_lock(&d->lock);
	while (!d->stop && !d->broken &&
	    !pagestate_all_valid(&d->pg))
		pthread_cond_wait(&d->cond, &d->lock);
	broken = d->broken;
	pthread_mutex_unlock(&d->lock);
	if (dest_stopped(d))
		return -ECANCELED;
	if (broken)
		return -ECONNRESET;	/* the session's error says why */
	/* Every page is valid; map whatever is not mapped yet. */
	for (uint64_t i = 0; i < d->npages; ) {
		uint64_t n = 0;

		while (i + n < d->npages && !bm_test(d->pg.mapped, i + n))
			n++;
		if (n > 0 && !d->copy && (r = dest_map(d, i, n)) < 0)
			return chan_set_error(d->bulk, r, "UFFDIO_CONTINUE of "
			    "pages %" PRIu64 "+%" PRIu64 " failed: %s", i, n,
			    strerror(-r));
		i += n > 0 ? n : 1;
	}
	for (size_t k = 0; k < d->ndeferred; k++)
		dest_compare(d, d->deferred[k].index, d->deferred[k].hash);
	verified = d->verified;
	bad = d->mismatched;
	first_bad = d->first_bad;
	atomic_store(&m->c.pages_verified, verified);
	atomic_store(&m->c.pages_mismatched, bad);
	if (bad)
		snprintf(msg, sizeof(msg), "%" PRIu64 " pages differ from the "
		    "source's digests (first: page %" PRIu64 ")", bad, first_bad);
	/* Every page is mapped: later faults (if the kernel ever drops a
	 * mapping) are ordinary page-cache faults, not ours. */
	if (d->registered) {
		struct uffdio_range rg = { .start = d->base,
		    .len = d->npages * d->ps };

		/* Fault events still queued are stale from here on. */
		atomic_store(&d->unregistered, true);
		if (ioctl(d->uffd, UFFDIO_UNREGISTER, &rg) < 0)
			log_warn("migration %s: UFFDIO_UNREGISTER", m->id);
		else
			d->registered = false;
	}
	done.ok = bad == 0;
	done.pages_verified = verified;
	done.pages_mismatched = bad;
	done.message = msg;
	pthread_mutex_lock(&d->txlock);
	r = chan_send_msg(d->urgent, WIRE_COMPLETE, &done.base);
	pthread_mutex_unlock(&d->txlock);
	if (r < 0)
		return r;	/* sent again after a reconnect */
	pthread_mutex_lock(&d->lock);
	d->finished = true;
	pthread_mutex_unlock(&d->lock);
	log_info("migration %s: all %" PRIu64 " pages received and mapped; %"
	    PRIu64 " verified, %" PRIu64 " mismatched", m->id, d->npages,
	    verified, bad);
	/* Let the source close first (bounded): closing here at once could
	 * reset its connections (a Ping it sends meanwhile meets a closed
	 * socket) before it has read Complete, and it would reconnect to a
	 * destination that is done. The urgent thread sees its close. */
	{
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += DEST_LINGER_S;
		pthread_mutex_lock(&d->lock);
		while (!d->stop && !d->broken &&
		    pthread_cond_timedwait(&d->cond, &d->lock, &ts) == 0)
			;
		pthread_mutex_unlock(&d->lock);
	}
	mig_post(m, MIG_EV_DONE);
	return 0;
}

/* Receives the bulk stream of one session: pages, then the digests of
 * every page (compared as they arrive). 0 when all digests are in, or the
 * error. */
static int
dest_recv_bulk(struct dest *d)
{
	struct wire_limits lim = { d->npages, d->ps };
	uint8_t *bounce = NULL;
	uint64_t digests = 0;
	char why[200];
	int r;

	/* Every session brings every digest again. */
	d->verified = d->mismatched = 0;
	d->first_bad = UINT64_MAX;
	d->ndeferred = 0;
	if (d->copy && (bounce = malloc((size_t)WIRE_MAX_BATCH * d->ps)) == NULL)
		return chan_set_error(d->bulk, -ENOMEM, "out of memory");
	for (r = 0; r == 0 && digests < d->npages; ) {
		struct wire_hdr h;
		ProtobufCMessage *msg = NULL;

		if ((r = chan_recv_hdr(d->bulk, &lim, &h)) < 0)
			break;
		switch (h.type) {
		case WIRE_PAGES:
			r = dest_recv_pages(d, d->bulk, &h, bounce, false);
			dest_count_frame(d, &h);
			break;
		case WIRE_ZERO:
			r = dest_recv_zero(d, d->bulk, &h, false);
			dest_count_frame(d, &h);
			break;
		case WIRE_DIGEST: {
			const Pcd__Wire__Digest *dg;

			if ((r = chan_recv_msg(d->bulk, &h, &msg)) < 0)
				break;
			dg = (const Pcd__Wire__Digest *)msg;
			if (wire_digest_check(dg, digests, d->npages, why,
			    sizeof(why)) < 0) {
				r = chan_set_error(d->bulk, -EPROTO, "bulk channel: "
				    "%s", why);
				break;
			}
			for (size_t k = 0; k < dg->n_hash && r == 0; k++)
				r = dest_digest(d, digests + k, dg->hash[k]);
			digests += dg->n_hash;
			break;
		}
		default:
			r = dest_recv_other(d->bulk, &h, &msg);
			break;
		}
		if (msg != NULL)
			protobuf_c_message_free_unpacked(msg, NULL);
	}
	free(bounce);
	return r;
}

/* Asks again for every page a guest thread waits on (after a reconnect). */
static void
dest_rerequest(struct dest *d)
{
	uint64_t n = 0;

	for (uint64_t i = 0; i < d->npages; i++) {
		Pcd__Wire__PageRequest rq = PCD__WIRE__PAGE_REQUEST__INIT;

		if (!bm_test(d->pg.faulted, i) || bm_test(d->pg.valid, i))
			continue;
		bm_set(d->pg.requested, i);
		rq.index = i;
		rq.count = 1;
		pagestate_count_request(&d->pg);
		dest_send_urgent(d, WIRE_PAGE_REQUEST, &rq.base);
		n++;
	}
	if (n > 0)
		log_info("migration %s: asked again for %" PRIu64 " pages guest "
		    "threads wait on", d->m->id, n);
}

/* Ends a session: channels dropped, the urgent thread joined, pages whose
 * bytes were cut off released. Main thread. */
static void
dest_session_close(struct dest *d)
{
	struct chan *u, *b;
	uint64_t released;

	dest_break(d);
	if (d->urgent_started)
		pthread_join(d->urgent_thr, NULL);
	d->urgent_started = false;
	pthread_mutex_lock(&d->txlock);
	u = d->urgent;
	b = d->bulk;
	d->urgent = d->bulk = NULL;
	pthread_mutex_unlock(&d->txlock);
	chan_free(u);
	chan_free(b);
	/* No receiver runs: a claimed page that is not valid lost its bytes
	 * with the connection; it is received again. */
	released = pagestate_release_cut(&d->pg);
	pthread_mutex_lock(&d->lock);
	d->broken = false;
	pthread_mutex_unlock(&d->lock);
	log_info("migration %s: session closed; %" PRIu64 " pages cut off in "
	    "transfer will be received again", d->m->id, released);
}

/* The error that ended a session: the first channel error that is not a
 * mere consequence (-ECANCELED from dest_break), and its message. */
static int
dest_session_error(struct dest *d, char *why, size_t whylen)
{
	struct chan *cs[2] = { d->bulk, d->urgent };

	for (int k = 0; k < 2; k++) {
		int e = cs[k] != NULL ? chan_error(cs[k]) : 0;

		if (e != 0 && e != -ECANCELED) {
			snprintf(why, whylen, "%s", chan_errmsg(cs[k]));
			return e;
		}
	}
	snprintf(why, whylen, "channels dropped");
	return -ECANCELED;
}

/*
 * Allocates the guest's whole page cache and maps the alias before the
 * source connects, while the guest still runs on the source: the receivers
 * then write into present, mapped pages (no shmem allocation and no alias
 * fault per page after switchover), zero pages are already zero, and a
 * guest fault on a page not yet received is a MINOR fault like any other.
 * Pages already in the page cache (a restarted daemon) are left as they are.
 * Only an optimisation: a kernel without MADV_POPULATE_WRITE (< 5.14), or
 * too little memory, just leaves allocation to the receivers.
 */
static void
dest_prealloc(struct dest *d)
{
	const uint64_t chunk = 64ull << 20;
	uint64_t size = d->npages * d->ps, t0 = now_ns();

	if (d->copy)
		return;
	for (uint64_t off = 0; off < size; off += chunk) {
		uint64_t n = size - off < chunk ? size - off : chunk;

		if (dest_stopped(d))
			return;
		if (madvise(d->alias + off, n, MADV_POPULATE_WRITE) < 0) {
			log_warn("migration %s: preallocating the guest memory "
			    "at +%" PRIu64 " (MADV_POPULATE_WRITE); pages will "
			    "be allocated as they arrive", d->m->id, off);
			return;
		}
	}
	log_info("migration %s: %" PRIu64 " MiB of guest memory allocated and "
	    "mapped in %" PRIu64 " ms", d->m->id, size >> 20,
	    (now_ns() - t0) / 1000000);
}

static void *
dest_main(void *arg)
{
	struct dest *d = arg;
	struct mig *m = d->m;
	char why[300];
	int r;

	dest_prealloc(d);
	for (;;) {
		if ((r = dest_accept_channels(d)) < 0) {
			if (r != -ECANCELED)
				mig_post_fail(m, "accepting the source: %s",
				    strerror(-r));
			return NULL;
		}
		if (d->sessions++ == 0) {
			if (pthread_create(&d->fault_thr, NULL, dest_fault_main,
			    d) != 0) {
				mig_post_fail(m, "cannot start the fault thread");
				return NULL;
			}
			d->fault_started = true;
		}
		if (pthread_create(&d->urgent_thr, NULL, dest_urgent_main, d) != 0) {
			mig_post_fail(m, "cannot start the urgent thread");
			return NULL;
		}
		d->urgent_started = true;
		if (d->sessions == 1) {
			mig_post(m, MIG_EV_CONNECTED | (d->restored &&
			    atomic_load(&d->switched) ? MIG_EV_RESTORED : 0));
		} else {
			atomic_fetch_add(&m->c.reconnects, 1);
			mig_post_link(m, false, "the source reconnected "
			    "(session %u)", d->sessions);
			dest_rerequest(d);
		}

		r = dest_recv_bulk(d);
		if (r == 0)
			r = dest_finish(d);
		if (r == 0 || dest_stopped(d))
			return NULL;
		r = dest_session_error(d, why, sizeof(why));
		if (!chan_err_transient(r)) {
			mig_post_fail(m, "%s", why);
			return NULL;
		}
		log_warnx("migration %s: channels lost (%s); waiting for the "
		    "source to reconnect on %s", m->id, why, m->listen);
		mig_post_link(m, true, "channels lost: %s; waiting for the "
		    "source on %s", why, m->listen);
		dest_session_close(d);
	}
}

/* ---- setup and teardown (loop thread) ---------------------------------- */

/* The page state: in the state file when there is a state directory (a
 * restart finds it there), in memory otherwise. A full directory refuses
 * the migration (ENOSPC); a fresh migration whose file cannot be created
 * for another reason runs without it: it cannot survive a restart. */
static int
dest_pagestate(struct dest *d, char *err, size_t errlen)
{
	struct mig *m = d->m;
	int r;

	if (m->state_path[0] != '\0' && (r = pagestate_file_open(&d->pg, m->id,
	    m->state_path, m->g.reattach, d->copy ? 1 : 0, d->base, err,
	    errlen)) < 0) {
		if (m->g.reattach || r == -ENOSPC || r == -EDQUOT)
			return r;
		log_warnx("%s; this migration cannot survive a restart", err);
		err[0] = '\0';
		m->state_path[0] = '\0';
	}
	if (m->state_path[0] == '\0' && m->g.reattach) {
		snprintf(err, errlen, "cannot pick up migration '%s' after a "
		    "restart: this daemon keeps no page state (state_dir off)",
		    m->id);
		return -ENOENT;
	}
	return pagestate_alloc(&d->pg, err, errlen);
}

/* After a restart: what the file says is here stays (claimed, counted);
 * the guest threads that waited on the dead daemon are woken to fault
 * again (their fault messages went with it). */
static void
dest_restore(struct dest *d)
{
	struct mig *m = d->m;
	uint64_t n = pagestate_restore(&d->pg);

	atomic_store(&d->switched, m->g.resumed);
	d->restored = true;
	if (dest_wake(d, d->base, d->npages * d->ps) < 0)
		log_warn("migration %s: UFFDIO_WAKE of the guest range", m->id);
	log_notice("migration %s: picked up after a restart: %" PRIu64 " of %"
	    PRIu64 " pages already here (%s), the guest %s", m->id, n,
	    d->npages, m->state_path, m->g.resumed ? "runs" :
	    "waits for the switchover");
}

static struct dest *
dest_get(struct mig *m)
{
	struct dest *d = m->dst;

	if (d != NULL)
		return d;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	d->m = m;
	d->lfd = d->memfd = d->uffd = -1;
	pthread_mutex_init(&d->lock, NULL);
	pthread_mutex_init(&d->txlock, NULL);
	pthread_cond_init(&d->cond, NULL);
	m->dst = d;
	return d;
}

int
dest_listen(struct mig *m, char *err, size_t errlen)
{
	struct dest *d = dest_get(m);
	char host[256], portstr[8], bhost[128], bport[16];
	uint16_t port;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
	    .ai_flags = AI_PASSIVE | AI_NUMERICSERV }, *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd = -1, r, one = 1;

	if (d == NULL)
		return -ENOMEM;
	if (parse_hostport(m->addr, host, sizeof(host), &port) < 0) {
		snprintf(err, errlen, "invalid listen address '%s'", m->addr);
		return -EINVAL;
	}
	snprintf(portstr, sizeof(portstr), "%u", port);
	if ((r = getaddrinfo(host[0] ? host : NULL, portstr, &hints, &res)) != 0) {
		snprintf(err, errlen, "cannot resolve listen address %s: %s",
		    host, gai_strerror(r));
		return -EINVAL;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 8) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot listen on %s: %s", m->addr,
		    strerror(-r));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(res);
		return r;
	}
	freeaddrinfo(res);
	getnameinfo((struct sockaddr *)&ss, sl, bhost, sizeof(bhost), bport,
	    sizeof(bport), NI_NUMERICHOST | NI_NUMERICSERV);
	snprintf(m->listen, sizeof(m->listen), strchr(bhost, ':') ? "[%s]:%s" :
	    "%s:%s", bhost, bport);
	if (d->lfd >= 0)
		close(d->lfd);
	d->lfd = fd;
	return 0;
}

int
dest_start(struct mig *m, char *err, size_t errlen)
{
	struct dest *d = dest_get(m);
	int r;

	if (d == NULL)
		return -ENOMEM;
	if (d->lfd < 0) {
		snprintf(err, errlen, "destination is not listening");
		return -EINVAL;
	}
	if (m->g.uffd < 0 || m->g.page_size < 512 ||
	    m->g.page_size > WIRE_MAX_PAGE_SIZE || m->g.size == 0 ||
	    m->g.size % m->g.page_size != 0) {
		snprintf(err, errlen, "unusable destination guest (uffd %d, size "
		    "%" PRIu64 ", page size %" PRIu32 ")", m->g.uffd, m->g.size,
		    m->g.page_size);
		return -EINVAL;
	}
	d->copy = m->g.mode == VMM_MODE_COPY;
	d->memfd = m->g.memfd;
	d->uffd = m->g.uffd;
	d->base = m->g.base;
	d->off = m->g.offset;
	d->ps = m->g.page_size;
	d->npages = m->g.size / d->ps;
	pagestate_init(&d->pg, d->npages, d->ps, &m->c);
	if ((r = dest_pagestate(d, err, errlen)) < 0)
		return r;

	if (!d->copy) {
		d->alias = mmap(NULL, m->g.size, PROT_READ | PROT_WRITE,
		    MAP_SHARED, d->memfd, (off_t)d->off);
		if (d->alias == MAP_FAILED) {
			r = -errno;
			d->alias = NULL;
			snprintf(err, errlen, "cannot map the destination memfd "
			    "(the alias, %" PRIu64 " bytes at offset %" PRIu64
			    "): %s", m->g.size, d->off, strerror(-r));
			return r;
		}
		/* Base pages only: UFFDIO_CONTINUE maps what the alias wrote
		 * page by page. */
		char thp[32];
		bool forced = false;

		if (probe_thp_guard(d->alias, m->g.size, thp, sizeof(thp),
		    &forced) < 0)
			log_warn("migration %s: madvise(MADV_NOHUGEPAGE) on the "
			    "alias", m->id);
		else if (forced)
			log_warnx("migration %s: shmem_enabled is 'force': "
			    "huge pages may back guest memory despite "
			    "MADV_NOHUGEPAGE", m->id);
	}
	{
		uint64_t mode = d->copy ? UFFDIO_REGISTER_MODE_MISSING :
		    UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR;
		int fl = fcntl(d->uffd, F_GETFL);

		if (fl >= 0 && !(fl & O_NONBLOCK))
			fcntl(d->uffd, F_SETFL, fl | O_NONBLOCK);
		/* Registers the guest range through the VMM's userfaultfd and
		 * checks the kernel grants CONTINUE (COPY in COPY mode) and
		 * WAKE; -ENOTSUP means registered but an ioctl is missing. */
		r = probe_uffd(d->uffd, d->base, m->g.size, mode, NULL, err,
		    errlen);
		if (r == 0 || r == -ENOTSUP)
			d->registered = true;
		if (r < 0)
			return r;
	}
	if (m->g.reattach)
		dest_restore(d);
	if ((r = tls_ctx_new(m->tls.dir, true, &d->tls, err, errlen)) < 0)
		return r;
	if (pthread_create(&d->main_thr, NULL, dest_main, d) != 0) {
		snprintf(err, errlen, "cannot start the destination thread");
		return -EAGAIN;
	}
	d->main_started = true;
	log_info("migration %s: destination ready: %" PRIu64 " pages of %"
	    PRIu32 " bytes at 0x%" PRIx64 " in %s mode, waiting for the source "
	    "on %s", m->id, d->npages, d->ps, d->base, d->copy ? "COPY" :
	    "MINOR", m->listen);
	return 0;
}

void
dest_stop(struct mig *m)
{
	struct dest *d = m->dst;

	if (d == NULL)
		return;
	pthread_mutex_lock(&d->lock);
	d->stop = true;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	/* The stop eventfd (written by the caller) interrupts every wait. */
	if (d->main_started)
		pthread_join(d->main_thr, NULL);
	chan_shutdown(d->bulk);
	chan_shutdown(d->urgent);
	if (d->urgent_started)
		pthread_join(d->urgent_thr, NULL);
	if (d->fault_started)
		pthread_join(d->fault_thr, NULL);
	/* A registration left after a failure stays: the guest must not see
	 * zero pages where its memory never arrived (the VMM is told). */
	chan_free(d->bulk);
	chan_free(d->urgent);
	tls_ctx_free(d->tls);
	if (d->lfd >= 0)
		close(d->lfd);
	if (d->alias != NULL)
		munmap(d->alias, d->npages * d->ps);
	pagestate_free(&d->pg);
	free(d->deferred);
	pthread_mutex_destroy(&d->lock);
	pthread_mutex_destroy(&d->txlock);
	pthread_cond_destroy(&d->cond);
	free(d);
	m->dst = NULL;
}

int
dest_resume(struct mig *m, char *err, size_t errlen)
{
	struct dest *d = m->dst;
	bool up;

	if (d == NULL) {
		snprintf(err, errlen, "migration '%s' has no channels yet", m->id);
		return -EINVAL;
	}
	pthread_mutex_lock(&d->txlock);
	up = d->urgent != NULL && d->bulk != NULL;
	if (up)
		chan_set_error(d->urgent, -ECONNRESET, "urgent channel: dropped "
		    "by a Resume request");
	pthread_mutex_unlock(&d->txlock);
	/* Channels up: drop them (the source reconnects); otherwise the
	 * listener already waits for the source. */
	if (up)
		dest_break(d);
	return 0;
}
