/* spin.c - see spin.h. */
#include "spin.h"

#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "util.h"

#define SPIN_LOAD_EVERY_NS	1000000000ull	/* load average re-read */

static _Atomic uint64_t	spin_next_ns;	/* when to read it again */
static atomic_bool	spin_ok;
static atomic_bool	spin_always;	/* demand_spin_always */

void
spin_set_always(bool always)
{
	atomic_store(&spin_always, always);
}

bool
spin_allowed(void)
{
	uint64_t now = now_ns(), next = atomic_load(&spin_next_ns);

	if (atomic_load_explicit(&spin_always, memory_order_relaxed))
		return true;

	/* One thread reads it per period; the others keep the last verdict. */
	if (now >= next && atomic_compare_exchange_strong(&spin_next_ns, &next,
	    now + SPIN_LOAD_EVERY_NS)) {
		double load[1];
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);

		atomic_store(&spin_ok, getloadavg(load, 1) == 1 && cpus > 0 &&
		    load[0] <= (double)cpus);
	}
	return atomic_load(&spin_ok);
}

static inline void
spin_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

bool
spin_fd(int fd, short events, unsigned us)
{
	uint64_t end;

	if (us == 0 || !spin_allowed())
		return false;
	end = now_ns() + (uint64_t)(us < SPIN_US_MAX ? us : SPIN_US_MAX) * 1000;
	do {
		struct pollfd p = { .fd = fd, .events = events };

		if (poll(&p, 1, 0) > 0)
			return true;
		spin_relax();
	} while (now_ns() < end);
	return false;
}
