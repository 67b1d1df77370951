/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A VM's state on the host.  $KAL_HOME/vms/<name>/ holds:
 *
 *   config.json     what to boot (written once by `kal run`, atomically)
 *   upper.ext4      the sparse read-write upper disk
 *   initrd.cpio     the agent initramfs handed to the engine
 *   console.log     the serial console, capped (newest bytes kept)
 *   lock            flock held by the supervisor for its whole life: the
 *                   only liveness test (a stale pid file cannot lie)
 *   supervisor.pid  the supervisor's pid (for display and last-resort kill)
 *   exit            one line: how the VM ended ("stopped", "qemu exited ...")
 *   engine files    e.g. qemu.cmdline, qemu.log
 *
 * and the supervisor listens on $XDG_RUNTIME_DIR/kal/<name>.sock (fallback
 * $KAL_HOME/run/<name>.sock).  Names: [a-z0-9][a-z0-9_.-]{0,62}; creating
 * the directory with mkdir is what reserves a name.
 */
#ifndef KAL_VMM_VMSTATE_H
#define KAL_VMM_VMSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "machine.h"

struct kal_err;

#define VMSTATE_NAME_MAX    63
#define VMSTATE_CONSOLE_CAP (1024 * 1024)

struct vm_config {
	char *name;
	char *image;	    /* reference as the user gave it */
	char *image_digest; /* manifest digest, "sha256:..." */
	char *engine;	    /* "qemu", "kvm" */
	unsigned int memory_mib;
	unsigned int cpus;
	enum machine_net net;
	bool hugepages; /* guest RAM on 2 MiB huge pages */
	char **publish; /* published ports, canonical (machine_forward_parse) */
	size_t n_publish;
	long long created;   /* unix seconds */
	bool auto_remove;    /* the supervisor removes the VM when it ends (--rm) */
	uint64_t upper_size; /* bytes */
	char **layer_paths;  /* bottom first */
	uint64_t *layer_sizes;
	size_t n_layers;
};

enum vmstate_state {
	VMSTATE_MISSING,
	VMSTATE_CREATED, /* directory exists, no supervisor */
	VMSTATE_RUNNING, /* a supervisor holds the lock */
};

int vmstate_name_check(const char *name, struct kal_err **err);
/* A free "<adjective>-<noun>" name (with a number if needed); caller frees. */
char *vmstate_name_generate(const char *home);

char *vmstate_dir(const char *home, const char *name);
char *vmstate_file(const char *home, const char *name, const char *file);
/* Runtime socket path; checks it fits sun_path. */
char *vmstate_sock_path(const char *home, const char *name, struct kal_err **err);

/*
 * Reserve the name (mkdir), write config.json, create and format the upper
 * disk.  "a VM named `x` already exists" when taken.  On failure nothing is
 * left behind.
 */
int vmstate_create(const char *home, const struct vm_config *c, struct kal_err **err);
int vmstate_load(const char *home, const char *name, struct vm_config **out, struct kal_err **err);
void vm_config_free(struct vm_config *c);

/* State of the VM; *pid (may be NULL) gets the supervisor pid when running. */
enum vmstate_state vmstate_get(const char *home, const char *name, pid_t *pid);
/* Take the VM's liveness lock without blocking: fd, or -1 (EWOULDBLOCK = running). */
int vmstate_lock(const char *home, const char *name, struct kal_err **err);
/* Names of all VMs, sorted; caller frees each and the array. */
int vmstate_list(const char *home, char ***names, size_t *n, struct kal_err **err);
/* Remove the directory and socket of a VM that is not running. */
int vmstate_remove(const char *home, const char *name, struct kal_err **err);
/* Remove the directory, the caller holding the lock (rename away, then delete). */
int vmstate_discard(const char *home, const char *name, struct kal_err **err);

#endif
