/* spin.h - a short, bounded busy poll before a data-path thread sleeps
 * (postcopyd.conf demand_spin_us).
 *
 * On a nested-virtualised host an idle vCPU wakes slowly (the README's
 * Performance section: a TLS round trip of 112-140 us idle against 26 us
 * busy), and a demand fault crosses several threads that each sleep in
 * poll. Polling the descriptor for a few microseconds first lets a reply
 * that is about to arrive be picked up without that wake-up. The spin is
 * bounded by its caller's budget (at most SPIN_US_MAX) and skipped while
 * the machine is busy: when the 1-minute load average is above the number
 * of online CPUs, spinning would take CPU from the threads it waits for.
 */
#ifndef PCD_SPIN_H
#define PCD_SPIN_H

#include <stdbool.h>

#define SPIN_US_MAX	1000	/* the longest spin, whatever is asked */

/* Whether spinning is allowed now: the load average is at most the CPU
 * count (read at most once a second, shared by every thread), or
 * spin_set_always said so. */
bool spin_allowed(void);
/* postcopyd.conf demand_spin_always: spin whatever the load average (a
 * host whose load counts vCPU threads, while the daemon's threads have
 * CPUs of their own). Process-wide. */
void spin_set_always(bool always);
/* Polls fd for events, without sleeping, for up to us microseconds
 * (capped at SPIN_US_MAX): whether it became ready. false at once when
 * us is 0 or spin_allowed() says no. */
bool spin_fd(int fd, short events, unsigned us);

#endif
