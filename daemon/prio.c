/* prio.c - see prio.h. */
#include "prio.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#include "log.h"

static atomic_bool	prio_realtime;	/* demand_realtime */
static atomic_bool	prio_refused;		/* said once */

void
prio_set_demand_realtime(bool on)
{
	atomic_store(&prio_realtime, on);
}

bool
prio_demand_thread(const char *what)
{
	struct sched_param sp = { .sched_priority = 1 };

	if (!atomic_load(&prio_realtime))
		return false;
	if (sched_setscheduler(0, SCHED_FIFO, &sp) == 0)
		return true;
	if (!atomic_exchange(&prio_refused, true))
		log_notice("demand_realtime: the %s thread stays at normal "
		    "priority: SCHED_FIFO refused: %s (it takes CAP_SYS_NICE "
		    "or RLIMIT_RTPRIO 1: LimitRTPRIO=1 and RestrictRealtime=no "
		    "in a service; or set demand_realtime = no)", what,
		    strerror(errno));
	return false;
}

void
prio_normal_thread(void)
{
	struct sched_param sp = { .sched_priority = 0 };

	if (sched_getscheduler(0) != SCHED_OTHER &&
	    sched_setscheduler(0, SCHED_OTHER, &sp) < 0)
		log_warn("demand_realtime: a bulk thread at normal priority");
}

void
prio_demand_lower(bool lower)
{
	struct sched_param sp = { .sched_priority = lower ? 0 : 1 };

	if (sched_setscheduler(0, lower ? SCHED_OTHER : SCHED_FIFO, &sp) < 0)
		log_warn("demand_realtime: changing a demand thread's "
		    "scheduling class");
}
