/* dest_done.c - a completed destination answers its source for a while.
 *
 * A cut after the destination sent Complete but before the source read it
 * leaves the source paused, reconnecting: without an answer it would stay
 * paused for ever (its guest runs here; it cannot be cancelled). So the
 * destination keeps, for completed_grace seconds after it completed, the
 * listener, the session token and the verdict, and a thread
 * (pcd-dst-done) answers a resume Hello with that token with
 * Welcome.completed: the source completes with the verdict. Every other
 * Hello is refused as during the migration (session.c). Nothing of the
 * guest is kept: the page state, the guest's descriptors and the fault
 * thread went when the migration completed.
 *
 * The thread uses the migration's stop eventfd (drained once the data
 * path was joined) and the migration itself for its id and TLS names; the
 * loop joins it before freeing the migration (mig_free), when a Prepare
 * needs the address, or whenever the grace ends (the thread returns by
 * itself then, closing the listener).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dest_int.h"
#include "log.h"
#include "session.h"
#include "util.h"

struct dest_done {
	struct session		 s;
	Pcd__Wire__Complete	 done;
	struct session_verdict	 v;
	pthread_t		 thr;
	bool			 started;
};

void
dest_done_keep(struct mig *m, struct session *s,
    const struct session_verdict *v)
{
	struct dest_done *dd;

	if (m->done != NULL || m->completed_grace_s == 0 || s->lfd < 0 ||
	    s->tls == NULL || !s->token_set)
		return;
	if ((dd = calloc(1, sizeof(*dd))) == NULL) {
		log_warnx("migration %s: no memory to keep its completion for "
		    "the source", m->id);
		return;
	}
	session_init(&dd->s, m);
	session_set_guest(&dd->s, s->npages, s->ps);
	memcpy(dd->s.token, s->token, sizeof(dd->s.token));
	dd->s.token_set = true;
	dd->s.resumable = true;
	dd->s.lfd = s->lfd;
	dd->s.tls = s->tls;
	s->lfd = -1;
	s->tls = NULL;
	dd->v = *v;
	pcd__wire__complete__init(&dd->done);
	dd->done.ok = v->ok;
	dd->done.pages_verified = v->verified;
	dd->done.pages_mismatched = v->mismatched;
	dd->done.message = dd->v.message;
	dd->s.done = &dd->done;
	m->done = dd;
}

static void *
dest_done_main(void *arg)
{
	struct dest_done *dd = arg;
	struct mig *m = dd->s.m;
	int r;

	r = session_accept(&dd->s, NULL, NULL);
	/* The port is free from here (a Prepare may want it again). */
	close(dd->s.lfd);
	dd->s.lfd = -1;
	if (r == -ETIMEDOUT)
		log_info("migration %s: completed %u s ago; no longer answering "
		    "its source on %s", m->id, m->completed_grace_s, m->listen);
	return NULL;
}

void
dest_done_serve(struct mig *m)
{
	struct dest_done *dd = m->done;
	uint64_t v;

	if (dd == NULL || dd->started)
		return;
	/* mig_stop_datapath wrote it; the data path is joined. */
	while (read(m->stopfd, &v, sizeof(v)) == sizeof(v))
		;
	dd->s.accept_until_ns = now_ns() +
	    (uint64_t)m->completed_grace_s * 1000000000ull;
	if (pthread_create(&dd->thr, NULL, dest_done_main, dd) != 0) {
		log_warnx("migration %s: cannot start the thread that answers "
		    "its source after completion", m->id);
		dest_done_stop(m);
		return;
	}
	pthread_setname_np(dd->thr, "pcd-dst-done");
	dd->started = true;
	log_info("migration %s: answering its source's reconnects as completed "
	    "on %s for %u s (completed_grace)", m->id, m->listen,
	    m->completed_grace_s);
}

void
dest_done_stop(struct mig *m)
{
	struct dest_done *dd = m->done;
	uint64_t one = 1;

	if (dd == NULL)
		return;
	if (dd->started) {
		if (write(m->stopfd, &one, sizeof(one)) < 0)
			log_warn("migration %s: stop eventfd", m->id);
		pthread_join(dd->thr, NULL);
	}
	session_destroy(&dd->s);	/* closes the listener if still open */
	free(dd);
	m->done = NULL;
}
