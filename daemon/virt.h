/* virt.h - optional libvirt domain control of a migration: the source
 * suspends the domain at switchover, the destination resumes it when the
 * guest may run. libvirt calls can block (remote URIs), so they run on a
 * worker thread of their own; results come back to the loop through an
 * eventfd and are reported by Status.
 */
#ifndef PCD_VIRT_H
#define PCD_VIRT_H

#include <stdbool.h>

#include "migration.h"

struct event_base;
struct virt;

enum virt_op { VIRT_CHECK = 1, VIRT_SUSPEND, VIRT_RESUME };

int virt_new(struct event_base *base, struct virt **out);
void virt_free(struct virt *v);		/* joins the worker */

/* Starts tracking the domain of migration id and checks it exists (the
 * result shows up in virt_get). Replaces an earlier entry for id. */
int virt_track(struct virt *v, const char *id, enum mig_role role,
    const char *uri, const char *domain);
/* Feeds a migration's new state (main.c's transition hook): once the guest
 * has switched over (mig_switched_over), a source suspends its domain and a
 * destination resumes it. Once per migration. */
void virt_on_state(struct virt *v, const char *id, enum mig_state state);
/* What the last action on id's domain found. false if id has no domain. */
bool virt_get(struct virt *v, const char *id, const char **domain,
    const char **state, const char **error);
/* Actions queued or running (tests wait for 0). */
unsigned virt_pending(struct virt *v);

/* Synchronous action for tools and tests (blocks: never on the loop).
 * state gets the domain state after the action ("running", "paused"...). */
int virt_do(const char *uri, const char *domain, enum virt_op op,
    char *state, size_t statelen, char *err, size_t errlen);

#endif
