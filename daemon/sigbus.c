/* sigbus.c - see sigbus.h. */
#include "sigbus.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#define SIGBUS_SLOTS	64	/* guarded ranges at once (one per migration) */

/* A slot is in use while base is set; its other fields are written before
 * base is published and stay until base is cleared. */
static struct sigbus_slot {
	_Atomic uintptr_t	 base;
	size_t			 size, align;
	atomic_bool		*hit;
} sigbus_slots[SIGBUS_SLOTS];

static pthread_once_t	sigbus_once = PTHREAD_ONCE_INIT;
static int		sigbus_err;

/* Async-signal-safe: atomics and mmap only. */
static void
sigbus_handler(int sig, siginfo_t *si, void *uc)
{
	uintptr_t a = (uintptr_t)si->si_addr;

	(void)uc;
	for (size_t k = 0; k < SIGBUS_SLOTS; k++) {
		struct sigbus_slot *s = &sigbus_slots[k];
		uintptr_t base = atomic_load(&s->base), from;

		/* 0: free; 1: being filled. */
		if (base <= 1 || a < base || a >= base + s->size)
			continue;
		from = a - (a - base) % s->align;
		if (mmap((void *)from, base + s->size - from, PROT_READ |
		    PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1,
		    0) == MAP_FAILED)
			break;
		atomic_store(s->hit, true);
		return;		/* the faulting access runs again */
	}
	/* Not ours: the default action, when the access runs again. */
	signal(sig, SIG_DFL);
}

static void
sigbus_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = sigbus_handler;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, NULL) < 0)
		sigbus_err = -errno;
}

int
sigbus_guard(void *base, size_t size, size_t align, atomic_bool *hit)
{
	pthread_once(&sigbus_once, sigbus_install);
	if (sigbus_err < 0)
		return sigbus_err;
	for (size_t k = 0; k < SIGBUS_SLOTS; k++) {
		struct sigbus_slot *s = &sigbus_slots[k];
		uintptr_t none = 0;

		/* Claim with a placeholder, fill, then publish. */
		if (!atomic_compare_exchange_strong(&s->base, &none, 1))
			continue;
		s->size = 0;
		s->align = align > 0 ? align : 1;
		s->hit = hit;
		s->size = size;
		atomic_store(&s->base, (uintptr_t)base);
		return 0;
	}
	return -ENOSPC;
}

void
sigbus_unguard(void *base)
{
	for (size_t k = 0; k < SIGBUS_SLOTS; k++) {
		uintptr_t want = (uintptr_t)base;

		if (atomic_compare_exchange_strong(&sigbus_slots[k].base, &want,
		    0))
			return;
	}
}
