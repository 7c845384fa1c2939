/* dest_int.h - what the destination's files share: struct dest, used by
 * dest.c (accepting, receiving, completion) and dest_fault.c (the fault
 * thread and page requests). Nothing outside the destination includes it.
 */
#ifndef PCD_DEST_INT_H
#define PCD_DEST_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "migration_int.h"
#include "pagestate.h"
#include "place.h"
#include "session.h"
#include "wire.h"

struct chan;

#define DEST_LINGER_MS		5000	/* after Complete: wait for the source */
#define DEST_READAHEAD		8	/* pages requested per remote fault */
#define DEST_UFFD_BATCH		64	/* events per read */
#define DEST_HAVE_MAX		60000	/* ranges in a Welcome (its 1 MiB cap) */
#define DEST_YIELD_MS		20	/* huge pages: the bulk receiver waits
					 * at most this long (per frame) while
					 * a demanded huge page arrives */

struct dest;

/* The receiver of bulk channel k >= 1 (channel 0 is the main thread's). */
struct dest_bulk {
	struct dest		*d;
	uint32_t		 k;
	pthread_t		 thr;
	bool			 started;	/* [main] */
};

struct dest {
	struct mig		*m;		/* [const] */
	struct session		 s;		/* channels, stop, broken */
	struct pagestate	 pg;
	struct place		 pl;
	pthread_t		 main_thr, urgent_thr, fault_thr;
	bool			 main_started, urgent_started, fault_started;
	struct dest_bulk	 bulk[WIRE_BULK_CHANNELS_MAX];	/* [main] 1 ..
						 * the session's nbulk - 1 */
	bool			 registered;	/* [main] guest range */
	atomic_bool		 unregistered;	/* every page mapped */
	atomic_bool		 switched;	/* Switchover arrived */
	/* A Switchover was read (maybe still waiting for the precopy
	 * rounds' end), and whether rounds ran before it. */
	atomic_bool		 sw_in, sw_after_precopy;
	unsigned		 sessions;	/* [main] */
	bool			 restored;	/* [const] after a restart */
	/* Huge pages: the bulk receivers' waits while guest threads waited
	 * for demanded huge pages, and those that ran out. */
	_Atomic uint64_t	 yields, yields_capped;

	/* Precopy (dest_precopy.c). */
	atomic_bool		 precopy;	/* the source runs rounds */
	atomic_bool		 precopy_done;	/* the final stale list is in */
	_Atomic uint32_t	 round;		/* the source's current round */
	uint64_t		 stale;		/* [main] pages made not valid */
	bool			 wait_all;	/* [urgent] converged */
	uint64_t		 map_cursor;	/* [fault] background mapper */
	/* Test only (PCD_TEST_MAPPER_DELAY_MS): the background mapper starts
	 * this long after precopy ends, so a test sees local faults. */
	uint64_t		 map_delay_ns;	/* [const] */
	_Atomic uint64_t	 map_after;	/* now_ns() it may start */

	/* Digests are compared as they arrive (the source sends them after
	 * its last page, so nearly every page is here by then); those of
	 * pages still in flight wait in a short list. [main] */
	uint64_t		 digests;	/* received this session */
	uint64_t		 verified, mismatched, first_bad;
	struct dest_digest {
		uint64_t	 index;
		uint64_t	 hash;
	}			*deferred;
	size_t			 ndeferred, deferred_cap;
	/* Complete went out (main): the verdict, kept after the migration
	 * for the source's reconnects (dest_done.c). [main, then loop after
	 * the join] */
	bool			 completed;
	struct session_verdict	 verdict;
};

/* dest_precopy.c */
bool	 dest_precopy_active(struct dest *d);
int	 dest_precopy_run(struct dest *d, struct chan *c,
	    const struct wire_hdr *h, uint8_t *bounce);
int	 dest_precopy_msg(struct dest *d, struct chan *c, unsigned type,
	    const ProtobufCMessage *msg);
int	 dest_precopy_wait(struct dest *d, const Pcd__Wire__Switchover *sw);
bool	 dest_precopy_map(struct dest *d);

/* dest_fault.c */
void	*dest_fault_main(void *arg);	/* the fault thread */
void	 dest_rerequest(struct dest *d);

#endif
