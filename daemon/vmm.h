/* vmm.h - the VMM attach socket, daemon side.
 *
 * A VMM connects to the daemon's Unix socket and hands over its guest memory
 * (memfd) and, on the destination, the userfaultfd it created, with
 * SCM_RIGHTS and a protobuf layout message (proto/vmm.proto). The protocol is
 * documented in client/pcvmm/VMM-PROTOCOL.md. Everything a VMM sends is validated
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

/* Framing (proto/vmm.proto, client/pcvmm/VMM-PROTOCOL.md): a SOCK_STREAM Unix
 * socket; each frame is a 4-byte little-endian length then a serialized
 * pcd.VmmMessage. The Attach frame carries the fds with SCM_RIGHTS. */
#define VMM_PROTOCOL_VERSION	1
#define VMM_ATTACH_FRAME_MAX	4096u			/* before attach */
#define VMM_STATE_MAX		(64u << 20)		/* device state */
#define VMM_FRAME_MAX		(VMM_STATE_MAX + 4096u)	/* any frame */
#define VMM_SIZE_MAX		(1ull << 44)		/* 16 TiB guest */
#define VMM_MAX_SESSIONS	256
#define VMM_DIRTY_WHY_MAX	512
#define VMM_ATTACH_TIMEOUT_S	10	/* connected but no Attach: closed */
#define VMM_HUGE_2M		(2u << 20)	/* hugetlbfs page sizes a guest */
#define VMM_HUGE_1G		(1u << 30)	/* may declare besides the base */

#define VMM_PIECE		4096u		/* what a huge-page guest moves */

/* The page size the data path moves for a guest of page_size pages: a
 * huge-page guest is moved in VMM_PIECE pieces (its huge page is the unit
 * of mapping only). */
static inline uint32_t
vmm_piece_size(uint32_t page_size)
{
	return page_size == VMM_HUGE_2M || page_size == VMM_HUGE_1G ?
	    VMM_PIECE : page_size;
}

/* vmm_ops.huge_pages: the huge page sizes the migration layer can carry,
 * in MINOR mode (a hugetlbfs memfd) and in COPY mode (anonymous huge
 * pages; each COPY bit is the MINOR one shifted left by 2). */
#define VMM_CARRY_2M		0x1u
#define VMM_CARRY_1G		0x2u
#define VMM_CARRY_COPY_2M	0x4u
#define VMM_CARRY_COPY_1G	0x8u

enum vmm_mode {
	VMM_MODE_MINOR = 0,	/* memfd + uffd: MINOR|MISSING, UFFDIO_CONTINUE */
	VMM_MODE_COPY = 1,	/* dest only: anonymous memory (MAP_HUGETLB
				 * on huge pages), uffd only, MISSING faults
				 * resolved with UFFDIO_COPY */
};

/* What a validated attach hands to the migration layer. */
struct vmm_guest {
	char		id[MIG_ID_MAX + 1];
	enum mig_role	role;
	enum vmm_mode	mode;
	int		memfd;		/* valid, except -1 in COPY mode */
	int		uffd;		/* destination only, else -1 */
	uint64_t	base;		/* guest mapping address in the VMM */
	uint64_t	size;		/* bytes, multiple of page_size */
	uint64_t	offset;		/* of the mapping in the memfd */
	uint32_t	page_size;	/* the base page, or VMM_HUGE_2M/1G:
					 * then the memfd (COPY: the guest
					 * mapping) is hugetlbfs of that
					 * page size (checked) */
	pid_t		pid;		/* the VMM, from SO_PEERCRED */
	uid_t		uid;
	bool		reattach;	/* after a daemon restart */
	bool		resumed;	/* reattach: the guest already runs */
	/* Source: the dirty tracker on the VMM's passed userfaultfd and
	 * pagemap (precopy), or NULL (postcopy-only; dirty_why says why).
	 * ops->attached may take it (set it NULL); otherwise the session
	 * keeps it (vmm_session_dirty) and closes it when it ends. */
	struct dirty	*dirty;
	const char	*dirty_why;
};

/* ops->attached's answer for an id with no migration here (yet): the
 * server holds the VMM in its small pool of unclaimed VMMs (answering the
 * attach), until vmm_server_claim offers it again or the pool's timeout
 * ends it; a full or disabled pool refuses the attach instead. */
#define VMM_HOLD	1

struct vmm_ops {
	/* A VMM attached. Return 0 to accept: the callee then owns
	 * g->memfd and g->uffd. Return -errno with err filled to refuse: the
	 * VMM receives err and the fds are closed. Return VMM_HOLD: see
	 * above. Requests made on s from inside this callback (e.g.
	 * vmm_session_pause) are sent right after the AttachReply, or dropped
	 * on refusal. */
	int	(*attached)(void *arg, struct vmm_session *s,
		    struct vmm_guest *g, char *err, size_t errlen);
	/* Source VMM answered a pause request: vCPUs stopped, here is its
	 * device state (may be empty). */
	void	(*paused)(void *arg, struct vmm_session *s, const void *state,
		    size_t len);
	/* The VMM detached or its connection closed. s is freed after. */
	void	(*detached)(void *arg, struct vmm_session *s);
	/* VMM_CARRY_* bits: huge page sizes the callee can migrate. A guest
	 * that validates with another huge page size is refused (code 12,
	 * UNIMPLEMENTED) before attached() sees it. 0: base pages only. */
	unsigned huge_pages;
};

/* Creates the socket at path with unixsock_listen (mode 0660; refused
 * while another daemon listens there), or adopts activated_fd (socket
 * activation; -1: none). ops->attached may refuse; validation failures
 * never reach it. */
int vmm_server_open(struct event_base *base, const char *path,
    int activated_fd, const struct vmm_ops *ops, void *arg,
    struct vmm_server **out);
/* Closes every session (calling ops->detached for attached ones) and the
 * socket; unlinks the path it created. NULL is fine. */
void vmm_server_free(struct vmm_server *srv);

/* The pool of VMMs attached for ids nobody prepared (VMM_HOLD): at most
 * max of them (0: refuse such attaches), each for timeout_s seconds, then
 * told (Complete, failed) and closed. They take no migration's place. */
void vmm_server_set_pool(struct vmm_server *srv, unsigned max,
    unsigned timeout_s);
/* A migration for id/role now exists: offers it the held VMM of that id
 * and role, if any, through ops->attached (which must not answer
 * VMM_HOLD now). true when one was offered. */
bool vmm_server_claim(struct vmm_server *srv, const char *id, int role);
/* Whether a VMM is held for id; *out gets its layout (fds -1). */
bool vmm_server_held(struct vmm_server *srv, const char *id,
    struct vmm_guest *out);

/* Requests to the VMM (replies arrive through vmm_ops). */
int vmm_session_pause(struct vmm_session *s);		/* source */
int vmm_session_resume(struct vmm_session *s, const void *state,
    size_t len);					/* destination */
int vmm_session_complete(struct vmm_session *s, bool ok, const char *msg);
/* The daemon stops and leaves the migration resumable: Detach{reason}
 * tells the VMM to keep everything and attach again (reattach) to the
 * restarted daemon. */
int vmm_session_detach(struct vmm_session *s, const char *reason);
void vmm_session_set_data(struct vmm_session *s, void *data);
void *vmm_session_data(struct vmm_session *s);
/* Source: the dirty tracker the session kept (NULL: postcopy-only, or the
 * migration took it), and why there is none. */
struct dirty *vmm_session_dirty(struct vmm_session *s);
const char *vmm_session_dirty_why(struct vmm_session *s);

/* The requests above return 0, -ENOTCONN when the VMM is gone or not
 * attached, -EINVAL for the wrong role or an oversized state, -EALREADY
 * for a second pause. Sends never block: output is queued. */

/* The pure decoding steps of the read path (also what tests/fuzz calls).
 *
 * vmm_frame_len: the frame starting at p (avail bytes buffered). 1 and *len
 * (the body length) when the whole frame is there, 0 when more bytes are
 * needed, -EMSGSIZE when the length prefix is outside 1..cap. */
int vmm_frame_len(const uint8_t *p, size_t avail, size_t cap, uint32_t *len);

/* vmm_attach_parse: the first frame's body (after the length prefix),
 * received with nfds descriptors. Unpacks it and checks that it is an
 * Attach with a valid layout (version, id, role, mode, page size, size,
 * base, offset, descriptor count). 0 and *out (free it with
 * pcd__vmm_message__free_unpacked), or a gRPC status code with err naming
 * the problem and *out NULL. Descriptors are not inspected here. */
struct Pcd__VmmMessage;
uint32_t vmm_attach_parse(const uint8_t *buf, size_t len, int nfds,
    struct Pcd__VmmMessage **out, char *err, size_t errlen);

#endif
