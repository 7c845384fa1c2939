/* virt.c - libvirt domain control on a worker thread (see virt.h). */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/queue.h>
#include <unistd.h>

#include <event2/event.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "log.h"
#include "util.h"
#include "virt.h"

#define VIRT_MAX_DOMAINS	256
#define VIRT_STR		256
#define VIRT_ERR		1024

struct virt_job {
	STAILQ_ENTRY(virt_job)	 entry;
	char			 id[MIG_ID_MAX + 1];
	enum virt_op		 op;
	char			 uri[VIRT_STR];
	char			 domain[VIRT_STR];
	int			 result;	/* 0 / -errno */
	char			 state[32];
	char			 err[VIRT_ERR];
};
STAILQ_HEAD(virt_jobq, virt_job);

struct virt_conn {			/* worker thread only */
	LIST_ENTRY(virt_conn)	 entry;
	char			 uri[VIRT_STR];
	virConnectPtr		 conn;
};

struct virt_dom {			/* loop thread only */
	TAILQ_ENTRY(virt_dom)	 entry;
	char			 id[MIG_ID_MAX + 1];
	enum mig_role		 role;
	char			 uri[VIRT_STR];
	char			 domain[VIRT_STR];
	bool			 acted;
	char			 state[32];
	char			 error[VIRT_ERR];
};

struct virt {
	struct event_base	*base;
	struct event		*ev;
	int			 efd;
	pthread_t		 thread;
	bool			 started;
	pthread_mutex_t		 lock;
	pthread_cond_t		 cond;
	struct virt_jobq	 queue;		/* under lock */
	struct virt_jobq	 done;		/* under lock */
	bool			 stop;		/* under lock */
	unsigned		 pending;	/* loop thread */
	LIST_HEAD(, virt_conn)	 conns;		/* worker thread */
	TAILQ_HEAD(, virt_dom)	 doms;		/* loop thread */
	unsigned		 ndoms;
};

static void
virt_silence(void *arg, virErrorPtr e)
{
	/* Errors are reported where they are handled, not on stderr. */
}

static const char *
virt_state_name(int s)
{
	switch (s) {
	case VIR_DOMAIN_RUNNING:	return "running";
	case VIR_DOMAIN_BLOCKED:	return "blocked";
	case VIR_DOMAIN_PAUSED:		return "paused";
	case VIR_DOMAIN_SHUTDOWN:	return "shutdown";
	case VIR_DOMAIN_SHUTOFF:	return "shutoff";
	case VIR_DOMAIN_CRASHED:	return "crashed";
	case VIR_DOMAIN_PMSUSPENDED:	return "pmsuspended";
	default:			return "nostate";
	}
}

static const char *
virt_op_name(enum virt_op op)
{
	switch (op) {
	case VIRT_CHECK:	return "check";
	case VIRT_SUSPEND:	return "suspend";
	case VIRT_RESUME:	return "resume";
	}
	return "?";
}

static const char *
virt_last_error(void)
{
	const char *m = virGetLastErrorMessage();

	return m != NULL ? m : "unknown libvirt error";
}

/* The action itself, on an open connection. */
static int
virt_act(virConnectPtr conn, const char *domain, enum virt_op op,
    char *state, size_t statelen, char *err, size_t errlen)
{
	virDomainPtr dom;
	int st = VIR_DOMAIN_NOSTATE, reason, r = 0;

	if ((dom = virDomainLookupByName(conn, domain)) == NULL) {
		snprintf(err, errlen, "domain '%s': %s", domain,
		    virt_last_error());
		return -ENOENT;
	}
	if (virDomainGetState(dom, &st, &reason, 0) < 0) {
		snprintf(err, errlen, "domain '%s': cannot read its state: %s",
		    domain, virt_last_error());
		r = -EIO;
		goto out;
	}
	if (op == VIRT_SUSPEND && st != VIR_DOMAIN_PAUSED) {
		if (virDomainSuspend(dom) < 0) {
			snprintf(err, errlen, "cannot suspend domain '%s': %s",
			    domain, virt_last_error());
			r = -EIO;
			goto out;
		}
	} else if (op == VIRT_RESUME && st == VIR_DOMAIN_PAUSED) {
		if (virDomainResume(dom) < 0) {
			snprintf(err, errlen, "cannot resume domain '%s': %s",
			    domain, virt_last_error());
			r = -EIO;
			goto out;
		}
	}
	if (virDomainGetState(dom, &st, &reason, 0) < 0)
		st = VIR_DOMAIN_NOSTATE;
out:
	snprintf(state, statelen, "%s", virt_state_name(st));
	virDomainFree(dom);
	return r;
}

int
virt_do(const char *uri, const char *domain, enum virt_op op, char *state,
    size_t statelen, char *err, size_t errlen)
{
	virConnectPtr conn;
	int r;

	virInitialize();
	virSetErrorFunc(NULL, virt_silence);
	snprintf(state, statelen, "%s", "");
	if ((conn = virConnectOpen(uri)) == NULL) {
		snprintf(err, errlen, "cannot connect to libvirt at %s: %s",
		    uri, virt_last_error());
		return -ECONNREFUSED;
	}
	r = virt_act(conn, domain, op, state, statelen, err, errlen);
	virConnectClose(conn);
	return r;
}

/* Worker: keeps one connection per URI for the life of the daemon (a
 * domain's state belongs to the connection for some drivers, such as
 * test:///default). */
static void
virt_run(struct virt *v, struct virt_job *j)
{
	struct virt_conn *c;

	LIST_FOREACH(c, &v->conns, entry)
		if (strcmp(c->uri, j->uri) == 0)
			break;
	if (c == NULL) {
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			j->result = -ENOMEM;
			snprintf(j->err, sizeof(j->err), "out of memory");
			return;
		}
		str_copy(c->uri, j->uri, sizeof(c->uri));
		if ((c->conn = virConnectOpen(j->uri)) == NULL) {
			snprintf(j->err, sizeof(j->err), "cannot connect to "
			    "libvirt at %s: %s", j->uri, virt_last_error());
			j->result = -ECONNREFUSED;
			free(c);
			return;
		}
		LIST_INSERT_HEAD(&v->conns, c, entry);
	}
	j->result = virt_act(c->conn, j->domain, j->op, j->state,
	    sizeof(j->state), j->err, sizeof(j->err));
}

static void *
virt_worker(void *arg)
{
	struct virt *v = arg;
	struct virt_job *j;
	struct virt_conn *c;
	uint64_t one = 1;

	pthread_mutex_lock(&v->lock);
	for (;;) {
		while (STAILQ_EMPTY(&v->queue) && !v->stop)
			pthread_cond_wait(&v->cond, &v->lock);
		if (v->stop)
			break;
		j = STAILQ_FIRST(&v->queue);
		STAILQ_REMOVE_HEAD(&v->queue, entry);
		pthread_mutex_unlock(&v->lock);
		virt_run(v, j);
		pthread_mutex_lock(&v->lock);
		STAILQ_INSERT_TAIL(&v->done, j, entry);
		/* EAGAIN only when the counter is already non-zero. */
		(void)!write(v->efd, &one, sizeof(one));
	}
	pthread_mutex_unlock(&v->lock);
	while ((c = LIST_FIRST(&v->conns)) != NULL) {
		LIST_REMOVE(c, entry);
		virConnectClose(c->conn);
		free(c);
	}
	return NULL;
}

static struct virt_dom *
virt_find(struct virt *v, const char *id)
{
	struct virt_dom *d;

	TAILQ_FOREACH(d, &v->doms, entry)
		if (strcmp(d->id, id) == 0)
			return d;
	return NULL;
}

/* Loop thread: collect finished jobs. */
static void
virt_done(evutil_socket_t fd, short what, void *arg)
{
	struct virt *v = arg;
	struct virt_jobq q = STAILQ_HEAD_INITIALIZER(q);
	struct virt_job *j;
	struct virt_dom *d;
	uint64_t n;

	if (read(v->efd, &n, sizeof(n)) < 0)
		return;
	pthread_mutex_lock(&v->lock);
	STAILQ_CONCAT(&q, &v->done);
	pthread_mutex_unlock(&v->lock);
	while ((j = STAILQ_FIRST(&q)) != NULL) {
		STAILQ_REMOVE_HEAD(&q, entry);
		v->pending--;
		if (j->result < 0)
			log_warnx("migration %s: libvirt %s: %s", j->id,
			    virt_op_name(j->op), j->err);
		else
			log_notice("migration %s: libvirt domain %s %s: now "
			    "%s", j->id, j->domain, virt_op_name(j->op),
			    j->state);
		if ((d = virt_find(v, j->id)) != NULL &&
		    strcmp(d->domain, j->domain) == 0) {
			str_copy(d->state, j->state, sizeof(d->state));
			str_copy(d->error, j->result < 0 ? j->err : "",
			    sizeof(d->error));
		}
		free(j);
	}
}

int
virt_new(struct event_base *base, struct virt **out)
{
	struct virt *v;
	int r;

	if ((v = calloc(1, sizeof(*v))) == NULL)
		return -ENOMEM;
	v->base = base;
	v->efd = -1;
	STAILQ_INIT(&v->queue);
	STAILQ_INIT(&v->done);
	LIST_INIT(&v->conns);
	TAILQ_INIT(&v->doms);
	pthread_mutex_init(&v->lock, NULL);
	pthread_cond_init(&v->cond, NULL);
	virInitialize();
	virSetErrorFunc(NULL, virt_silence);
	if ((v->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		r = -errno;
		goto fail;
	}
	v->ev = event_new(base, v->efd, EV_READ | EV_PERSIST, virt_done, v);
	if (v->ev == NULL || event_add(v->ev, NULL) < 0) {
		r = -ENOMEM;
		goto fail;
	}
	if ((r = -pthread_create(&v->thread, NULL, virt_worker, v)) < 0)
		goto fail;
	v->started = true;
	pthread_setname_np(v->thread, "pcd-libvirt");
	*out = v;
	return 0;
fail:
	virt_free(v);
	return r;
}

void
virt_free(struct virt *v)
{
	struct virt_job *j;
	struct virt_dom *d;

	if (v == NULL)
		return;
	if (v->started) {
		pthread_mutex_lock(&v->lock);
		v->stop = true;
		pthread_cond_signal(&v->cond);
		pthread_mutex_unlock(&v->lock);
		pthread_join(v->thread, NULL);
	}
	while ((j = STAILQ_FIRST(&v->queue)) != NULL) {
		STAILQ_REMOVE_HEAD(&v->queue, entry);
		free(j);
	}
	while ((j = STAILQ_FIRST(&v->done)) != NULL) {
		STAILQ_REMOVE_HEAD(&v->done, entry);
		free(j);
	}
	while ((d = TAILQ_FIRST(&v->doms)) != NULL) {
		TAILQ_REMOVE(&v->doms, d, entry);
		free(d);
	}
	if (v->ev != NULL)
		event_free(v->ev);
	if (v->efd >= 0)
		close(v->efd);
	pthread_cond_destroy(&v->cond);
	pthread_mutex_destroy(&v->lock);
	free(v);
}

static int
virt_submit(struct virt *v, const struct virt_dom *d, enum virt_op op)
{
	struct virt_job *j;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return -ENOMEM;
	str_copy(j->id, d->id, sizeof(j->id));
	str_copy(j->uri, d->uri, sizeof(j->uri));
	str_copy(j->domain, d->domain, sizeof(j->domain));
	j->op = op;
	v->pending++;
	pthread_mutex_lock(&v->lock);
	STAILQ_INSERT_TAIL(&v->queue, j, entry);
	pthread_cond_signal(&v->cond);
	pthread_mutex_unlock(&v->lock);
	return 0;
}

int
virt_track(struct virt *v, const char *id, enum mig_role role,
    const char *uri, const char *domain)
{
	struct virt_dom *d;

	if (strlen(uri) >= VIRT_STR || strlen(domain) >= VIRT_STR ||
	    strlen(id) > MIG_ID_MAX)
		return -ENAMETOOLONG;
	if ((d = virt_find(v, id)) != NULL) {
		TAILQ_REMOVE(&v->doms, d, entry);
		v->ndoms--;
	} else if ((d = malloc(sizeof(*d))) == NULL) {
		return -ENOMEM;
	}
	memset(d, 0, sizeof(*d));
	str_copy(d->id, id, sizeof(d->id));
	str_copy(d->uri, uri, sizeof(d->uri));
	str_copy(d->domain, domain, sizeof(d->domain));
	d->role = role;
	TAILQ_INSERT_TAIL(&v->doms, d, entry);
	if (++v->ndoms > VIRT_MAX_DOMAINS) {
		struct virt_dom *old = TAILQ_FIRST(&v->doms);

		TAILQ_REMOVE(&v->doms, old, entry);
		v->ndoms--;
		free(old);
	}
	return virt_submit(v, d, VIRT_CHECK);
}

void
virt_on_state(struct virt *v, const char *id, enum mig_state state)
{
	struct virt_dom *d;

	if ((d = virt_find(v, id)) == NULL || d->acted)
		return;
	if (!mig_switched_over(state))
		return;
	d->acted = true;
	log_info("migration %s: %s libvirt domain %s", id,
	    d->role == MIG_ROLE_SOURCE ? "suspending" : "resuming", d->domain);
	virt_submit(v, d, d->role == MIG_ROLE_SOURCE ? VIRT_SUSPEND :
	    VIRT_RESUME);
}

bool
virt_get(struct virt *v, const char *id, const char **domain,
    const char **state, const char **error)
{
	struct virt_dom *d;

	if (v == NULL || (d = virt_find(v, id)) == NULL)
		return false;
	*domain = d->domain;
	*state = d->state;
	*error = d->error;
	return true;
}

unsigned
virt_pending(struct virt *v)
{
	return v->pending;
}
