/* ctl.c - the control server (see ctl.h, proto/README.md).
 *
 * Every call is answered on the loop thread without blocking: the
 * migration table's functions only register work for the data-path
 * threads, libvirt actions run on virt.c's worker, and Watch streams from
 * the table's notify callback plus a timer.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common.pb-c.h"
#include "config.h"
#include "control.pb-c.h"
#include "ctl.h"
#include "daemon.h"
#include "jobstats.h"
#include "log.h"
#include "migration.h"
#include "probe.h"
#include "rpc.h"
#include "tls.h"
#include "unixsock.h"
#include "util.h"
#include "virt.h"
#include "wire.h"

#define CTL_OUT_MAX		(4u << 20)	/* stop reading above this */
#define CTL_WATCH_OUT_MAX	(1u << 20)	/* skip watch events above */
#define CTL_BACKOFF_SEC		1
#define CTL_ERR			512

#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)			\
	for ((var) = TAILQ_FIRST(head);					\
	    (var) != NULL && ((tvar) = TAILQ_NEXT(var, field), 1);	\
	    (var) = (tvar))
#endif

struct ctl_server;

struct ctl_watch {
	TAILQ_ENTRY(ctl_watch)	 entry;		/* in server's list */
	struct ctl_conn		*conn;
	uint32_t		 call_id;
	char			 id[MIG_ID_MAX + 1];
	struct event		*timer;
	uint64_t		 interval_ns;
	uint64_t		 last_ns;	/* last event sent */
};

struct ctl_conn {
	TAILQ_ENTRY(ctl_conn)	 entry;
	struct ctl_server	*srv;
	struct bufferevent	*bev;
	char			 peer[160];	/* for the log */
	unsigned		 inflight;	/* open watches */
	bool			 closing;	/* close once output is sent */
	bool			 throttled;	/* reading paused */
	bool			 tls;
	bool			 handshaken;	/* TLS up */
	bool			 refusing;	/* over budget: told, closed */
	bool			 lingering;	/* closing, all sent */
	uid_t			 uid;		/* Unix socket peer */
	struct event		*timer;		/* handshake, idle, close */
};

struct ctl_server {
	struct daemon		*d;
	struct evconnlistener	*unix_lis;
	struct evconnlistener	*tcp_lis;
	struct event		*backoff;
	SSL_CTX			*ssl_ctx;
	struct virt		*virt;
	struct unixsock		 sock;		/* the control socket */
	char			 tcp_listen[128];
	char			 tls_dir[PATH_MAX];	/* default profile */
	unsigned		 max_connections;	/* Unix socket */
	unsigned		 max_tcp_connections;
	unsigned		 handshake_timeout;	/* s */
	unsigned		 idle_timeout;		/* s */
	unsigned		 max_inflight;
	unsigned		 max_migrations;
	uint32_t		 max_frame;
	unsigned		 nunix, ntcp, nrefusing;
	unsigned		 refused[2];	/* [tls]: since last below */
	TAILQ_HEAD(, ctl_conn)	 conns;
	TAILQ_HEAD(, ctl_watch)	 watches;
};

static void ctl_conn_free(struct ctl_conn *c);

/* ---- sending ---- */

static int
ctl_send(struct ctl_conn *c, uint8_t kind, uint16_t flags, uint32_t call_id,
    uint16_t method, const ProtobufCMessage *msg)
{
	uint8_t *buf;
	size_t n;
	int r;

	if ((r = rpc_frame_pack(kind, flags, call_id, method, msg, &buf,
	    &n)) < 0) {
		log_warnx("control: cannot pack an answer for %s: %s",
		    c->peer, strerror(-r));
		return r;
	}
	r = bufferevent_write(c->bev, buf, n);
	free(buf);
	return r < 0 ? -ENOMEM : 0;
}

static void
ctl_send_error(struct ctl_conn *c, uint32_t call_id, uint16_t method,
    uint32_t code, const char *fmt, ...) PCD_PRINTF(5, 6);

static void
ctl_send_error(struct ctl_conn *c, uint32_t call_id, uint16_t method,
    uint32_t code, const char *fmt, ...)
{
	Pcd__Status st = PCD__STATUS__INIT;
	char msg[CTL_ERR];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	utf8_sanitize(msg);
	st.code = code;
	st.message = msg;
	log_info("control: %s: call %u: %s: %s", c->peer, call_id,
	    status_name(code), msg);
	ctl_send(c, RPC_ERROR, RPC_F_END_STREAM, call_id, method,
	    &st.base);
}

static void
ctl_reply(struct ctl_conn *c, const struct rpc_hdr *h,
    const ProtobufCMessage *msg)
{
	ctl_send(c, RPC_REPLY, RPC_F_END_STREAM, h->call_id, h->method, msg);
}

/* Fills status from a data-path result. */
static void
ctl_status(Pcd__Status *st, int r, char *err)
{
	st->code = status_from_errno(r);
	st->message = (char *)(r < 0 ? (err[0] != '\0' ? utf8_sanitize(err) :
	    strerror(-r)) : "");
}

/* ---- MigrationInfo ---- */

static int
ctl_info(struct ctl_server *s, Pcd__MigrationInfo *mi,
    struct mig_stats *st)
{
	const char *dom, *state, *error;
	int r;

	/* Both may quote a peer, cut to fit. */
	utf8_sanitize(st->errmsg);
	utf8_sanitize(st->refused);
	pcd__migration_info__init(mi);
	if ((r = jobstats_info_fill(mi, st)) < 0)
		return r;
	if (virt_get(s->virt, st->id, &dom, &state, &error)) {
		mi->libvirt_domain = (char *)dom;
		mi->libvirt_state = (char *)state;
		mi->libvirt_error = (char *)error;
	}
	return 0;
}

/* ---- Watch ---- */

static void ctl_watch_free(struct ctl_watch *w);

/* Sends one event; returns true when the stream has ended. */
static bool
ctl_watch_send(struct ctl_watch *w, bool forced)
{
	struct ctl_conn *c = w->conn;
	struct mig_stats st;
	Pcd__WatchEvent ev = PCD__WATCH_EVENT__INIT;
	Pcd__Status status = PCD__STATUS__INIT;
	Pcd__MigrationInfo mi;
	bool final;
	int r;

	ev.status = &status;
	if ((r = mig_get_stats(c->srv->d->migs, w->id, &st)) < 0) {
		status.code = STATUS_NOT_FOUND;
		status.message = "migration is gone";
		ev.final = true;
		ctl_send(c, RPC_EVENT, RPC_F_END_STREAM, w->call_id,
		    RPC_M_WATCH, &ev.base);
		return true;
	}
	final = mig_terminal(st.state);
	if (!final && !forced && evbuffer_get_length(
	    bufferevent_get_output(c->bev)) > CTL_WATCH_OUT_MAX)
		return false;		/* the client is not reading */
	if (ctl_info(c->srv, &mi, &st) < 0)
		return false;
	ev.info = &mi;
	ev.final = final;
	ctl_send(c, RPC_EVENT, final ? RPC_F_END_STREAM : 0, w->call_id,
	    RPC_M_WATCH, &ev.base);
	w->last_ns = now_ns();
	jobstats_info_clear(&mi);
	return final;
}

static void
ctl_watch_tick(evutil_socket_t fd, short what, void *arg)
{
	struct ctl_watch *w = arg;

	/* A change was just reported: this tick has nothing new. */
	if (now_ns() - w->last_ns < w->interval_ns / 2)
		return;
	if (ctl_watch_send(w, false))
		ctl_watch_free(w);
}

static void
ctl_watch_free(struct ctl_watch *w)
{
	if (w == NULL)
		return;
	TAILQ_REMOVE(&w->conn->srv->watches, w, entry);
	w->conn->inflight--;
	if (w->timer != NULL)
		event_free(w->timer);
	free(w);
}

/* The migration table's notify callback: fan out to watches. (libvirt
 * follows transitions: main.c's transition hook.) */
static void
ctl_notify(void *arg, const char *id)
{
	struct ctl_server *s = arg;
	struct ctl_watch *w, *tmp;

	TAILQ_FOREACH_SAFE(w, &s->watches, entry, tmp) {
		if (strcmp(w->id, id) == 0 && ctl_watch_send(w, false))
			ctl_watch_free(w);
	}
}

/* ---- handlers ---- */

static void
ctl_tls(struct mig_tls *t, const Pcd__TlsProfile *p, const char *def)
{
	memset(t, 0, sizeof(*t));
	str_copy(t->dir, p != NULL && p->dir[0] != '\0' ? p->dir : def,
	    sizeof(t->dir));
	if (p != NULL)
		str_copy(t->peer_name, p->peer_name, sizeof(t->peer_name));
}

int
ctl_args_check(const char *id, const Pcd__TlsProfile *tls,
    const Pcd__LibvirtDomain *lv, char *err, size_t errlen)
{
	if (mig_id_check(id, "control", err, errlen) < 0)
		return -EINVAL;
	if (tls != NULL && (strlen(tls->dir) >= PATH_MAX ||
	    strlen(tls->peer_name) >= 256)) {
		snprintf(err, errlen, "TLS directory or peer name too long");
		return -EINVAL;
	}
	if (lv != NULL && (lv->uri[0] == '\0') != (lv->domain[0] == '\0')) {
		snprintf(err, errlen, "libvirt control needs both a URI and "
		    "a domain name");
		return -EINVAL;
	}
	return 0;
}

static int
ctl_check_common(struct ctl_server *s, const char *id, const Pcd__TlsProfile *tls,
    const Pcd__LibvirtDomain *lv, char *err, size_t errlen)
{
	int r;

	if (s->d->stopping) {
		snprintf(err, errlen, "postcopyd is shutting down");
		return -ESHUTDOWN;
	}
	if ((r = ctl_args_check(id, tls, lv, err, errlen)) < 0)
		return r;
	if (mig_count_active(s->d->migs) >= s->max_migrations) {
		snprintf(err, errlen, "%u migrations are active already "
		    "(max_migrations)", s->max_migrations);
		return -EUSERS;
	}
	return 0;
}

static void
ctl_track_libvirt(struct ctl_server *s, const char *id, enum mig_role role,
    const Pcd__LibvirtDomain *lv)
{
	int r;

	if (lv == NULL || lv->uri[0] == '\0')
		return;
	if ((r = virt_track(s->virt, id, role, lv->uri, lv->domain)) < 0)
		log_warnx("migration %s: cannot track libvirt domain %s: %s",
		    id, lv->domain, strerror(-r));
}

static void
ctl_prepare(struct ctl_conn *c, const struct rpc_hdr *h,
    const Pcd__PrepareRequest *req)
{
	struct ctl_server *s = c->srv;
	struct mig_prepare_args a = { 0 };
	Pcd__PrepareReply rep = PCD__PREPARE_REPLY__INIT;
	Pcd__Status st = PCD__STATUS__INIT;
	struct mig_stats ms;
	char err[CTL_ERR] = "";
	int r;

	rep.status = &st;
	r = ctl_check_common(s, req->id, req->tls, req->libvirt, err,
	    sizeof(err));
	if (r == 0) {
		a.id = req->id;
		a.listen = req->listen[0] != '\0' ? req->listen : "0.0.0.0:0";
		ctl_tls(&a.tls, req->tls, s->tls_dir);
		if (req->libvirt != NULL && req->libvirt->uri[0] != '\0') {
			a.libvirt_uri = req->libvirt->uri;
			a.libvirt_domain = req->libvirt->domain;
		}
		r = mig_prepare(s->d->migs, &a, err, sizeof(err));
	}
	if (r == 0 && mig_get_stats(s->d->migs, req->id, &ms) == 0)
		rep.listen = ms.listen;
	if (r == 0) {
		log_notice("migration %s: prepared (destination, listening on "
		    "%s) for %s", req->id, rep.listen, c->peer);
		ctl_track_libvirt(s, req->id, MIG_ROLE_DEST, req->libvirt);
	}
	ctl_status(&st, r, err);
	ctl_reply(c, h, &rep.base);
}

static void
ctl_migrate(struct ctl_conn *c, const struct rpc_hdr *h,
    const Pcd__MigrateRequest *req)
{
	struct ctl_server *s = c->srv;
	struct mig_migrate_args a = { 0 };
	Pcd__MigrateReply rep = PCD__MIGRATE_REPLY__INIT;
	Pcd__Status st = PCD__STATUS__INIT;
	char err[CTL_ERR] = "";
	int r;

	rep.status = &st;
	r = ctl_check_common(s, req->id, req->tls, req->libvirt, err,
	    sizeof(err));
	if (r == 0 && req->dest[0] == '\0') {
		snprintf(err, sizeof(err), "no destination address given");
		r = -EINVAL;
	}
	if (r == 0 && (req->mode < PCD__MIGRATE_MODE__MIGRATE_MODE_DEFAULT ||
	    req->mode > PCD__MIGRATE_MODE__MIGRATE_MODE_PRECOPY)) {
		snprintf(err, sizeof(err), "unknown migrate mode %d (0 default, "
		    "1 postcopy-only, 2 precopy)", (int)req->mode);
		r = -EINVAL;
	}
	if (r == 0 && req->bulk_channels > WIRE_BULK_CHANNELS_MAX) {
		snprintf(err, sizeof(err), "bulk_channels %" PRIu32 " out of "
		    "range: 1 .. %d (0: the daemon's default)",
		    req->bulk_channels, WIRE_BULK_CHANNELS_MAX);
		r = -EINVAL;
	}
	if (r == 0) {
		a.id = req->id;
		a.dest = req->dest;
		a.bandwidth_bps = req->bandwidth_bps;
		a.mode = (int)req->mode;
		a.rounds = req->rounds;
		a.auto_switch = req->auto_switch;
		a.max_downtime_ms = req->max_downtime_ms;
		a.bulk_channels = req->bulk_channels;
		ctl_tls(&a.tls, req->tls, s->tls_dir);
		if (req->libvirt != NULL && req->libvirt->uri[0] != '\0') {
			a.libvirt_uri = req->libvirt->uri;
			a.libvirt_domain = req->libvirt->domain;
		}
		r = mig_migrate(s->d->migs, &a, err, sizeof(err));
	}
	if (r == 0) {
		log_notice("migration %s: migrating to %s for %s", req->id,
		    req->dest, c->peer);
		ctl_track_libvirt(s, req->id, MIG_ROLE_SOURCE, req->libvirt);
	}
	ctl_status(&st, r, err);
	ctl_reply(c, h, &rep.base);
}

static void
ctl_status_call(struct ctl_conn *c, const struct rpc_hdr *h,
    const Pcd__StatusRequest *req)
{
	struct ctl_server *s = c->srv;
	Pcd__StatusReply rep = PCD__STATUS_REPLY__INIT;
	Pcd__Status st = PCD__STATUS__INIT;
	struct mig_stats *ms = NULL;
	Pcd__MigrationInfo *mi = NULL, **ptrs = NULL;
	size_t n = 0, filled = 0;
	char err[CTL_ERR] = "";

	rep.status = &st;
	if (req->id[0] != '\0') {
		if ((ms = malloc(sizeof(*ms))) == NULL)
			goto nomem;
		if (mig_get_stats(s->d->migs, req->id, ms) < 0) {
			snprintf(err, sizeof(err), "no migration '%.64s'",
			    req->id);
			ctl_status(&st, -ENOENT, err);
			goto out;
		}
		n = 1;
	} else {
		n = mig_list(s->d->migs, NULL, 0);
		if (n > 0 && (ms = calloc(n, sizeof(*ms))) == NULL)
			goto nomem;
		if (n > 0)
			n = mig_list(s->d->migs, ms, n);
	}
	if (n > 0 && ((mi = calloc(n, sizeof(*mi))) == NULL ||
	    (ptrs = calloc(n, sizeof(*ptrs))) == NULL))
		goto nomem;
	for (; filled < n; filled++) {
		if (ctl_info(s, &mi[filled], &ms[filled]) < 0)
			goto nomem;
		ptrs[filled] = &mi[filled];
	}
	rep.migrations = ptrs;
	rep.n_migrations = n;
	goto out;
nomem:
	snprintf(err, sizeof(err), "out of memory");
	ctl_status(&st, -ENOMEM, err);
out:
	ctl_reply(c, h, &rep.base);
	for (size_t i = 0; i < filled; i++)
		jobstats_info_clear(&mi[i]);
	free(ptrs);
	free(mi);
	free(ms);
}

static void
ctl_cancel(struct ctl_conn *c, const struct rpc_hdr *h,
    const Pcd__CancelRequest *req)
{
	struct ctl_server *s = c->srv;
	Pcd__CancelReply rep = PCD__CANCEL_REPLY__INIT;
	Pcd__Status st = PCD__STATUS__INIT;
	struct mig_stats ms;
	char err[CTL_ERR] = "";
	int r;

	rep.status = &st;
	/* The state machine decides: refused after switchover, with why. */
	r = req->destination_completed ?
	    mig_end_dest_completed(s->d->migs, req->id, err, sizeof(err)) :
	    mig_cancel(s->d->migs, req->id, err, sizeof(err));
	if (r < 0 && err[0] == '\0' && r == -ENOENT)
		snprintf(err, sizeof(err), "no migration '%.64s'", req->id);
	if (mig_get_stats(s->d->migs, req->id, &ms) == 0)
		rep.state = (char *)mig_state_name(ms.state);
	if (r == 0)
		log_notice("migration %s: %s by %s", req->id,
		    req->destination_completed ? "ended as completed on the "
		    "destination" : "cancelled", c->peer);
	else
		log_notice("migration %s: cancel refused for %s: %s", req->id,
		    c->peer, err[0] != '\0' ? err : strerror(-r));
	ctl_status(&st, r, err);
	ctl_reply(c, h, &rep.base);
}

static void
ctl_watch(struct ctl_conn *c, const struct rpc_hdr *h,
    const Pcd__WatchRequest *req)
{
	struct ctl_server *s = c->srv;
	struct ctl_watch *w;
	struct mig_stats ms;
	unsigned ms_int = req->interval_ms == 0 ? 500 : req->interval_ms;
	struct timeval tv;

	if (mig_get_stats(s->d->migs, req->id, &ms) < 0) {
		Pcd__WatchEvent ev = PCD__WATCH_EVENT__INIT;
		Pcd__Status st = PCD__STATUS__INIT;
		char err[CTL_ERR];

		snprintf(err, sizeof(err), "no migration '%.64s'", req->id);
		st.code = STATUS_NOT_FOUND;
		st.message = err;
		ev.status = &st;
		ev.final = true;
		ctl_send(c, RPC_EVENT, RPC_F_END_STREAM, h->call_id,
		    RPC_M_WATCH, &ev.base);
		return;
	}
	if (ms_int < 50)
		ms_int = 50;
	if (ms_int > 60000)
		ms_int = 60000;
	if ((w = calloc(1, sizeof(*w))) == NULL)
		goto nomem;
	w->conn = c;
	w->call_id = h->call_id;
	w->interval_ns = (uint64_t)ms_int * 1000000;
	str_copy(w->id, req->id, sizeof(w->id));
	TAILQ_INSERT_TAIL(&s->watches, w, entry);
	c->inflight++;
	tv.tv_sec = ms_int / 1000;
	tv.tv_usec = (ms_int % 1000) * 1000;
	w->timer = event_new(s->d->base, -1, EV_PERSIST, ctl_watch_tick, w);
	if (w->timer == NULL || event_add(w->timer, &tv) < 0) {
		ctl_watch_free(w);
		goto nomem;
	}
	if (ctl_watch_send(w, true))
		ctl_watch_free(w);
	return;
nomem:
	ctl_send_error(c, h->call_id, h->method, STATUS_RESOURCE_EXHAUSTED,
	    "cannot start a watch: out of memory");
}

static void
ctl_set_bandwidth(struct ctl_conn *c, const struct rpc_hdr *h,
    const Pcd__SetBandwidthRequest *req)
{
	Pcd__SetBandwidthReply rep = PCD__SET_BANDWIDTH_REPLY__INIT;
	Pcd__Status st = PCD__STATUS__INIT;
	char err[CTL_ERR] = "";
	int r;

	rep.status = &st;
	r = mig_set_bandwidth(c->srv->d->migs, req->id, req->bandwidth_bps,
	    err, sizeof(err));
	if (r == -ENOENT && err[0] == '\0')
		snprintf(err, sizeof(err), "no migration '%.64s'", req->id);
	if (r == 0)
		log_notice("migration %s: bulk bandwidth limit %llu B/s "
		    "(%s)", req->id, (unsigned long long)req->bandwidth_bps,
		    c->peer);
	ctl_status(&st, r, err);
	ctl_reply(c, h, &rep.base);
}

static void
ctl_resume(struct ctl_conn *c, const struct rpc_hdr *h,
    const Pcd__ResumeRequest *req)
{
	Pcd__ResumeReply rep = PCD__RESUME_REPLY__INIT;
	Pcd__Status st = PCD__STATUS__INIT;
	struct mig_stats ms;
	char err[CTL_ERR] = "";
	int r;

	rep.status = &st;
	r = mig_resume(c->srv->d->migs, req->id, req->dest, err, sizeof(err));
	if (mig_get_stats(c->srv->d->migs, req->id, &ms) == 0)
		rep.state = (char *)mig_state_name(ms.state);
	if (r == 0)
		log_notice("migration %s: resume requested by %s", req->id,
		    c->peer);
	ctl_status(&st, r, err);
	ctl_reply(c, h, &rep.base);
}

static void
ctl_start_postcopy(struct ctl_conn *c, const struct rpc_hdr *h,
    const Pcd__StartPostcopyRequest *req)
{
	Pcd__StartPostcopyReply rep = PCD__START_POSTCOPY_REPLY__INIT;
	Pcd__Status st = PCD__STATUS__INIT;
	struct mig_stats ms;
	char err[CTL_ERR] = "";
	int r;

	rep.status = &st;
	r = mig_start_postcopy(c->srv->d->migs, req->id, err, sizeof(err));
	if (mig_get_stats(c->srv->d->migs, req->id, &ms) == 0)
		rep.state = (char *)mig_state_name(ms.state);
	if (r == 0)
		log_notice("migration %s: switch to postcopy requested by %s",
		    req->id, c->peer);
	ctl_status(&st, r, err);
	ctl_reply(c, h, &rep.base);
}

static void
ctl_version(struct ctl_conn *c, const struct rpc_hdr *h)
{
	Pcd__VersionReply rep = PCD__VERSION_REPLY__INIT;
	Pcd__Status st = PCD__STATUS__INIT;

	rep.status = &st;
	rep.version = PCD_VERSION;
	rep.protocol = CONTROL_PROTOCOL;
	rep.active_migrations = (uint32_t)mig_count_active(c->srv->d->migs);
	rep.max_migrations = c->srv->max_migrations;
	ctl_reply(c, h, &rep.base);
}

/* The probe is a handful of non-blocking syscalls on a memfd and a
 * userfaultfd of our own: cheap enough for the loop. */
static void
ctl_check_kernel(struct ctl_conn *c, const struct rpc_hdr *h)
{
	Pcd__CheckKernelReply rep = PCD__CHECK_KERNEL_REPLY__INIT;
	Pcd__Status st = PCD__STATUS__INIT;
	Pcd__KernelFeature feat[PROBE_NFEATURES], *fp[PROBE_NFEATURES];
	struct probe_report r;
	char summary[1024];
	int rc;

	memset(&r, 0, sizeof(r));
	rep.status = &st;
	rc = probe_kernel(&r);
	rep.ok = rc == 0;
	rep.release = r.release;
	if (rc == 0)
		snprintf(summary, sizeof(summary), "kernel %s supports "
		    "postcopy with userfaultfd minor faults on shmem",
		    r.release);
	else if (rc == -ENOTSUP)
		probe_report_missing(&r, summary, sizeof(summary));
	else
		snprintf(summary, sizeof(summary), "the kernel probe could "
		    "not run: %s", strerror(-rc));
	rep.summary = summary;
	if (rc < 0 && rc != -ENOTSUP) {
		st.code = STATUS_INTERNAL;
		st.message = summary;
	}
	for (int i = 0; i < PROBE_NFEATURES; i++) {
		pcd__kernel_feature__init(&feat[i]);
		feat[i].name = (char *)probe_feature_name(i);
		feat[i].present = r.checked[i] && r.present[i];
		feat[i].detail = r.checked[i] ? r.detail[i] : "not checked";
		fp[i] = &feat[i];
	}
	rep.features = fp;
	rep.n_features = PROBE_NFEATURES;
	ctl_reply(c, h, &rep.base);
}

/* ---- dispatch ---- */

/* Every request that names a migration has it in field "id" (Status: may
 * be empty, meaning all): checked here, once, so no handler echoes or
 * looks up an id that is not one. */
static int
ctl_check_id(const ProtobufCMessage *req, char *err, size_t errlen)
{
	const ProtobufCFieldDescriptor *f;
	const char *id;

	f = protobuf_c_message_descriptor_get_field_by_name(req->descriptor,
	    "id");
	if (f == NULL || f->type != PROTOBUF_C_TYPE_STRING)
		return 0;
	id = *(const char *const *)((const char *)req + f->offset);
	if (req->descriptor == &pcd__status_request__descriptor &&
	    (id == NULL || id[0] == '\0'))
		return 0;
	return mig_id_check(id, req->descriptor->short_name, err, errlen);
}

static void
ctl_dispatch(struct ctl_conn *c, const struct rpc_hdr *h, const uint8_t *p,
    size_t n)
{
	const ProtobufCMethodDescriptor *m;
	ProtobufCMessage *req;
	char err[CTL_ERR];
	uint32_t code;

	if ((code = rpc_request_decode(h, p, n, &req, err, sizeof(err))) != 0) {
		ctl_send_error(c, h->call_id, h->method, code, "%s", err);
		return;
	}
	if (c->inflight >= c->srv->max_inflight) {
		protobuf_c_message_free_unpacked(req, NULL);
		ctl_send_error(c, h->call_id, h->method, STATUS_RESOURCE_EXHAUSTED,
		    "%u calls in flight on this connection (max_inflight)",
		    c->inflight);
		return;
	}
	if (ctl_check_id(req, err, sizeof(err)) < 0) {
		protobuf_c_message_free_unpacked(req, NULL);
		ctl_send_error(c, h->call_id, h->method, STATUS_INVALID_ARGUMENT,
		    "%s", err);
		return;
	}
	m = rpc_method_get(h->method);
	/* Every call names its caller; read-only ones (which orchestrators
	 * poll) at debug level so they do not flood the journal. */
	if (h->method == RPC_M_STATUS || h->method == RPC_M_VERSION ||
	    h->method == RPC_M_WATCH || h->method == RPC_M_CHECK_KERNEL)
		log_debug("control: call %u %s from %s", h->call_id, m->name,
		    c->peer);
	else
		log_info("control: call %u %s from %s", h->call_id, m->name,
		    c->peer);
	switch (h->method) {
	case RPC_M_PREPARE:
		ctl_prepare(c, h, (Pcd__PrepareRequest *)req);
		break;
	case RPC_M_MIGRATE:
		ctl_migrate(c, h, (Pcd__MigrateRequest *)req);
		break;
	case RPC_M_STATUS:
		ctl_status_call(c, h, (Pcd__StatusRequest *)req);
		break;
	case RPC_M_CANCEL:
		ctl_cancel(c, h, (Pcd__CancelRequest *)req);
		break;
	case RPC_M_WATCH:
		ctl_watch(c, h, (Pcd__WatchRequest *)req);
		break;
	case RPC_M_RESUME:
		ctl_resume(c, h, (Pcd__ResumeRequest *)req);
		break;
	case RPC_M_SET_BANDWIDTH:
		ctl_set_bandwidth(c, h, (Pcd__SetBandwidthRequest *)req);
		break;
	case RPC_M_START_POSTCOPY:
		ctl_start_postcopy(c, h, (Pcd__StartPostcopyRequest *)req);
		break;
	case RPC_M_VERSION:
		ctl_version(c, h);
		break;
	case RPC_M_CHECK_KERNEL:
		ctl_check_kernel(c, h);
		break;
	default:
		ctl_send_error(c, h->call_id, h->method, STATUS_UNIMPLEMENTED,
		    "method %s is not implemented", m->name);
		break;
	}
	protobuf_c_message_free_unpacked(req, NULL);
}

/* ---- connections ----
 *
 * Budgets: the Unix socket and the TCP listener count separately
 * (max_connections, max_tcp_connections), so peers that never start TLS
 * cannot take the local socket's place; past its budget the Unix socket
 * keeps CTL_UNIX_RESERVE more for root and the daemon's own user. A
 * connection over budget is told so with a RESOURCE_EXHAUSTED error frame
 * (call id 0) and closed: at once on the Unix socket; over TCP after the
 * TLS handshake (no frame can be sent before), for at most CTL_REFUSING
 * such peers at a time, and beyond those closed without a word.
 * Deadlines: a TCP connection finishes TLS within
 * control_handshake_timeout; any connection without a Watch open that
 * sends no complete call for control_idle_timeout is closed (with a
 * DEADLINE_EXCEEDED error frame); a closing connection whose peer does not
 * read is dropped after CTL_CLOSE_GRACE_SEC. */

#define CTL_UNIX_RESERVE	4
#define CTL_REFUSING		4
#define CTL_CLOSE_GRACE_SEC	5

static void
ctl_conn_arm(struct ctl_conn *c, unsigned sec)
{
	struct timeval tv = { sec, 0 };

	if (c->timer != NULL)
		evtimer_add(c->timer, &tv);
}

/* The last answer is sent: half-close, and read (discarding) until the
 * peer closes or the grace ends. Closing with its request unread would
 * send a TCP reset, which can destroy our answer before it is read. */
static void
ctl_conn_linger(struct ctl_conn *c)
{
	c->lingering = true;
	shutdown(bufferevent_getfd(c->bev), SHUT_WR);
	bufferevent_enable(c->bev, EV_READ);
	ctl_conn_arm(c, CTL_CLOSE_GRACE_SEC);
}

static void
ctl_conn_close_later(struct ctl_conn *c)
{
	c->closing = true;
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
		ctl_conn_linger(c);
		return;
	}
	ctl_conn_arm(c, CTL_CLOSE_GRACE_SEC);
}

/* A length below the envelope or over max_frame is refused as soon as its
 * 4 bytes are in: a bare length must not hold the connection open. */
static bool
ctl_conn_bad_len(struct ctl_conn *c, struct evbuffer *in)
{
	uint8_t lb[4];
	uint32_t len;

	if (evbuffer_get_length(in) < 4 ||
	    evbuffer_get_length(in) >= RPC_HDR_SIZE)
		return false;
	evbuffer_copyout(in, lb, sizeof(lb));
	len = (uint32_t)lb[0] << 24 | (uint32_t)lb[1] << 16 |
	    (uint32_t)lb[2] << 8 | lb[3];
	if (len >= RPC_ENVELOPE_SIZE && len <= c->srv->max_frame)
		return false;
	ctl_send_error(c, 0, 0, STATUS_INVALID_ARGUMENT, len > c->srv->max_frame ?
	    "frame of %u bytes is over the limit (max_frame %u): closing" :
	    "frame length %u is below the %u-byte envelope: closing", len,
	    len > c->srv->max_frame ? c->srv->max_frame : RPC_ENVELOPE_SIZE);
	ctl_conn_close_later(c);
	return true;
}

static void
ctl_conn_read(struct bufferevent *bev, void *arg)
{
	struct ctl_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	uint8_t hb[RPC_HDR_SIZE];
	struct rpc_hdr h;
	int r;

	if (c->refusing || c->closing) {   /* read, so close sends no RST */
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	while (!c->closing && evbuffer_get_length(in) >= RPC_HDR_SIZE) {
		size_t n;
		uint8_t *p;

		evbuffer_copyout(in, hb, sizeof(hb));
		if ((r = rpc_hdr_decode(hb, c->srv->max_frame, &h)) < 0) {
			ctl_send_error(c, 0, 0, STATUS_INVALID_ARGUMENT,
			    r == -EMSGSIZE ? "frame of %u bytes is over the "
			    "limit (max_frame %u): closing" : "malformed frame "
			    "header (length %u, version %u): closing", h.len,
			    r == -EMSGSIZE ? c->srv->max_frame : h.version);
			ctl_conn_close_later(c);
			return;
		}
		n = rpc_payload_len(&h);
		if (evbuffer_get_length(in) < RPC_HDR_SIZE + n)
			break;
		evbuffer_drain(in, RPC_HDR_SIZE);
		p = n > 0 ? evbuffer_pullup(in, (ev_ssize_t)n) : NULL;
		if (n > 0 && p == NULL) {
			log_warnx("control: %s: out of memory", c->peer);
			ctl_conn_close_later(c);
			return;
		}
		ctl_dispatch(c, &h, p, n);
		evbuffer_drain(in, n);
		if (!c->closing)
			ctl_conn_arm(c, c->srv->idle_timeout);
	}
	if (!c->closing && ctl_conn_bad_len(c, in))
		return;
	if (!c->closing && evbuffer_get_length(bufferevent_get_output(bev)) >
	    CTL_OUT_MAX) {
		c->throttled = true;
		bufferevent_disable(bev, EV_READ);
	}
}

static void
ctl_conn_write(struct bufferevent *bev, void *arg)
{
	struct ctl_conn *c = arg;

	if (c->closing) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0 &&
		    !c->lingering)
			ctl_conn_linger(c);
		return;
	}
	if (c->throttled) {
		c->throttled = false;
		bufferevent_enable(bev, EV_READ);
	}
}

static void
ctl_conn_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct ctl_conn *c = arg;
	struct ctl_server *s = c->srv;

	if (c->closing) {
		if (!c->lingering)
			log_info("control: %s does not read its last answer: "
			    "dropped", c->peer);
		ctl_conn_free(c);
	} else if (c->tls && !c->handshaken) {
		log_info("control: %s: no TLS handshake within %u s "
		    "(control_handshake_timeout): closed", c->peer,
		    s->handshake_timeout);
		ctl_conn_free(c);
	} else if (c->inflight > 0) {
		ctl_conn_arm(c, s->idle_timeout);	/* a Watch is open */
	} else {
		ctl_send_error(c, 0, 0, STATUS_DEADLINE_EXCEEDED, "no call for %u "
		    "s (control_idle_timeout): closing", s->idle_timeout);
		ctl_conn_close_later(c);
	}
}

/* Over budget: the error frame, then close. */
static void
ctl_conn_refuse(struct ctl_conn *c)
{
	struct ctl_server *s = c->srv;

	if (c->tls)
		ctl_send_error(c, 0, 0, STATUS_RESOURCE_EXHAUSTED, "%u TCP "
		    "control connections are open (max_tcp_connections): "
		    "try again later", s->ntcp);
	else
		ctl_send_error(c, 0, 0, STATUS_RESOURCE_EXHAUSTED, "%u control "
		    "connections are open on the Unix socket "
		    "(max_connections %u): try again later", s->nunix,
		    s->max_connections);
	ctl_conn_close_later(c);
}

static void
ctl_conn_tls_up(struct ctl_conn *c)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	X509 *cert = ssl != NULL ? SSL_get_peer_certificate(ssl) : NULL;
	char subj[96] = "?";
	size_t l = strlen(c->peer);

	/* Name the peer by its certificate. */
	if (cert != NULL) {
		X509_NAME_get_text_by_NID(X509_get_subject_name(cert),
		    NID_commonName, subj, sizeof(subj));
		X509_free(cert);
	}
	snprintf(c->peer + l, sizeof(c->peer) - l, " CN=%s", subj);
	c->handshaken = true;
	if (c->refusing) {
		ctl_conn_refuse(c);
		return;
	}
	log_info("control: TLS client %s connected", c->peer);
	ctl_conn_arm(c, c->srv->idle_timeout);
}

static void
ctl_conn_event(struct bufferevent *bev, short what, void *arg)
{
	struct ctl_conn *c = arg;

	if (what & BEV_EVENT_CONNECTED) {
		ctl_conn_tls_up(c);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		unsigned long e;
		char buf[256];

		/* The first error says why; libevent may add a bare errno. */
		if ((e = bufferevent_get_openssl_error(bev)) != 0 &&
		    ERR_GET_LIB(e) != 0) {
			ERR_error_string_n(e, buf, sizeof(buf));
			log_warnx("control: %s: TLS: %s", c->peer, buf);
		}
		while (bufferevent_get_openssl_error(bev) != 0)
			;
	}
	log_debug("control: %s disconnected", c->peer);
	ctl_conn_free(c);
}

static void
ctl_conn_free(struct ctl_conn *c)
{
	struct ctl_watch *w, *tmp;
	struct ctl_server *s;

	if (c == NULL)
		return;
	s = c->srv;
	TAILQ_FOREACH_SAFE(w, &s->watches, entry, tmp)
		if (w->conn == c)
			ctl_watch_free(w);
	TAILQ_REMOVE(&s->conns, c, entry);
	if (c->refusing)
		s->nrefusing--;
	else if (c->tls)
		s->ntcp--;
	else
		s->nunix--;
	if (!c->refusing && s->refused[c->tls] > 0) {
		log_notice("control: %s connections below the limit again; %u "
		    "refused meanwhile", c->tls ? "TCP" : "Unix",
		    s->refused[c->tls]);
		s->refused[c->tls] = 0;
	}
	if (c->timer != NULL)
		event_free(c->timer);
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	free(c);
}

static void
ctl_conn_name(struct ctl_conn *c, evutil_socket_t fd, struct sockaddr *sa)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (!c->tls) {
		struct ucred cr;
		socklen_t len = sizeof(cr);

		c->uid = (uid_t)-1;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0) {
			c->uid = cr.uid;
			snprintf(c->peer, sizeof(c->peer), "uid %u pid %d",
			    (unsigned)cr.uid, (int)cr.pid);
		} else
			snprintf(c->peer, sizeof(c->peer), "uid ? pid ?");
		return;
	}
	if (sa->sa_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		port = ntohs(sin->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		port = ntohs(s6->sin6_port);
	}
	snprintf(c->peer, sizeof(c->peer), "tcp %s:%u", host, port);
}

/* Whether c fits the budget of its listener; false: refuse it. */
static bool
ctl_conn_budget(struct ctl_server *s, struct ctl_conn *c)
{
	if (c->tls)
		return s->ntcp < s->max_tcp_connections;
	if (s->nunix < s->max_connections)
		return true;
	return s->nunix < s->max_connections + CTL_UNIX_RESERVE &&
	    (c->uid == 0 || c->uid == geteuid());
}

static struct bufferevent *
ctl_conn_bev(struct ctl_server *s, evutil_socket_t fd, bool tls)
{
	struct bufferevent *bev;
	SSL *ssl;

	if (!tls)
		return bufferevent_socket_new(s->d->base, fd,
		    BEV_OPT_CLOSE_ON_FREE);
	if ((ssl = SSL_new(s->ssl_ctx)) == NULL)
		return NULL;
	bev = bufferevent_openssl_socket_new(s->d->base, fd, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		SSL_free(ssl);
	return bev;
}

static void
ctl_conn_new(struct ctl_server *s, evutil_socket_t fd, struct sockaddr *sa,
    bool tls)
{
	struct ctl_conn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		evutil_closesocket(fd);
		return;
	}
	c->srv = s;
	c->tls = tls;
	ctl_conn_name(c, fd, sa);
	if (!ctl_conn_budget(s, c)) {
		/* Once per spell of being full: a flood must not flood the
		 * log too. */
		if (s->refused[tls]++ == 0)
			log_warnx("control: %s: %u %s connections open: "
			    "refusing more", c->peer, tls ? s->ntcp : s->nunix,
			    tls ? "TCP (max_tcp_connections)" :
			    "Unix (max_connections)");
		if (tls && s->nrefusing >= CTL_REFUSING) {
			evutil_closesocket(fd);
			free(c);
			return;
		}
		c->refusing = true;
	}
	c->timer = evtimer_new(s->d->base, ctl_conn_timeout, c);
	if (c->timer == NULL || (c->bev = ctl_conn_bev(s, fd, tls)) == NULL) {
		log_warnx("control: cannot set up a connection for %s",
		    c->peer);
		if (c->timer != NULL)
			event_free(c->timer);
		evutil_closesocket(fd);
		free(c);
		return;
	}
	TAILQ_INSERT_TAIL(&s->conns, c, entry);
	if (c->refusing)
		s->nrefusing++;
	else if (tls)
		s->ntcp++;
	else
		s->nunix++;
	bufferevent_setcb(c->bev, ctl_conn_read, ctl_conn_write,
	    ctl_conn_event, c);
	/* Never buffer more than one frame of input per connection. */
	bufferevent_setwatermark(c->bev, EV_READ, 0,
	    (size_t)s->max_frame + 4);
	bufferevent_setwatermark(c->bev, EV_WRITE, CTL_OUT_MAX / 2, 0);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	log_debug("control: %s connected", c->peer);
	if (c->refusing && !tls)
		ctl_conn_refuse(c);
	else
		ctl_conn_arm(c, tls ? s->handshake_timeout : s->idle_timeout);
}

static void
ctl_accept_unix(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	ctl_conn_new(arg, fd, sa, false);
}

static void
ctl_accept_tcp(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	ctl_conn_new(arg, fd, sa, true);
}

static void
ctl_backoff_done(evutil_socket_t fd, short what, void *arg)
{
	struct ctl_server *s = arg;

	if (s->unix_lis != NULL)
		evconnlistener_enable(s->unix_lis);
	if (s->tcp_lis != NULL)
		evconnlistener_enable(s->tcp_lis);
}

static void
ctl_accept_error(struct evconnlistener *l, void *arg)
{
	struct ctl_server *s = arg;
	struct timeval tv = { CTL_BACKOFF_SEC, 0 };
	int e = EVUTIL_SOCKET_ERROR();

	if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
		log_warnx("control: accept: %s: pausing for %d s",
		    strerror(e), CTL_BACKOFF_SEC);
		if (s->unix_lis != NULL)
			evconnlistener_disable(s->unix_lis);
		if (s->tcp_lis != NULL)
			evconnlistener_disable(s->tcp_lis);
		evtimer_add(s->backoff, &tv);
		return;
	}
	log_warnx("control: accept: %s", strerror(e));
}

/* ---- listeners ---- */

static SSL_CTX *
ctl_ssl_ctx(const char *dir)
{
	/* A client that closes without close_notify has just left. */
	static const struct tls_profile_opts opts = { .eof_ok = true };
	SSL_CTX *ctx;
	char err[512];

	if (tls_profile_load(dir, TLS_ROLE_SERVER, &opts, &ctx, err,
	    sizeof(err)) < 0) {
		log_warnx("control TLS: %s", err);
		return NULL;
	}
	return ctx;
}

static int
ctl_tcp_open(struct ctl_server *s, const struct config *cfg)
{
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	SSL_CTX *ctx;
	struct evconnlistener *l;

	char host[128];
	uint16_t port;

	/* Numeric addresses only: no DNS lookup on the loop (SIGHUP). */
	memset(&ss, 0, sizeof(ss));
	if (parse_hostport(cfg->control_tcp_listen, host, sizeof(host),
	    &port) < 0) {
		log_warnx("control_tcp_listen: cannot parse '%s'",
		    cfg->control_tcp_listen);
		return -EINVAL;
	}
	if (inet_pton(AF_INET, host,
	    &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		((struct sockaddr_in *)&ss)->sin_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_port = htons(port);
		sslen = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, host,
	    &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
		sslen = sizeof(struct sockaddr_in6);
	} else {
		log_warnx("control_tcp_listen: '%s' is not a numeric IPv4 or "
		    "IPv6 address", host);
		return -EINVAL;
	}
	if ((ctx = ctl_ssl_ctx(cfg->control_tls_dir)) == NULL)
		return -EINVAL;
	l = evconnlistener_new_bind(s->d->base, ctl_accept_tcp, s,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE,
	    64, (struct sockaddr *)&ss, sslen);
	if (l == NULL) {
		int r = -errno;

		log_warn("control: cannot listen on %s",
		    cfg->control_tcp_listen);
		SSL_CTX_free(ctx);
		return r != 0 ? r : -EADDRINUSE;
	}
	evconnlistener_set_error_cb(l, ctl_accept_error);
	if (s->tcp_lis != NULL)
		evconnlistener_free(s->tcp_lis);
	if (s->ssl_ctx != NULL)
		SSL_CTX_free(s->ssl_ctx);	/* live SSLs hold a reference */
	s->tcp_lis = l;
	s->ssl_ctx = ctx;
	str_copy(s->tcp_listen, cfg->control_tcp_listen, sizeof(s->tcp_listen));
	{
		struct sockaddr_storage b;
		socklen_t bl = sizeof(b);
		unsigned bport = 0;

		if (getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&b,
		    &bl) == 0)
			bport = b.ss_family == AF_INET6 ?
			    ntohs(((struct sockaddr_in6 *)&b)->sin6_port) :
			    ntohs(((struct sockaddr_in *)&b)->sin_port);
		log_notice("control: listening on %s port %u (TCP, mutual "
		    "TLS 1.3, %s)", host, bport, cfg->control_tls_dir);
	}
	return 0;
}

static void
ctl_limits(struct ctl_server *s, const struct config *cfg)
{
	s->max_connections = cfg->max_connections;
	s->max_tcp_connections = cfg->max_tcp_connections;
	s->handshake_timeout = cfg->control_handshake_timeout;
	s->idle_timeout = cfg->control_idle_timeout;
	s->max_inflight = cfg->max_inflight;
	s->max_migrations = cfg->max_migrations;
	s->max_frame = cfg->max_frame;
	str_copy(s->tls_dir, cfg->tls_dir, sizeof(s->tls_dir));
}

int
ctl_server_open(struct daemon *d, const struct config *cfg, int listen_fd,
    struct ctl_server **out)
{
	struct ctl_server *s;
	char err[512];
	int r;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return -ENOMEM;
	s->d = d;
	TAILQ_INIT(&s->conns);
	TAILQ_INIT(&s->watches);
	ctl_limits(s, cfg);
	if ((r = virt_new(d->base, &s->virt)) < 0) {
		log_warnx("control: cannot start the libvirt worker: %s",
		    strerror(-r));
		goto fail;
	}
	if ((s->backoff = evtimer_new(d->base, ctl_backoff_done, s)) == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	if ((r = unixsock_listen(d->control_socket, 0660, listen_fd,
	    &s->sock, err, sizeof(err))) < 0) {
		log_warnx("control socket: %s", err);
		if (listen_fd >= 0)
			close(listen_fd);
		goto fail;
	}
	s->unix_lis = evconnlistener_new(d->base, ctl_accept_unix, s,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, s->sock.fd);
	if (s->unix_lis == NULL) {
		close(s->sock.fd);
		r = -ENOMEM;
		goto fail;
	}
	evconnlistener_set_error_cb(s->unix_lis, ctl_accept_error);
	if (cfg->control_tcp_listen[0] != '\0' &&
	    (r = ctl_tcp_open(s, cfg)) < 0)
		goto fail;
	mig_table_set_notify(d->migs, ctl_notify, s);
	log_notice("control: listening on %s%s", listen_fd >= 0 ?
	    "inherited socket " : "", listen_fd >= 0 ? "" : d->control_socket);
	*out = s;
	return 0;
fail:
	ctl_server_close(s);
	return r;
}

int
ctl_server_reconfigure(struct ctl_server *s, const struct config *cfg)
{
	int r = 0;

	ctl_limits(s, cfg);
	if (cfg->control_tcp_listen[0] == '\0') {
		if (s->tcp_lis != NULL) {
			log_notice("control: TCP listener %s closed",
			    s->tcp_listen);
			evconnlistener_free(s->tcp_lis);
			s->tcp_lis = NULL;
			s->tcp_listen[0] = '\0';
		}
	} else if (strcmp(cfg->control_tcp_listen, s->tcp_listen) != 0) {
		if (s->tcp_lis != NULL) {
			/* Free the old port first: the new one may equal it
			 * on another address. */
			evconnlistener_free(s->tcp_lis);
			s->tcp_lis = NULL;
		}
		r = ctl_tcp_open(s, cfg);
	} else {
		/* Same address: reload the certificates. */
		SSL_CTX *ctx = ctl_ssl_ctx(cfg->control_tls_dir);

		if (ctx == NULL) {
			r = -EINVAL;
		} else {
			SSL_CTX_free(s->ssl_ctx);
			s->ssl_ctx = ctx;
		}
	}
	return r;
}

void
ctl_server_close(struct ctl_server *s)
{
	struct ctl_conn *c;

	if (s == NULL)
		return;
	if (s->d->migs != NULL)
		mig_table_set_notify(s->d->migs, NULL, NULL);
	while ((c = TAILQ_FIRST(&s->conns)) != NULL)
		ctl_conn_free(c);
	if (s->unix_lis != NULL)
		evconnlistener_free(s->unix_lis);
	if (s->tcp_lis != NULL)
		evconnlistener_free(s->tcp_lis);
	unixsock_unlink(&s->sock);
	if (s->backoff != NULL)
		event_free(s->backoff);
	SSL_CTX_free(s->ssl_ctx);
	virt_free(s->virt);
	free(s);
}

struct virt *
ctl_server_virt(struct ctl_server *s)
{
	return s->virt;
}
