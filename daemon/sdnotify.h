/* sdnotify.h - postcopyd's side of the systemd service protocol, through
 * libsystemd (sd_notify, sd_listen_fds, sd_watchdog_enabled):
 *
 *   READY=1      once the control socket listens and the kernel probe passed
 *   STATUS=...   the number of active migrations, refreshed when it changes
 *   WATCHDOG=1   from a loop timer at half of WATCHDOG_USEC
 *   RELOADING=1  ... READY=1 around a SIGHUP reload
 *   STOPPING=1   on shutdown
 *
 * Without NOTIFY_SOCKET (not started by systemd) every call is a no-op.
 * All functions run on the event-loop thread. sd_notify sends one datagram
 * and blocks only while the receiver's queue is full (PID 1 drains it; a
 * test harness must too).
 */
#ifndef PCD_SDNOTIFY_H
#define PCD_SDNOTIFY_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"

struct event_base;
struct sdnotify;

/* Returns the number of active migrations, for STATUS=. */
typedef size_t (*sdnotify_count_fn)(void *arg);

/* Reads NOTIFY_SOCKET and WATCHDOG_USEC/WATCHDOG_PID; arms the watchdog
 * timer if systemd asked for one. 0 or -errno (err says what failed). */
int sdnotify_new(struct event_base *base, struct sdnotify **out,
    char *err, size_t errlen);
void sdnotify_free(struct sdnotify *n);

/* Where STATUS= gets its count from; polled every second while notifying. */
void sdnotify_set_counter(struct sdnotify *n, sdnotify_count_fn fn, void *arg);

void sdnotify_ready(struct sdnotify *n);
void sdnotify_reloading(struct sdnotify *n);
void sdnotify_stopping(struct sdnotify *n);
void sdnotify_status(struct sdnotify *n, const char *fmt, ...) PCD_PRINTF(2, 3);
/* The watchdog interval systemd asked for, 0 if none. */
uint64_t sdnotify_watchdog_usec(const struct sdnotify *n);

/* Socket activation: the listening AF_UNIX stream socket systemd passed,
 * named `name` (FileDescriptorName=) or the only one passed. *fd = -1 when
 * not socket-activated. Passed fds that are not used are closed. 0, or
 * -errno with err saying what was wrong with what was passed. */
int sdnotify_listen_fd(const char *name, int *fd, char *err, size_t errlen);
/* The same for several sockets: fds[j] gets the one named names[j] (-1 if
 * none was passed); the only socket passed under another name goes to
 * names[0]. Sockets passed under no name asked for are closed; passed ones
 * and none of them named so: -ENOENT. */
int sdnotify_listen_fds(const char *const *names, int *fds, size_t n,
    char *err, size_t errlen);

#endif
