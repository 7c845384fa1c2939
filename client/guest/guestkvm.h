/* guestkvm.h - a one-vCPU KVM guest that reads every page of its memory.
 *
 * Guest-physical memory [0, size) is the caller's mapping (the VMM's guest
 * mapping, registered with userfaultfd by the daemon: every fault KVM takes
 * on it is resolved there). The vCPU starts in 32-bit flat protected mode
 * (KVM_SET_SREGS, no paging), so it reaches every page of a guest up to
 * GUESTKVM_MAX_SIZE. Its program lives in a separate one-page memslot at
 * GUESTKVM_CODE_GPA (anonymous memory, not part of the migrated guest):
 *
 *	xor  eax, eax
 *   1:	rol  eax, 1
 *	add  eax, [esi]
 *	add  eax, [esi + 0xffc]
 *	add  esi, 0x1000
 *	dec  ecx
 *	jnz  1b
 *	hlt
 *
 * with esi = 0 and ecx = number of pages: eax ends as
 * guestgen_kvm_checksum() of the memory.
 */
#ifndef PCD_GUESTKVM_H
#define PCD_GUESTKVM_H

#include <stddef.h>
#include <stdint.h>

#define GUESTKVM_TSS_GPA	0xffff0000ull	/* 3 pages, no memslot */
#define GUESTKVM_CODE_GPA	0xfffff000ull
#define GUESTKVM_MAX_SIZE	GUESTKVM_TSS_GPA	/* 4 GiB - 64 KiB */

struct guestkvm_result {
	uint32_t	checksum;	/* eax at hlt */
	uint64_t	pages_read;	/* from esi at hlt */
	uint64_t	exits;		/* KVM_RUN returns */
	double		run_s;
};

/* 0 if /dev/kvm can create a VM; else -errno and why names the reason. */
int guestkvm_probe(char *why, size_t len);

/* Builds the VM over mem (size bytes, page multiple, <= GUESTKVM_MAX_SIZE,
 * not touched here) without running it. */
struct guestkvm;
int guestkvm_new(void *mem, uint64_t size, struct guestkvm **out, char *err,
    size_t errlen);
/* Runs the program to its hlt. */
int guestkvm_run(struct guestkvm *k, struct guestkvm_result *res, char *err,
    size_t errlen);
void guestkvm_free(struct guestkvm *k);

#endif
