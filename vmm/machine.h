/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The engine layer: one machine interface, several engines behind it (`qemu`
 * drives qemu-system-x86_64 -M microvm; `kvm` is kal's own VMM).  The
 * supervisor only ever talks to a struct machine through these ops, so an
 * engine is free to be a child process (qemu) or the supervisor itself (kvm).
 *
 * Lifecycle: machine_engine_select -> ops->start(cfg) -> (poll exit_fd,
 * console_fd, agent_fd) -> ops->stop -> ops->wait -> ops->destroy.
 */
#ifndef KAL_VMM_MACHINE_H
#define KAL_VMM_MACHINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvm.h"

struct kal_err;

enum machine_net {
	MACHINE_NET_NONE,
	MACHINE_NET_USER, /* user-mode NAT: guest 10.0.2.15/24, gw 10.0.2.2, dns 10.0.2.3 */
};

struct machine_layer {
	const char *path; /* EROFS image, opened read-only by the engine */
	uint64_t size;	  /* bytes (a multiple of 2 MiB for pmem) */
};

/*
 * Everything an engine needs to boot one VM.  Strings are borrowed for the
 * duration of start(); engines copy what they keep.
 */
struct machine_config {
	const char *name;		    /* VM name, also the guest hostname */
	const struct machine_layer *layers; /* bottom first */
	size_t n_layers;
	const char *upper_path;	 /* sparse ext4 file, read-write */
	const char *kernel_path; /* uncompressed vmlinux */
	const char *initrd_path; /* uncompressed newc cpio holding /init (kal-init) */
	unsigned int memory_mib;
	unsigned int vcpus;
	enum machine_net net;
	bool hugepages; /* guest RAM on 2 MiB huge pages (machine_hugepages_check first) */
	char *const
	    *publish; /* canonical forwards "IP:HOST:GUEST/PROTO" (needs MACHINE_NET_USER) */
	size_t n_publish;
	const char *extra_cmdline; /* appended to the kernel command line, may be NULL */
	const char *state_dir;	   /* the VM directory: engines put their private files here */
	const char *console_log;   /* informational: where the supervisor keeps the console */
	bool nested_quirks;	   /* pass kal.nested_quirks=1 (emulated-kernel-mode hosts) */
	bool verbose;		   /* keep the engine's own diagnostics in <state_dir>/engine.log */
};

/* One running VM; engines embed this as the first member and use container_of. */
struct machine {
	const struct machine_ops *ops;
};

enum machine_avail {
	MACHINE_AVAIL_NO,    /* cannot run here (reason says why) */
	MACHINE_AVAIL_CRAWL, /* runs, minutes per boot: auto takes it only when nothing else runs */
	MACHINE_AVAIL_SLOW,  /* runs, but far from hardware speed (reason says why) */
	MACHINE_AVAIL_YES,
};

struct machine_ops {
	const char *name;
	/* Can this engine run here (cheap: called on every `kal run`)?  Fills reason always. */
	enum machine_avail (*available)(char *reason, size_t len);
	/* Optional: a longer description for `kal doctor` (versions; may be slow). */
	void (*describe)(char *buf, size_t len);
	/*
	 * Optional: refuse a configuration this engine cannot boot, before any
	 * VM state exists (only name, layers, memory, vcpus and net are set).
	 */
	int (*check)(const struct machine_config *cfg, struct kal_err **err);
	/* Boot; returns with the VM running (not necessarily the agent ready). */
	struct machine *(*start)(const struct machine_config *cfg, struct kal_err **err);
	/*
	 * End the VM: a graceful request first, then forced after timeout_ms.
	 * Returns once the VM is gone (wait() then reports the exit).
	 */
	int (*stop)(struct machine *m, int timeout_ms, struct kal_err **err);
	/* A pollable fd that turns readable when the VM has ended. */
	int (*exit_fd)(struct machine *m);
	/*
	 * Collect the end of the VM: 1 when it ended (*desc says how, e.g.
	 * "qemu exited with status 1"), 0 when still running.  Never blocks.
	 */
	int (*wait)(struct machine *m, char *desc, size_t len);
	/* Stream socket to the guest agent's channel (owned by the machine). */
	int (*agent_fd)(struct machine *m);
	/* Readable stream of the guest's serial console (owned by the machine). */
	int (*console_fd)(struct machine *m);
	/* Free everything; forcibly ends the VM if it is still running. */
	void (*destroy)(struct machine *m);
};

extern const struct machine_ops machine_qemu_ops;
extern const struct machine_ops machine_kvm_ops;

/* All engines, NULL-terminated, in order of preference for `auto`. */
extern const struct machine_ops *const machine_engines[];

const struct machine_ops *machine_engine_find(const char *name);

/*
 * Pick an engine: want is "kvm", "qemu", "auto" or NULL (then $KAL_ENGINE,
 * else auto).  auto takes the first engine that is MACHINE_AVAIL_YES, else
 * the first that runs at all.  why explains the choice ("auto: kvm: ...;
 * picked qemu").  An explicitly named engine that cannot run is an error.
 */
const struct machine_ops *machine_engine_select(const char *want, char *why, size_t len,
						struct kal_err **err);

/*
 * Time a supervisor-mode loop in a tiny KVM guest (vmm_kvm_probe_speed).
 * Returns nanoseconds per guest kernel-mode instruction (about 1 on hardware
 * KVM, ~1000 when kernel mode is emulated as on nested kvm_pvm), or -1 with
 * *err when KVM is not usable.
 */
double machine_kvm_probe_ns(struct kal_err **err);
/* Threshold above which KVM counts as emulated (ns per probe iteration). */
#define MACHINE_KVM_FAST_NS VMM_KVM_SLOW_NS_PER_INSN

/*
 * The guest kernel: $KAL_KERNEL, else <dir of /proc/self/exe>/vmlinux, else
 * /usr/local/lib/kal/vmlinux.  Caller frees.
 */
char *machine_kernel_find(struct kal_err **err);

/*
 * A published port as users write it (docker's -p): [IP:]HOST:GUEST[/tcp|/udp].
 * IP defaults to 127.0.0.1 (only this host), ports are 1-65535.  canon (if
 * not NULL, 48 bytes) gets the fully spelled form "127.0.0.1:8080:80/tcp",
 * which this function parses back to the same forward.
 */
int machine_forward_parse(const char *spec, struct vmm_forward *f, char *canon,
			  struct kal_err **err);
#define MACHINE_FORWARD_CANON_MAX 48

/*
 * Are there enough free 2 MiB huge pages for memory_mib of guest RAM?  The
 * error names the shortfall and how to reserve more.
 */
int machine_hugepages_check(unsigned int memory_mib, struct kal_err **err);

/*
 * Kernel command line shared by engines (no trailing space); caller frees.
 * layerdev is kal.layerdev (blk, pmem), reboot the kernel's reboot= method ('t' triple fault, 'k' i8042 reset: the
 * method the engine ends the VM on; a panic reboots too, panic=-1).
 */
char *machine_cmdline(const struct machine_config *cfg, const char *layerdev, char reboot);

/* A NULL-terminated argv built one printf-formatted argument at a time. */
struct machine_argv {
	char **v;
	size_t n;
};
void machine_arg(struct machine_argv *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void machine_argv_free(struct machine_argv *a);

#endif
