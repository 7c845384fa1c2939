/* guestkvm.c - see guestkvm.h. */
#include "guestkvm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* The program of guestkvm.h, assembled by hand (32-bit code). */
static const uint8_t guestkvm_prog[] = {
	0x31, 0xc0,				/* xor  eax, eax	*/
	0xd1, 0xc0,				/* 1: rol eax, 1	*/
	0x03, 0x06,				/* add  eax, [esi]	*/
	0x03, 0x86, 0xfc, 0x0f, 0x00, 0x00,	/* add  eax, [esi+0xffc]*/
	0x81, 0xc6, 0x00, 0x10, 0x00, 0x00,	/* add  esi, 0x1000	*/
	0x49,					/* dec  ecx		*/
	0x75, 0xed,				/* jnz  1b (-19)	*/
	0xf4,					/* hlt			*/
};

struct guestkvm {
	int		 kvm, vm, vcpu;
	struct kvm_run	*run;
	size_t		 runsz;
	void		*code;
	uint64_t	 size;
};

int
guestkvm_probe(char *why, size_t len)
{
	int kvm, vm, r = 0;

	if ((kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC)) < 0) {
		r = -errno;
		snprintf(why, len, "/dev/kvm: %s", strerror(errno));
		return r;
	}
	if (ioctl(kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
		snprintf(why, len, "/dev/kvm: unexpected KVM API version");
		close(kvm);
		return -ENOTSUP;
	}
	if ((vm = ioctl(kvm, KVM_CREATE_VM, 0)) < 0) {
		r = -errno;
		snprintf(why, len, "KVM_CREATE_VM: %s", strerror(errno));
	} else
		close(vm);
	close(kvm);
	return r;
}

void
guestkvm_free(struct guestkvm *k)
{
	if (k == NULL)
		return;
	if (k->run != NULL)
		munmap(k->run, k->runsz);
	if (k->code != NULL)
		munmap(k->code, 4096);
	if (k->vcpu >= 0)
		close(k->vcpu);
	if (k->vm >= 0)
		close(k->vm);
	if (k->kvm >= 0)
		close(k->kvm);
	free(k);
}

int
guestkvm_new(void *mem, uint64_t size, struct guestkvm **out, char *err,
    size_t errlen)
{
	struct kvm_userspace_memory_region slot;
	struct kvm_sregs sr;
	struct kvm_segment cs, ds;
	struct guestkvm *k;
	int r, n;

	*out = NULL;
	if (size == 0 || size % 4096 != 0 || size > GUESTKVM_MAX_SIZE) {
		snprintf(err, errlen, "the kvm workload needs a guest of 4 KiB "
		    "to %llu bytes (4 GiB - 64 KiB; the top 64 KiB of the "
		    "32-bit space hold its program), not %llu",
		    (unsigned long long)GUESTKVM_MAX_SIZE,
		    (unsigned long long)size);
		return -EINVAL;
	}
	if ((k = calloc(1, sizeof(*k))) == NULL)
		return -ENOMEM;
	k->kvm = k->vm = k->vcpu = -1;
	k->size = size;
#define KFAIL(what) do {						\
		r = -errno;						\
		snprintf(err, errlen, "%s: %s", what, strerror(errno));	\
		goto fail;						\
	} while (0)
	if ((k->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC)) < 0)
		KFAIL("/dev/kvm");
	if ((k->vm = ioctl(k->kvm, KVM_CREATE_VM, 0)) < 0)
		KFAIL("KVM_CREATE_VM");
	/* Needed by VMX without unrestricted guest; harmless elsewhere. */
	if (ioctl(k->kvm, KVM_CHECK_EXTENSION, KVM_CAP_SET_TSS_ADDR) > 0)
		(void)ioctl(k->vm, KVM_SET_TSS_ADDR, (unsigned long)GUESTKVM_TSS_GPA);

	k->code = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (k->code == MAP_FAILED) {
		k->code = NULL;
		KFAIL("mmap of the program page");
	}
	memcpy(k->code, guestkvm_prog, sizeof(guestkvm_prog));

	memset(&slot, 0, sizeof(slot));
	slot.slot = 0;
	slot.guest_phys_addr = 0;
	slot.memory_size = size;
	slot.userspace_addr = (uintptr_t)mem;
	if (ioctl(k->vm, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
		KFAIL("KVM_SET_USER_MEMORY_REGION (guest memory)");
	slot.slot = 1;
	slot.guest_phys_addr = GUESTKVM_CODE_GPA;
	slot.memory_size = 4096;
	slot.userspace_addr = (uintptr_t)k->code;
	slot.flags = KVM_MEM_READONLY;
	if (ioctl(k->vm, KVM_SET_USER_MEMORY_REGION, &slot) < 0) {
		slot.flags = 0;		/* no read-only memslots here */
		if (ioctl(k->vm, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
			KFAIL("KVM_SET_USER_MEMORY_REGION (program)");
	}

	if ((k->vcpu = ioctl(k->vm, KVM_CREATE_VCPU, 0)) < 0)
		KFAIL("KVM_CREATE_VCPU");
	if ((n = ioctl(k->kvm, KVM_GET_VCPU_MMAP_SIZE, 0)) <= 0)
		KFAIL("KVM_GET_VCPU_MMAP_SIZE");
	k->runsz = (size_t)n;
	k->run = mmap(NULL, k->runsz, PROT_READ | PROT_WRITE, MAP_SHARED,
	    k->vcpu, 0);
	if (k->run == MAP_FAILED) {
		k->run = NULL;
		KFAIL("mmap of kvm_run");
	}

	/* 32-bit flat protected mode: 4 GiB segments at base 0, no paging. */
	if (ioctl(k->vcpu, KVM_GET_SREGS, &sr) < 0)
		KFAIL("KVM_GET_SREGS");
	memset(&cs, 0, sizeof(cs));
	cs.base = 0;
	cs.limit = 0xffffffff;
	cs.selector = 0x08;
	cs.type = 0x0b;		/* code: execute/read, accessed */
	cs.present = 1;
	cs.dpl = 0;
	cs.db = 1;		/* 32-bit */
	cs.s = 1;
	cs.g = 1;
	ds = cs;
	ds.selector = 0x10;
	ds.type = 0x03;		/* data: read/write, accessed */
	sr.cs = cs;
	sr.ds = sr.es = sr.fs = sr.gs = sr.ss = ds;
	sr.cr0 = 0x11;		/* PE | ET */
	sr.cr4 = 0;
	sr.efer = 0;
	if (ioctl(k->vcpu, KVM_SET_SREGS, &sr) < 0)
		KFAIL("KVM_SET_SREGS (32-bit flat protected mode)");
#undef KFAIL
	*out = k;
	return 0;
fail:
	guestkvm_free(k);
	return r;
}

int
guestkvm_run(struct guestkvm *k, struct guestkvm_result *res, char *err,
    size_t errlen)
{
	struct kvm_regs regs;
	struct timespec t0, t1;

	memset(res, 0, sizeof(*res));
	memset(&regs, 0, sizeof(regs));
	regs.rip = GUESTKVM_CODE_GPA;
	regs.rflags = 0x2;
	regs.rsi = 0;
	regs.rcx = k->size / 4096;
	if (ioctl(k->vcpu, KVM_SET_REGS, &regs) < 0) {
		snprintf(err, errlen, "KVM_SET_REGS: %s", strerror(errno));
		return -errno;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		res->exits++;
		if (ioctl(k->vcpu, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			snprintf(err, errlen, "KVM_RUN: %s", strerror(errno));
			return -errno;
		}
		if (k->run->exit_reason == KVM_EXIT_HLT)
			break;
		if (k->run->exit_reason == KVM_EXIT_INTR)
			continue;
		if (ioctl(k->vcpu, KVM_GET_REGS, &regs) == 0)
			snprintf(err, errlen, "the guest stopped with KVM exit "
			    "reason %u at rip 0x%llx (esi 0x%llx)",
			    k->run->exit_reason, (unsigned long long)regs.rip,
			    (unsigned long long)regs.rsi);
		else
			snprintf(err, errlen, "the guest stopped with KVM exit "
			    "reason %u", k->run->exit_reason);
		return -EIO;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (ioctl(k->vcpu, KVM_GET_REGS, &regs) < 0) {
		snprintf(err, errlen, "KVM_GET_REGS: %s", strerror(errno));
		return -errno;
	}
	res->checksum = (uint32_t)regs.rax;
	/* esi wraps to 0 after exactly 4 GiB; here it ends at size. */
	res->pages_read = (uint32_t)regs.rsi / 4096;
	res->run_s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	if ((uint32_t)regs.rcx != 0) {
		snprintf(err, errlen, "the guest halted with %u pages left",
		    (uint32_t)regs.rcx);
		return -EIO;
	}
	return 0;
}
