/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Pull orchestration: reference -> manifest (through an index when there is
 * one) -> config -> layers downloaded and converted in parallel (at most
 * IC_PULL_PARALLEL at once) -> image record, in that order, every object
 * verified before it is published (store.h).  A re-pull of an unchanged
 * cached image costs one manifest request.  Nothing here prints: progress
 * goes to the caller's callbacks, which may be called from worker threads.
 */
#ifndef KAL_IMAGECACHE_PULL_H
#define KAL_IMAGECACHE_PULL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "store.h"

struct kal_err;

#define IC_PULL_PARALLEL 4

enum ic_pull_state {
	IC_PULL_WAITING,
	IC_PULL_DOWNLOADING,
	IC_PULL_CONVERTING,
	IC_PULL_DONE,
	IC_PULL_CACHED, /* already in the store: neither downloaded nor converted */
	IC_PULL_FAILED,
};

struct ic_pull_progress {
	/* once, before any layer event: the layers of the image (blob digests and sizes) */
	void (*start)(void *arg, size_t n, const struct ic_store_layer *layers);
	/* layer i (0-based) changed state or made progress; from any thread */
	void (*layer)(void *arg, size_t i, enum ic_pull_state st, uint64_t done, uint64_t total);
};

struct ic_pull_opts {
	const char *platform; /* "os/arch[/variant]", NULL = linux/amd64 */
	bool insecure;	      /* plain http to a non-loopback registry */
	bool offline;	      /* no network: use the cached mapping or fail */
	const struct ic_pull_progress *progress;
	void *progress_arg;
};

struct ic_pull_result {
	char *name; /* canonical reference */
	struct ic_digest digest;
	bool up_to_date; /* nothing was downloaded or converted */
	size_t n_layers;
	size_t layers_converted;
	uint64_t bytes_downloaded; /* layer blob bytes */
	uint64_t erofs_bytes;	   /* sum of the image's EROFS sizes */
};

int ic_pull(const char *home, const char *ref, const struct ic_pull_opts *opts,
	    struct ic_pull_result *res, struct kal_err **err);
void ic_pull_result_clear(struct ic_pull_result *res);

/* "os/arch[/variant]" of a config (caller frees), NULL when the config says nothing */
char *ic_platform_string(const struct ic_platform *p);

#endif
