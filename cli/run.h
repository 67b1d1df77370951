/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Creating and booting a VM from an image, shared by `kal run` and
 * `kal shell IMAGE`: resolve (pulling when missing), reserve the name, write
 * the VM directory, start the supervisor and wait for the agent.
 */
#ifndef KAL_CLI_RUN_H
#define KAL_CLI_RUN_H

#include <stdbool.h>

#include "../vmm/machine.h"

struct kal_ctx;
struct kal_err;
struct ic_image;

struct kal_run_vm {
	const char *name;   /* NULL: generated */
	const char *image;  /* reference */
	const char *engine; /* NULL: $KAL_ENGINE or auto */
	unsigned int memory_mib, cpus;
	enum machine_net net;
	bool auto_remove;
	bool hugepages;
	char *publish[VMM_MAX_FORWARDS]; /* canonical specs (machine_forward_parse), owned */
	size_t n_publish;
};

/*
 * Boot a new VM.  On success *name_out is the VM's name (caller frees) and
 * *img_out the image (for its config; caller frees with ic_image_free).
 */
int kal_run_boot(struct kal_ctx *ctx, const struct kal_run_vm *o, char **name_out,
		 struct ic_image **img_out, struct kal_err **err);

/* "512M", "2G", "1024" (MiB) -> MiB; -1 when malformed or out of range. */
long kal_parse_mib(const char *s);

#endif
