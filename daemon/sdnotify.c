/* sdnotify.c - see sdnotify.h. */
#include "sdnotify.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <systemd/sd-daemon.h>

#include "log.h"

#define SDNOTIFY_STATUS_PERIOD_US	1000000	/* STATUS= refresh check */

struct sdnotify {
	struct event_base	*base;
	bool			 enabled;	/* NOTIFY_SOCKET is set */
	bool			 ready;		/* READY=1 sent, not stopping */
	uint64_t		 watchdog_usec;
	struct event		*watchdog_ev;
	struct event		*status_ev;
	sdnotify_count_fn	 count_fn;
	void			*count_arg;
	size_t			 last_count;
	bool			 last_valid;
};

static void
sdnotify_send(struct sdnotify *n, const char *msg)
{
	int r;

	if (!n->enabled)
		return;
	if ((r = sd_notify(0, msg)) < 0) {
		/* Not fatal: systemd may have gone away (daemon-reexec). */
		errno = -r;
		log_warn("sd_notify(\"%.*s\")", (int)strcspn(msg, "\n"), msg);
	}
}

static size_t
sdnotify_count(struct sdnotify *n)
{
	return n->count_fn != NULL ? n->count_fn(n->count_arg) : 0;
}

static void
sdnotify_send_count(struct sdnotify *n, const char *prefix)
{
	char msg[256];
	size_t c = sdnotify_count(n);

	snprintf(msg, sizeof(msg), "%sSTATUS=%zu active migration%s", prefix,
	    c, c == 1 ? "" : "s");
	sdnotify_send(n, msg);
	n->last_count = c;
	n->last_valid = true;
}

static void
sdnotify_on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	sdnotify_send(arg, "WATCHDOG=1");
}

static void
sdnotify_on_status(evutil_socket_t fd, short what, void *arg)
{
	struct sdnotify *n = arg;

	if (!n->ready)
		return;
	if (!n->last_valid || sdnotify_count(n) != n->last_count)
		sdnotify_send_count(n, "");
}

static struct event *
sdnotify_timer(struct sdnotify *n, uint64_t usec, event_callback_fn cb)
{
	struct timeval tv = {
		.tv_sec = (time_t)(usec / 1000000),
		.tv_usec = (suseconds_t)(usec % 1000000),
	};
	struct event *ev;

	if ((ev = event_new(n->base, -1, EV_PERSIST, cb, n)) == NULL)
		return NULL;
	if (event_add(ev, &tv) < 0) {
		event_free(ev);
		return NULL;
	}
	return ev;
}

int
sdnotify_new(struct event_base *base, struct sdnotify **out, char *err,
    size_t errlen)
{
	struct sdnotify *n;
	uint64_t usec = 0;
	int r;

	*out = NULL;
	if ((n = calloc(1, sizeof(*n))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	n->base = base;
	n->enabled = getenv("NOTIFY_SOCKET") != NULL;

	/* 0 when WATCHDOG_USEC is unset or WATCHDOG_PID names another process. */
	if ((r = sd_watchdog_enabled(0, &usec)) < 0) {
		snprintf(err, errlen, "bad WATCHDOG_USEC/WATCHDOG_PID in the "
		    "environment: %s", strerror(-r));
		goto fail;
	}
	if (r > 0 && n->enabled) {
		/* Half the interval, so one late tick does not kill us. */
		n->watchdog_usec = usec;
		n->watchdog_ev = sdnotify_timer(n, usec / 2 > 0 ? usec / 2 : 1,
		    sdnotify_on_watchdog);
		if (n->watchdog_ev == NULL) {
			r = -ENOMEM;
			snprintf(err, errlen, "cannot arm the watchdog timer");
			goto fail;
		}
	}
	if (n->enabled) {
		n->status_ev = sdnotify_timer(n, SDNOTIFY_STATUS_PERIOD_US,
		    sdnotify_on_status);
		if (n->status_ev == NULL) {
			r = -ENOMEM;
			snprintf(err, errlen, "cannot arm the status timer");
			goto fail;
		}
	}
	*out = n;
	return 0;
fail:
	sdnotify_free(n);
	return r;
}

void
sdnotify_free(struct sdnotify *n)
{
	if (n == NULL)
		return;
	if (n->watchdog_ev != NULL)
		event_free(n->watchdog_ev);
	if (n->status_ev != NULL)
		event_free(n->status_ev);
	free(n);
}

void
sdnotify_set_counter(struct sdnotify *n, sdnotify_count_fn fn, void *arg)
{
	n->count_fn = fn;
	n->count_arg = arg;
	n->last_valid = false;
}

uint64_t
sdnotify_watchdog_usec(const struct sdnotify *n)
{
	return n->watchdog_usec;
}

void
sdnotify_ready(struct sdnotify *n)
{
	n->ready = true;
	sdnotify_send_count(n, "READY=1\n");
}

void
sdnotify_reloading(struct sdnotify *n)
{
	char msg[128];
	struct timespec ts;

	/* MONOTONIC_USEC lets systemd (Type=notify-reload) match this
	 * RELOADING=1 to the reload it asked for. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof(msg),
	    "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading configuration",
	    (unsigned long long)ts.tv_sec * 1000000ull +
	    (unsigned long long)ts.tv_nsec / 1000);
	sdnotify_send(n, msg);
}

void
sdnotify_stopping(struct sdnotify *n)
{
	n->ready = false;
	sdnotify_send(n, "STOPPING=1\nSTATUS=stopping");
}

void
sdnotify_status(struct sdnotify *n, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int len;

	len = snprintf(msg, sizeof(msg), "STATUS=");
	va_start(ap, fmt);
	vsnprintf(msg + len, sizeof(msg) - (size_t)len, fmt, ap);
	va_end(ap);
	/* One STATUS= line: newlines would start new assignments. */
	for (char *p = msg; *p != '\0'; p++)
		if (*p == '\n')
			*p = ' ';
	sdnotify_send(n, msg);
}

/* Which of names[n] the passed socket i goes to: its FileDescriptorName=,
 * or names[0] for the only socket passed under another name (a unit
 * without FileDescriptorName=, named after the unit). -1: none. */
static int
sdnotify_listen_pick(char **passed, int nfds, int i, const char *const *names,
    size_t n)
{
	for (size_t j = 0; j < n; j++)
		if (passed != NULL && passed[i] != NULL &&
		    strcmp(passed[i], names[j]) == 0)
			return (int)j;
	return nfds == 1 ? 0 : -1;
}

static int
sdnotify_listen_check(int fd, const char *name, char *err, size_t errlen)
{
	int r = sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0);

	if (r > 0)
		return 0;
	snprintf(err, errlen, "socket-activated fd %d ('%s') is not a "
	    "listening AF_UNIX stream socket%s%s", fd, name,
	    r < 0 ? ": " : "", r < 0 ? strerror(-r) : "");
	return r < 0 ? r : -ENOTSOCK;
}

int
sdnotify_listen_fds(const char *const *names, int *fds, size_t n, char *err,
    size_t errlen)
{
	char **passed = NULL;
	int nfds, matched = 0, r = 0;

	for (size_t j = 0; j < n; j++)
		fds[j] = -1;
	/* unset_environment: children (none today) must not see our fds. */
	nfds = sd_listen_fds_with_names(1, &passed);
	if (nfds < 0) {
		snprintf(err, errlen, "bad LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES "
		    "in the environment: %s", strerror(-nfds));
		return nfds;
	}
	for (int i = 0; i < nfds && r == 0; i++) {
		int j = sdnotify_listen_pick(passed, nfds, i, names, n);

		if (j < 0 || fds[j] >= 0)
			continue;
		r = sdnotify_listen_check(SD_LISTEN_FDS_START + i, names[j],
		    err, errlen);
		fds[j] = SD_LISTEN_FDS_START + i;
		matched++;
	}
	if (r == 0 && nfds > 0 && matched == 0) {
		size_t len = (size_t)snprintf(err, errlen, "socket activation "
		    "passed %d sockets, none named", nfds);

		for (size_t j = 0; j < n && len < errlen; j++)
			len += (size_t)snprintf(err + len, errlen - len, "%s'%s'",
			    j == 0 ? " " : " or ", names[j]);
		if (len < errlen)
			snprintf(err + len, errlen - len, " (FileDescriptorName=)");
		r = -ENOENT;
	}
	for (int i = 0; i < nfds; i++) {
		bool used = false;

		for (size_t j = 0; j < n; j++)
			used |= fds[j] == SD_LISTEN_FDS_START + i;
		if (!used || r < 0) {
			if (r == 0)
				log_warnx("socket activation: closing unused fd "
				    "%d ('%s')", SD_LISTEN_FDS_START + i,
				    passed != NULL && passed[i] != NULL ?
				    passed[i] : "?");
			close(SD_LISTEN_FDS_START + i);
		}
		if (passed != NULL)
			free(passed[i]);
	}
	free(passed);
	if (r < 0)
		for (size_t j = 0; j < n; j++)
			fds[j] = -1;
	return r;
}

int
sdnotify_listen_fd(const char *name, int *fd, char *err, size_t errlen)
{
	return sdnotify_listen_fds(&name, fd, 1, err, errlen);
}
