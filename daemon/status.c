/* status.c - see status.h. */
#include "status.h"

#include <errno.h>

#include "util.h"

const char *
status_name(uint32_t code)
{
	static const char *const names[] = {
		[STATUS_OK] = "OK",
		[STATUS_CANCELLED] = "CANCELLED",
		[STATUS_UNKNOWN] = "UNKNOWN",
		[STATUS_INVALID_ARGUMENT] = "INVALID_ARGUMENT",
		[STATUS_DEADLINE_EXCEEDED] = "DEADLINE_EXCEEDED",
		[STATUS_NOT_FOUND] = "NOT_FOUND",
		[STATUS_ALREADY_EXISTS] = "ALREADY_EXISTS",
		[STATUS_PERMISSION_DENIED] = "PERMISSION_DENIED",
		[STATUS_RESOURCE_EXHAUSTED] = "RESOURCE_EXHAUSTED",
		[STATUS_FAILED_PRECONDITION] = "FAILED_PRECONDITION",
		[STATUS_ABORTED] = "ABORTED",
		[STATUS_OUT_OF_RANGE] = "OUT_OF_RANGE",
		[STATUS_UNIMPLEMENTED] = "UNIMPLEMENTED",
		[STATUS_INTERNAL] = "INTERNAL",
		[STATUS_UNAVAILABLE] = "UNAVAILABLE",
	};

	if (code < ARRAY_SIZE(names))
		return names[code];
	return "UNKNOWN_CODE";
}

uint32_t
status_from_errno(int err)
{
	switch (err < 0 ? -err : err) {
	case 0:			return STATUS_OK;
	case EINVAL:
	case ENAMETOOLONG:
	case EDOM:		return STATUS_INVALID_ARGUMENT;
	case ENOENT:
	case ESRCH:		return STATUS_NOT_FOUND;
	case EEXIST:		return STATUS_ALREADY_EXISTS;
	case EPERM:
	case EACCES:		return STATUS_PERMISSION_DENIED;
	case ENOSPC:
	case EMFILE:
	case ENFILE:
	case ENOMEM:
	case EAGAIN:
	case EUSERS:		return STATUS_RESOURCE_EXHAUSTED;
	case EBUSY:
	case EALREADY:
	case EINPROGRESS:
	case EISCONN:
	case ESTALE:		return STATUS_FAILED_PRECONDITION;
	case ECANCELED:		return STATUS_CANCELLED;
	case ERANGE:
	case EOVERFLOW:		return STATUS_OUT_OF_RANGE;
	case ENOSYS:
	case EOPNOTSUPP:	return STATUS_UNIMPLEMENTED;
	case ECONNREFUSED:
	case ECONNRESET:
	case EHOSTUNREACH:
	case ENETUNREACH:
	case ESHUTDOWN:
	case ETIMEDOUT:		return STATUS_UNAVAILABLE;
	default:		return STATUS_INTERNAL;
	}
}
