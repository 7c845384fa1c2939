/* pcvmm.h - attach a VMM's guest memory to postcopyd (libpcvmm).
 *
 * A VMM calls pcvmm_attach() once per migration with its guest memory
 * (memfd) and, on the destination, the userfaultfd it created (on the
 * source, for precopy, a userfaultfd and its pagemap); then it
 * polls pcvmm_fd() in its own loop and reads events with
 * pcvmm_next_event(): PAUSE (source: stop the vCPUs, answer with
 * pcvmm_send_paused()), RESUME (destination: load the device state, run),
 * COMPLETE (the migration is over). pcvmm_detach() leaves.
 *
 * The wire protocol is documented in VMM-PROTOCOL.md for VMMs that do not
 * link this library. Functions return 0 or -errno; the library keeps no
 * global state and is safe to use from one thread per handle. Link with
 * -lpcvmm -lpcproto -lprotobuf-c.
 */
#ifndef PCVMM_H
#define PCVMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PCVMM_PROTOCOL_VERSION	1
#define PCVMM_DEFAULT_SOCKET	"/run/postcopyd/vmm.sock"
#define PCVMM_STATE_MAX		(64u << 20)	/* device state, bytes */

struct pcvmm;

enum pcvmm_role {
	PCVMM_ROLE_SOURCE = 1,
	PCVMM_ROLE_DEST = 2,
};

enum pcvmm_mode {
	PCVMM_MODE_MINOR = 0,	/* memfd guest memory (the default) */
	PCVMM_MODE_COPY = 1,	/* destination, anonymous memory: uffd only */
};

struct pcvmm_attach_args {
	const char	*socket_path;	/* NULL: PCVMM_DEFAULT_SOCKET */
	const char	*id;		/* migration id */
	enum pcvmm_role	 role;
	enum pcvmm_mode	 mode;
	void		*base;		/* guest mapping in this process */
	uint64_t	 size;		/* bytes */
	uint64_t	 offset;	/* of the mapping in the memfd */
	/* The guest's page size: the host's base page, or 2 MiB / 1 GiB
	 * for a hugetlbfs memfd (MFD_HUGETLB | MFD_HUGE_2MB / _1GB; size,
	 * offset and base must be multiples of it), or in COPY mode for
	 * anonymous huge pages (MAP_HUGETLB; postcopyd takes 2 MiB there).
	 * 0: the memfd's own (its huge page size on hugetlbfs), in COPY mode
	 * the guest mapping's (/proc/self/smaps), else the base page. */
	uint32_t	 page_size;
	int		 memfd;		/* -1 in COPY mode */
	/* Destination: the userfaultfd the daemon resolves faults with.
	 * Source with track_dirty: the dirty-tracking userfaultfd. Else -1. */
	int		 uffd;
	/* Source, for precopy: also send uffd (a userfaultfd created for
	 * dirty tracking, no UFFDIO_API: the daemon does the handshake) and
	 * pagemap_fd (this process's /proc/self/pagemap, read-only); see
	 * pcvmm_dirty_fds_open(). Without them the daemon can migrate this
	 * guest postcopy-only. The guest must write its memory only through
	 * the mapping at base (writes through another mapping of the memfd
	 * are not tracked). pagemap_fd is ignored unless track_dirty. */
	bool		 track_dirty;
	int		 pagemap_fd;
	/* While the socket is absent or refuses connections (the daemon is
	 * (re)starting), retry for this long. 0: 5000 ms; <0: try once. */
	int		 connect_timeout_ms;
	/* Wait this long for the AttachReply. 0: 10000 ms. */
	int		 reply_timeout_ms;
	/* >0: when the daemon's connection is lost during the migration
	 * (the daemon was killed and is restarting), or the daemon said
	 * Detach (it stops and left the migration resumable), pcvmm_next_event
	 * reconnects and attaches again ("reattach", with the same memfd and
	 * userfaultfd, which the caller keeps open) for up to this long, and
	 * returns -EAGAIN once attached again. 0: connection loss is final. */
	int		 reattach_timeout_ms;
};

enum pcvmm_event_type {
	PCVMM_EV_PAUSE = 1,	/* source: stop the vCPUs, send Paused */
	PCVMM_EV_RESUME,	/* destination: device state follows; run */
	PCVMM_EV_COMPLETE,	/* migration over: ok, message */
};

struct pcvmm_event {
	enum pcvmm_event_type	 type;
	void			*state;		/* RESUME: malloc'd, or NULL */
	size_t			 state_len;
	bool			 ok;		/* COMPLETE */
	char			 message[1024];	/* COMPLETE */
};

/* Connects, sends the layout and the descriptors, waits for the reply.
 * madvise(MADV_NOHUGEPAGE)s the guest mapping first (shmem THP must not
 * back guest faults; a no-op on hugetlbfs). On refusal returns -EINVAL/
 * -EEXIST/-ENOENT/-EOPNOTSUPP (huge pages the daemon cannot migrate)/...
 * and err holds the daemon's message. The caller keeps its own fds open. */
int pcvmm_attach(const struct pcvmm_attach_args *a, struct pcvmm **out,
    char *err, size_t errlen);

/* Source, for precopy: opens the two descriptors track_dirty sends, a
 * userfaultfd (O_CLOEXEC|O_NONBLOCK; /dev/userfaultfd, else the syscall)
 * with no handshake done, and /proc/self/pagemap. The caller keeps them
 * open for the migration and closes them after. 0 or -errno with err. */
int pcvmm_dirty_fds_open(int *uffd, int *pagemap_fd, char *err,
    size_t errlen);

/* The socket to poll for POLLIN. */
int pcvmm_fd(const struct pcvmm *v);

/* Reads the next event. timeout_ms: -1 waits, 0 does not. Returns 0,
 * -EAGAIN (nothing within the timeout, or attached again after the daemon
 * restarted: see reattach_timeout_ms), -ECONNRESET (the daemon closed the
 * connection), -EPROTO (a malformed or unexpected frame). */
int pcvmm_next_event(struct pcvmm *v, int timeout_ms, struct pcvmm_event *ev);
void pcvmm_event_clear(struct pcvmm_event *ev);

/* Source, after PAUSE: the vCPUs are stopped; state may be NULL/0. */
int pcvmm_send_paused(struct pcvmm *v, const void *state, size_t len);

/* Sends Detach (best effort), closes and frees. NULL is fine. */
void pcvmm_detach(struct pcvmm *v, const char *reason);

#endif
