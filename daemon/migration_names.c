/* migration_names.c - names and id syntax from migration.h, kept apart from
 * the migration engine so every tool and test can use them. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "migration.h"
#include "util.h"

const char *
mig_state_name(enum mig_state s)
{
	switch (s) {
	case MIG_STATE_WAITING:		return "waiting";
	case MIG_STATE_SETUP:		return "setup";
	case MIG_STATE_PRECOPY:		return "precopy";
	case MIG_STATE_PRECOPY_PAUSED:	return "precopy-paused";
	case MIG_STATE_SWITCHOVER:	return "switchover";
	case MIG_STATE_POSTCOPY:	return "postcopy";
	case MIG_STATE_POSTCOPY_PAUSED:	return "postcopy-paused";
	case MIG_STATE_COMPLETED:	return "completed";
	case MIG_STATE_FAILED:		return "failed";
	case MIG_STATE_CANCELLED:	return "cancelled";
	case MIG_STATE_COUNT:		break;
	}
	return "unknown";
}

const char *
mig_role_name(enum mig_role r)
{
	switch (r) {
	case MIG_ROLE_SOURCE:	return "source";
	case MIG_ROLE_DEST:	return "destination";
	}
	return "unknown";
}

/* [A-Za-z0-9._-], 1..MIG_ID_MAX bytes, and not "." or ".." (ids may end up
 * in file names). */
bool
mig_id_valid(const char *id)
{
	size_t n;

	if (id == NULL)
		return false;
	n = strlen(id);
	if (n == 0 || n > MIG_ID_MAX)
		return false;
	if (strcmp(id, ".") == 0 || strcmp(id, "..") == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

int
mig_id_check(const char *id, const char *what, char *err, size_t errlen)
{
	char q[MIG_ID_MAX + 16];

	if (mig_id_valid(id))
		return 0;
	if (err != NULL)
		snprintf(err, errlen, "%s: invalid migration id '%s' (want "
		    "1..%d characters of [A-Za-z0-9._-], not '.' or '..')",
		    what, str_quote(q, sizeof(q), id), MIG_ID_MAX);
	return -EINVAL;
}
