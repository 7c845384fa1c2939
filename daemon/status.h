/* status.h - the status codes of pcd.Status (proto/common.proto), which
 * follow gRPC's numbering. One enum and one errno map for every reply
 * postcopyd sends: control RPC answers and errors, the VMM AttachReply and
 * the wire Welcome.
 */
#ifndef PCD_STATUS_H
#define PCD_STATUS_H

#include <stdint.h>

enum status_code {
	STATUS_OK = 0,
	STATUS_CANCELLED = 1,
	STATUS_UNKNOWN = 2,
	STATUS_INVALID_ARGUMENT = 3,
	STATUS_DEADLINE_EXCEEDED = 4,
	STATUS_NOT_FOUND = 5,
	STATUS_ALREADY_EXISTS = 6,
	STATUS_PERMISSION_DENIED = 7,
	STATUS_RESOURCE_EXHAUSTED = 8,
	STATUS_FAILED_PRECONDITION = 9,
	STATUS_ABORTED = 10,
	STATUS_OUT_OF_RANGE = 11,
	STATUS_UNIMPLEMENTED = 12,
	STATUS_INTERNAL = 13,
	STATUS_UNAVAILABLE = 14,
};

/* "FAILED_PRECONDITION"; "UNKNOWN_CODE" outside the enum. */
const char *status_name(uint32_t code);
/* The code for an errno (either sign) from the daemon: EPERM and EACCES
 * are PERMISSION_DENIED (the kernel's refusals, e.g. opening a userfaultfd
 * without the capability); EAGAIN is RESOURCE_EXHAUSTED (the daemon's only
 * source is pthread_create at the thread limit). Unmapped: INTERNAL. */
uint32_t status_from_errno(int err);

#endif
