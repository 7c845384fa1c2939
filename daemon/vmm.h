/* vmm.h - the VMM attach socket, daemon side.
 *
 * A VMM connects to the daemon's Unix socket and hands over its guest memory
 * (memfd) and, on the destination, the userfaultfd it created, with
 * SCM_RIGHTS and a protobuf layout message (proto/vmm.proto). The protocol is
 * documented in client/VMM-PROTOCOL.md. Everything a VMM sends is validated
 * here (fd types, sizes, alignment, memfd size) before the migration layer
 * sees it. All functions run on the event-loop thread.
 */
#ifndef PCD_VMM_H
#define PCD_VMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "migration.h"

struct event_base;
struct vmm_server;
struct vmm_session;

/* What a validated attach hands to the migration layer. */
struct vmm_guest {
	char		id[MIG_ID_MAX + 1];
	enum mig_role	role;
	int		memfd;		/* always valid */
	int		uffd;		/* destination only, else -1 */
	uint64_t	base;		/* guest mapping address in the VMM */
	uint64_t	size;		/* bytes, multiple of page_size */
	uint64_t	offset;		/* of the mapping in the memfd */
	uint32_t	page_size;
	pid_t		pid;		/* the VMM, from SO_PEERCRED */
	uid_t		uid;
};

struct vmm_ops {
	/* A VMM attached. Return 0 to accept: the callee then owns
	 * g->memfd and g->uffd. Return -errno with err filled to refuse: the
	 * VMM receives err and the fds are closed. */
	int	(*attached)(void *arg, struct vmm_session *s,
		    struct vmm_guest *g, char *err, size_t errlen);
	/* Source VMM answered a pause request: vCPUs stopped, here is its
	 * device state (may be empty). */
	void	(*paused)(void *arg, struct vmm_session *s, const void *state,
		    size_t len);
	/* The VMM detached or its connection closed. s is freed after. */
	void	(*detached)(void *arg, struct vmm_session *s);
};

int vmm_server_open(struct event_base *base, const char *path,
    const struct vmm_ops *ops, void *arg, struct vmm_server **out);
void vmm_server_free(struct vmm_server *srv);

/* Requests to the VMM (replies arrive through vmm_ops). */
int vmm_session_pause(struct vmm_session *s);		/* source */
int vmm_session_resume(struct vmm_session *s, const void *state,
    size_t len);					/* destination */
int vmm_session_complete(struct vmm_session *s, bool ok, const char *msg);
void vmm_session_set_data(struct vmm_session *s, void *data);
void *vmm_session_data(struct vmm_session *s);

#endif
