/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The content-addressed image store under $KAL_HOME.  Everything in it is
 * published with the crash-safe sequence of lib/fsutil.h (temp in the same
 * directory -> write -> fsync -> verify size and digest -> rename -> fsync
 * dir), so a kill -9 at any moment leaves the old state or the new one:
 *
 *   $KAL_HOME/
 *   +-- blobs/sha256/<hex>              0444  verified blob named by its sha256:
 *   |                                         manifests, indexes, configs
 *   +-- layers/sha256/<diffid>.erofs    0444  EROFS image of one layer, size a
 *   |                                         multiple of 2 MiB
 *   +-- layers/sha256/<diffid>.json     0444  sidecar, written AFTER the .erofs:
 *   |                                         {"erofs_sha256":"<hex>","size":N,"converter":1}
 *   |                                         a layer is present only when both exist,
 *   |                                         the size agrees and the converter matches
 *   +-- images/<name with / as %2F>     0444  one record per name (JSON, below),
 *   |                                         written LAST by pull/load
 *   +-- tmp/                                  ingest of compressed layer blobs (O_TMPFILE,
 *   |                                         unnamed: gone with the process)
 *   +-- locks/store                           flock: shared while a pull/load runs,
 *   |                                         exclusive for prune / cache verify
 *   +-- locks/layer-<diffid>                  flock: one converter per layer
 *   Temp files of the atomic writes are "<dir>/.tmp-<final name>-XXXXXX"; they
 *   are never read and are removed by the next pull/load that finds the store
 *   idle, and by prune and cache verify.
 *
 * Image record (images/<name>), written by one rename so readers see all or nothing:
 *   {"name":"docker.io/library/busybox:latest", "digest":"sha256:<manifest>",
 *    "index":"sha256:<index>" (when pulled through an index), "mediaType":"...",
 *    "config":"sha256:<config>", "platform":"linux/amd64", "created":<unix time>,
 *    "layers":[{"digest":"sha256:..","diffId":"sha256:..","mediaType":"..",
 *               "size":<blob bytes>,"erofsSize":<image bytes>}, ...]}
 * The record repeats what the manifest and config say so that `kal images`
 * reads one small file per image and nothing else.  Compressed layer blobs are
 * not kept: they are downloaded into tmp/, converted, and dropped.
 */
#ifndef KAL_IMAGECACHE_STORE_H
#define KAL_IMAGECACHE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "manifest.h"

struct kal_err;

/* Bump when the EROFS writer's output for the same tar changes: older layers get re-converted. */
#define IC_STORE_CONVERTER 1

struct ic_store {
	char *home;
	char *blobs;  /* <home>/blobs/sha256 */
	char *layers; /* <home>/layers/sha256 */
	char *images; /* <home>/images */
	char *tmp;    /* <home>/tmp */
	char *locks;  /* <home>/locks */
	int store_lock_fd;
};

struct ic_store_layer {
	struct ic_digest digest;  /* blob digest from the manifest */
	struct ic_digest diff_id; /* key of the EROFS image */
	char *media_type;
	uint64_t size;	     /* compressed blob bytes */
	uint64_t erofs_size; /* EROFS image bytes */
};

struct ic_store_image {
	char *name; /* canonical reference */
	struct ic_digest digest;
	bool has_index;
	struct ic_digest index;
	char *media_type;
	struct ic_digest config;
	char *platform; /* "linux/amd64", may be NULL */
	int64_t created;
	struct ic_store_layer *layers;
	size_t n_layers;
};

struct ic_store_layer_info {
	struct ic_digest erofs_sha256;
	uint64_t size;
	unsigned int converter;
};

/* Open (creating the directories) the store under home. */
int ic_store_open(const char *home, struct ic_store **out, struct kal_err **err);
void ic_store_close(struct ic_store *s);

/*
 * Store-wide lock.  ic_store_lock_shared is taken by pull/load for their whole
 * run; when no other kal holds the store at that moment it first removes stale
 * temp files (a crashed run's leftovers).  ic_store_lock_exclusive (prune,
 * verify) waits for running pulls to finish.
 */
int ic_store_lock_shared(struct ic_store *s, struct kal_err **err);
int ic_store_lock_exclusive(struct ic_store *s, struct kal_err **err);
void ic_store_unlock(struct ic_store *s);

/* ---- blobs ---- */
char *ic_store_blob_path(const struct ic_store *s, const struct ic_digest *d);
bool ic_store_blob_has(const struct ic_store *s, const struct ic_digest *d);
/* Publish buf as blob d after checking that it hashes to d. */
int ic_store_blob_put(struct ic_store *s, const struct ic_digest *d, const void *buf, size_t len,
		      struct kal_err **err);
/* Read a blob of at most max bytes and check its digest ("corrupt" error otherwise). */
int ic_store_blob_read(const struct ic_store *s, const struct ic_digest *d, size_t max, char **buf,
		       size_t *len, struct kal_err **err);

/*
 * Streamed blob ingest: begin gives an fd to write to; commit checks size and
 * digest of what was written, then publishes.  abort drops it.
 */
struct ic_store_ingest {
	int fd;
	void *priv;
	struct ic_digest digest;
	uint64_t size;
};
int ic_store_blob_begin(struct ic_store *s, const struct ic_digest *d, uint64_t size,
			struct ic_store_ingest *in, struct kal_err **err);
int ic_store_blob_commit(struct ic_store *s, struct ic_store_ingest *in, struct kal_err **err);
void ic_store_blob_abort(struct ic_store_ingest *in);

/* An unnamed file in tmp/ (O_TMPFILE when the filesystem has it) for layer downloads. */
int ic_store_tmpfile(const struct ic_store *s, struct kal_err **err);

/* ---- layers ---- */
char *ic_store_layer_path(const struct ic_store *s, const struct ic_digest *diff_id);
/* Present = .erofs and .json both exist and agree (size, converter version). */
bool ic_store_layer_has(const struct ic_store *s, const struct ic_digest *diff_id,
			struct ic_store_layer_info *info);
/* Exclusive per-layer lock; returns the fd to close. */
int ic_store_layer_lock(struct ic_store *s, const struct ic_digest *diff_id, struct kal_err **err);
/*
 * Convert the layer read from in_fd (compression comp) and publish it under
 * want_diff_id: the uncompressed stream must hash to want_diff_id ("diff_id
 * mismatch (want ..., got ...)"), the EROFS image is re-hashed before the
 * rename, the sidecar is written after.  Caller holds the layer lock.
 */
int ic_store_layer_ingest(struct ic_store *s, int in_fd, enum ic_compression comp,
			  const struct ic_digest *want_diff_id, struct ic_store_layer_info *info,
			  struct kal_err **err);

/* ---- image records ---- */
int ic_store_image_put(struct ic_store *s, const struct ic_store_image *img, struct kal_err **err);
/* Returns 0 and fills *img, or -1 (err->code ENOENT when there is no record for name). */
int ic_store_image_get(const struct ic_store *s, const char *name, struct ic_store_image *img,
		       struct kal_err **err);
int ic_store_image_remove(struct ic_store *s, const char *name, struct kal_err **err);
/* All records, sorted by name. */
int ic_store_image_list(const struct ic_store *s, struct ic_store_image **out, size_t *n,
			struct kal_err **err);
void ic_store_image_clear(struct ic_store_image *img);
void ic_store_image_list_free(struct ic_store_image *imgs, size_t n);
/*
 * Resolve what a user typed: a reference in any form ic_ref_parse accepts
 * (short, familiar, canonical), "sha256:<hex>", or a unique prefix of at least
 * 4 hex digits of a manifest digest.  Error "image `x` not found" (ENOENT)
 * or "image `x` is ambiguous (...)".
 */
int ic_store_image_resolve(const struct ic_store *s, const char *ref, struct ic_store_image *img,
			   struct kal_err **err);
/* true when every layer of img is present and its manifest and config blobs exist */
bool ic_store_image_complete(const struct ic_store *s, const struct ic_store_image *img);

/* ---- maintenance ---- */
/* Called for each object verify/prune reports; path is relative to home. */
typedef void (*ic_store_report_fn)(void *arg, const char *event, const char *path,
				   const char *detail, uint64_t bytes);
/*
 * Rehash every blob against its name and every .erofs against its sidecar;
 * report "corrupt" objects (deleted when del is set, then reported "deleted"),
 * remove stale temps and half-published layers.  *n_corrupt counts corrupt
 * objects that are still there.  Caller holds the exclusive lock.
 */
int ic_store_verify(struct ic_store *s, bool del, ic_store_report_fn fn, void *arg,
		    size_t *n_corrupt, struct kal_err **err);
/* Remove blobs and layers no image record references, and stale temps. Exclusive lock. */
int ic_store_prune(struct ic_store *s, ic_store_report_fn fn, void *arg, uint64_t *freed,
		   struct kal_err **err);
/* Remove ".tmp-*" leftovers in every store directory. */
int ic_store_clean_temps(struct ic_store *s, ic_store_report_fn fn, void *arg, uint64_t *freed,
			 struct kal_err **err);

#endif
