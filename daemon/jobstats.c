/* jobstats.c - MigrationInfo and libvirt job statistics (see jobstats.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h>

#include "jobstats.h"
#include "migration.h"

static int
job_type(enum mig_state s)
{
	switch (s) {
	case MIG_STATE_COMPLETED:	return VIR_DOMAIN_JOB_COMPLETED;
	case MIG_STATE_FAILED:		return VIR_DOMAIN_JOB_FAILED;
	case MIG_STATE_CANCELLED:	return VIR_DOMAIN_JOB_CANCELLED;
	default:			return VIR_DOMAIN_JOB_UNBOUNDED;
	}
}

/* Precopy (a source that ran rounds): libvirt's iteration and dirty
 * rate (pages/s). */
static int
jobstats_precopy(const struct mig_stats *st, virTypedParameterPtr *p, int *n,
    int *max)
{
	int ok = 0;

	if (st->role != MIG_ROLE_SOURCE || st->iteration == 0)
		return 0;
	ok |= virTypedParamsAddULLong(p, n, max,
	    VIR_DOMAIN_JOB_MEMORY_ITERATION, st->iteration);
	ok |= virTypedParamsAddULLong(p, n, max,
	    VIR_DOMAIN_JOB_MEMORY_DIRTY_RATE, st->dirty_rate);
	return ok;
}

/* The libvirt job type (VIR_DOMAIN_JOB_UNBOUNDED, ...) and job parameters
 * of one migration; free with virTypedParamsFree(*params, *nparams). */
static int
jobstats_params(const struct mig_stats *st, virTypedParameterPtr *params,
    int *nparams, int *type)
{
	virTypedParameterPtr p = NULL;
	int n = 0, max = 0, ok = 0;
	uint64_t ps = st->page_size, total = st->pages_total * ps;
	uint64_t valid = st->pages_valid < st->pages_total ? st->pages_valid :
	    st->pages_total;
	uint64_t remaining = (st->pages_total - valid) * ps;
	uint64_t normal = valid > st->pages_zero ? valid - st->pages_zero : 0;
	uint64_t bps = st->elapsed_ms > 0 ?
	    st->bytes_transferred * 1000 / st->elapsed_ms : 0;
	uint64_t requests = st->role == MIG_ROLE_DEST ? st->faults_remote :
	    st->pages_sent_urgent;

	/* libvirt's API keeps its last error in thread-local storage that
	 * virInitialize sets up (once; later calls are cheap). */
	if (virInitialize() < 0)
		return -ENOMEM;

	ok |= virTypedParamsAddInt(&p, &n, &max, VIR_DOMAIN_JOB_OPERATION,
	    st->role == MIG_ROLE_DEST ? VIR_DOMAIN_JOB_OPERATION_MIGRATION_IN :
	    VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT);
	ok |= virTypedParamsAddULLong(&p, &n, &max,
	    VIR_DOMAIN_JOB_TIME_ELAPSED, st->elapsed_ms);
	ok |= virTypedParamsAddULLong(&p, &n, &max, VIR_DOMAIN_JOB_SETUP_TIME,
	    st->setup_ms);
	ok |= virTypedParamsAddULLong(&p, &n, &max, VIR_DOMAIN_JOB_DOWNTIME,
	    st->downtime_ms);
	ok |= virTypedParamsAddULLong(&p, &n, &max, VIR_DOMAIN_JOB_DATA_TOTAL,
	    total);
	ok |= virTypedParamsAddULLong(&p, &n, &max,
	    VIR_DOMAIN_JOB_DATA_PROCESSED, st->bytes_transferred);
	ok |= virTypedParamsAddULLong(&p, &n, &max,
	    VIR_DOMAIN_JOB_DATA_REMAINING, remaining);
	ok |= virTypedParamsAddULLong(&p, &n, &max,
	    VIR_DOMAIN_JOB_MEMORY_TOTAL, total);
	ok |= virTypedParamsAddULLong(&p, &n, &max,
	    VIR_DOMAIN_JOB_MEMORY_PROCESSED, st->bytes_transferred);
	ok |= virTypedParamsAddULLong(&p, &n, &max,
	    VIR_DOMAIN_JOB_MEMORY_REMAINING, remaining);
	ok |= virTypedParamsAddULLong(&p, &n, &max,
	    VIR_DOMAIN_JOB_MEMORY_CONSTANT, st->pages_zero);
	ok |= virTypedParamsAddULLong(&p, &n, &max,
	    VIR_DOMAIN_JOB_MEMORY_NORMAL, normal);
	ok |= virTypedParamsAddULLong(&p, &n, &max,
	    VIR_DOMAIN_JOB_MEMORY_NORMAL_BYTES, normal * ps);
	ok |= virTypedParamsAddULLong(&p, &n, &max, VIR_DOMAIN_JOB_MEMORY_BPS,
	    bps);
	ok |= virTypedParamsAddULLong(&p, &n, &max,
	    VIR_DOMAIN_JOB_MEMORY_PAGE_SIZE, ps);
	ok |= virTypedParamsAddULLong(&p, &n, &max,
	    VIR_DOMAIN_JOB_MEMORY_POSTCOPY_REQS, requests);
	ok |= jobstats_precopy(st, &p, &n, &max);
	if (mig_terminal(st->state))
		ok |= virTypedParamsAddBoolean(&p, &n, &max,
		    VIR_DOMAIN_JOB_SUCCESS, st->state == MIG_STATE_COMPLETED);
	if (st->errmsg[0] != '\0')
		ok |= virTypedParamsAddString(&p, &n, &max,
		    VIR_DOMAIN_JOB_ERRMSG, st->errmsg);
	if (ok < 0) {
		virTypedParamsFree(p, n);
		return -ENOMEM;
	}
	*params = p;
	*nparams = n;
	*type = job_type(st->state);
	return 0;
}

static int
param_to_proto(const virTypedParameter *v, Pcd__TypedParam **out)
{
	Pcd__TypedParam *tp;

	if ((tp = malloc(sizeof(*tp))) == NULL)
		return -ENOMEM;
	pcd__typed_param__init(tp);
	if ((tp->field = strdup(v->field)) == NULL)
		goto nomem;
	tp->type = (uint32_t)v->type;
	switch (v->type) {
	case VIR_TYPED_PARAM_INT:
		tp->value_case = PCD__TYPED_PARAM__VALUE_I;
		tp->i = v->value.i;
		break;
	case VIR_TYPED_PARAM_LLONG:
		tp->value_case = PCD__TYPED_PARAM__VALUE_I;
		tp->i = v->value.l;
		break;
	case VIR_TYPED_PARAM_UINT:
		tp->value_case = PCD__TYPED_PARAM__VALUE_U;
		tp->u = v->value.ui;
		break;
	case VIR_TYPED_PARAM_ULLONG:
		tp->value_case = PCD__TYPED_PARAM__VALUE_U;
		tp->u = v->value.ul;
		break;
	case VIR_TYPED_PARAM_DOUBLE:
		tp->value_case = PCD__TYPED_PARAM__VALUE_D;
		tp->d = v->value.d;
		break;
	case VIR_TYPED_PARAM_BOOLEAN:
		tp->value_case = PCD__TYPED_PARAM__VALUE_B;
		tp->b = v->value.b != 0;
		break;
	case VIR_TYPED_PARAM_STRING:
		tp->value_case = PCD__TYPED_PARAM__VALUE_S;
		if ((tp->s = strdup(v->value.s != NULL ? v->value.s : "")) ==
		    NULL)
			goto nomem;
		break;
	default:
		break;
	}
	*out = tp;
	return 0;
nomem:
	free(tp->field);
	free(tp);
	return -ENOMEM;
}

int
jobstats_info_fill(Pcd__MigrationInfo *mi, const struct mig_stats *st)
{
	virTypedParameterPtr params = NULL;
	int nparams = 0, type, r;

	mi->id = (char *)st->id;
	mi->role = (char *)mig_role_name(st->role);
	mi->state = (char *)mig_state_name(st->state);
	mi->listen = (char *)st->listen;
	mi->errmsg = (char *)st->errmsg;
	mi->page_size = st->page_size;
	mi->pages_total = st->pages_total;
	mi->pages_valid = st->pages_valid;
	mi->pages_zero = st->pages_zero;
	mi->pages_sent_bulk = st->pages_sent_bulk;
	mi->pages_sent_urgent = st->pages_sent_urgent;
	mi->bytes_transferred = st->bytes_transferred;
	mi->faults_remote = st->faults_remote;
	mi->faults_local = st->faults_local;
	mi->lat_max_us = st->lat_max_us;
	/* A percentile is a bucket's upper bound: never report one above
	 * the largest latency actually seen. */
	mi->lat_p50_us = MIN(mig_lat_percentile(st->lat_hist, 0.50), st->lat_max_us);
	mi->lat_p99_us = MIN(mig_lat_percentile(st->lat_hist, 0.99), st->lat_max_us);
	mi->lat_p999_us = MIN(mig_lat_percentile(st->lat_hist, 0.999), st->lat_max_us);
	mi->bandwidth_bps = st->bandwidth_bps;
	mi->start_ms = st->start_ms;
	mi->elapsed_ms = st->elapsed_ms;
	mi->setup_ms = st->setup_ms;
	mi->downtime_ms = st->downtime_ms;
	mi->vmm_attached = st->vmm_attached;
	mi->refused = (char *)st->refused;
	mi->page_requests = st->page_requests;
	mi->pages_verified = st->pages_verified;
	mi->pages_mismatched = st->pages_mismatched;
	mi->reconnects = st->reconnects;
	mi->switched_over = st->switched_over;
	mi->phase = (char *)st->phase;
	mi->iteration = st->iteration;
	mi->precopy_pages_sent = st->precopy_pages_sent;
	mi->precopy_last_round_pages = st->precopy_last_round;
	mi->dirty_rate = st->dirty_rate;
	mi->remaining = st->remaining;
	mi->precopy_note = (char *)st->precopy_note;
	mi->pages_redirtied = st->pages_redirtied;
	mi->final_dirty = st->final_dirty;
	mi->draining = (char *)st->draining;

	if ((mi->lat_hist = malloc(sizeof(uint64_t) * MIG_LAT_BUCKETS)) == NULL)
		return -ENOMEM;
	memcpy(mi->lat_hist, st->lat_hist, sizeof(uint64_t) * MIG_LAT_BUCKETS);
	mi->n_lat_hist = MIG_LAT_BUCKETS;

	if ((r = jobstats_params(st, &params, &nparams, &type)) < 0)
		goto fail;
	mi->job_type = type;
	if ((mi->job = calloc((size_t)nparams, sizeof(*mi->job))) == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	for (int i = 0; i < nparams; i++) {
		if ((r = param_to_proto(&params[i], &mi->job[i])) < 0)
			goto fail;
		mi->n_job++;
	}
	virTypedParamsFree(params, nparams);
	return 0;
fail:
	virTypedParamsFree(params, nparams);
	jobstats_info_clear(mi);
	return r;
}

void
jobstats_info_clear(Pcd__MigrationInfo *mi)
{
	free(mi->lat_hist);
	mi->lat_hist = NULL;
	mi->n_lat_hist = 0;
	for (size_t i = 0; i < mi->n_job; i++) {
		free(mi->job[i]->field);
		if (mi->job[i]->value_case == PCD__TYPED_PARAM__VALUE_S)
			free(mi->job[i]->s);
		free(mi->job[i]);
	}
	free(mi->job);
	mi->job = NULL;
	mi->n_job = 0;
}
