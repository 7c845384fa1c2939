/* prio.h - the demand path's scheduling class (postcopyd.conf
 * demand_realtime).
 *
 * A demand fault crosses three daemon threads: the destination's fault
 * thread (it reads the fault and asks for the page), the source's urgent
 * thread (it answers) and the destination's urgent receiver (it maps the
 * page and wakes the guest). Each wakes for a few tens of microseconds of
 * work, but at normal priority each waits for a CPU behind the bulk
 * stream and the guest's own threads: on a busy host that wait is most of
 * a fault's latency and all of its tail (the README's Performance
 * section). With demand_realtime these three run SCHED_FIFO at priority 1,
 * the lowest real-time priority: they take a CPU as soon as they wake and
 * give it back when they sleep again. Their work is bounded by what faults
 * and requests ask for, and the kernel's real-time throttling
 * (sched_rt_runtime_us) leaves normal tasks a share whatever happens. The
 * bulk stream and every other thread stay normal.
 *
 * Off by default: where the daemons and the guest share few CPUs, the
 * real-time threads take the CPU from the guest and the bulk stream, and
 * more pages come on the urgent channel, which costs more per page. On
 * the 2-CPU test host the daemon's fault p99 went from 3.3 to 0.5 ms but
 * the guest's run took 1.6x longer (the README's Performance section). A
 * host whose daemon has CPUs the guest does not use may want it on.
 */
#ifndef PCD_PRIO_H
#define PCD_PRIO_H

#include <stdbool.h>

/* postcopyd.conf demand_realtime: for demand threads started from now on.
 * Process-wide. */
void prio_set_demand_realtime(bool on);
/* Called by a demand-path thread as it starts (what names it in a log
 * line): SCHED_FIFO priority 1 when demand_realtime is on; whether it
 * runs so. A refusal (no CAP_SYS_NICE and RLIMIT_RTPRIO 0, a seccomp
 * filter) is logged once per process and the thread stays at normal
 * priority. */
bool prio_demand_thread(const char *what);
/* A thread started by a real-time demand thread inherits its class: a bulk
 * sender calls this first to run at normal priority. */
void prio_normal_thread(void);
/* A real-time demand thread about to do bulk work (the destination's
 * background mapper after precopy) steps down to normal priority while
 * it does (lower true), and back up after. */
void prio_demand_lower(bool lower);

#endif
