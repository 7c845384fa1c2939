/* jobstats.h - a migration's statistics as the control RPC reports them:
 * pcd.MigrationInfo, including libvirt job statistics built with libvirt's
 * typed-parameter API under the VIR_DOMAIN_JOB_* names `virsh domjobinfo`
 * prints.
 */
#ifndef PCD_JOBSTATS_H
#define PCD_JOBSTATS_H

#include <stdbool.h>

#include <libvirt/libvirt.h>

#include "control.pb-c.h"

struct mig_stats;

/* Fills an initialised MigrationInfo; strings may point into *st, which
 * must outlive mi. Undo with jobstats_info_clear. 0 or -ENOMEM. */
int jobstats_info_fill(Pcd__MigrationInfo *mi, const struct mig_stats *st);
void jobstats_info_clear(Pcd__MigrationInfo *mi);

#endif
