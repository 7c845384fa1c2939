/* sigbus.h - a destination's alias outlives a cut of the VMM's memfd.
 *
 * With page_write = alias (and on huge pages) the destination's receivers
 * write guest pages through a shared mapping of the VMM's memfd. A VMM
 * that cuts the memfd short (ftruncate) under it turns the next write past
 * the new end into a SIGBUS, which would kill the daemon and every
 * migration on it. Guarded ranges are registered here; the SIGBUS handler
 * maps anonymous memory over the rest of the range the fault fell in (the
 * faulting write then completes, harmlessly, into memory nobody reads) and
 * raises the range's flag, which its owner checks to fail that migration
 * with an error naming the cut. A SIGBUS anywhere else keeps its default
 * action.
 */
#ifndef PCD_SIGBUS_H
#define PCD_SIGBUS_H

#include <stdatomic.h>
#include <stddef.h>

/* Guards [base, base + size), a mapping made of align-sized units (its
 * page size: the handler replaces whole units). 0, or -ENOSPC when every
 * slot is taken (the range is then unguarded), or -errno from installing
 * the handler. */
int sigbus_guard(void *base, size_t size, size_t align, atomic_bool *hit);
/* Before the range is unmapped, once nothing writes it. */
void sigbus_unguard(void *base);

#endif
