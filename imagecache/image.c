// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * ic_image_open: the VM side's view of a cached image.  Names resolve exactly
 * as in `kal images`/`rmi`/`inspect` (ic_store_image_resolve); every layer
 * must be present (image and sidecar agree), and with verify set each EROFS
 * file is re-hashed against its sidecar before a VM may map it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "../lib/xalloc.h"
#include "image.h"
#include "store.h"

static int open_in_store(struct ic_store *s, const char *ref, bool verify, struct ic_image *img,
			 struct kal_err **err)
{
	struct ic_store_image rec;
	_cleanup_free_ char *cfg = NULL;
	size_t len;
	char w[IC_DIGEST_STR_LEN + 1], g[IC_DIGEST_STR_LEN + 1];
	struct kal_err *e = NULL;
	int rc = -1;

	if (ic_store_image_resolve(s, ref, &rec, &e) < 0) {
		if (e->code == ENOENT) {
			kal_err_free(e);
			return kal_err_set(err, ENOENT,
					   "image `%s` not found in the cache (pull it with `kal "
					   "pull %s`)",
					   ref, ref);
		}
		*err = e;
		return -1;
	}
	img->name = xstrdup(rec.name);
	img->manifest_digest = rec.digest;
	if (ic_store_blob_read(s, &rec.config, IC_MAX_CONFIG_SIZE, &cfg, &len, err) < 0 ||
	    ic_config_parse(cfg, len, &img->config, err) < 0) {
		kal_err_wrap(err, "image `%s`: config", ref);
		goto out;
	}
	img->layer_paths = xcalloc(rec.n_layers + 1, sizeof(*img->layer_paths));
	img->layer_sizes = xcalloc(rec.n_layers + 1, sizeof(*img->layer_sizes));
	for (size_t i = 0; i < rec.n_layers; i++) {
		const struct ic_digest *d = &rec.layers[i].diff_id;
		struct ic_store_layer_info info;

		if (!ic_store_layer_has(s, d, &info)) {
			kal_err_set(err, ENOENT,
				    "image `%s`: layer %zu (%s) is missing from the cache (pull it "
				    "again)",
				    ref, i + 1, ic_digest_str(d, w));
			goto out;
		}
		img->layer_paths[i] = ic_store_layer_path(s, d);
		img->layer_sizes[i] = info.size;
		img->n_layers = i + 1;
		if (verify) {
			_cleanup_close_ int fd = open(img->layer_paths[i], O_RDONLY | O_CLOEXEC);
			struct ic_digest got;
			unsigned long long size;

			if (fd < 0) {
				kal_err_sys(err, errno, "open `%s`", img->layer_paths[i]);
				goto out;
			}
			if (ic_digest_fd(fd, &got, &size, err) < 0)
				goto out;
			if (!ic_digest_equal(&got, &info.erofs_sha256) || size != info.size) {
				kal_err_set(err, EIO,
					    "image `%s`: layer %zu: corrupt `%s` (want %s, got %s; "
					    "run `kal cache verify --delete` and pull again)",
					    ref, i + 1, img->layer_paths[i],
					    ic_digest_str(&info.erofs_sha256, w),
					    ic_digest_str(&got, g));
				goto out;
			}
		}
	}
	rc = 0;
out:
	ic_store_image_clear(&rec);
	return rc;
}

int ic_image_open(const char *home, const char *ref, bool verify, struct ic_image **out,
		  struct kal_err **err)
{
	struct ic_store *s = NULL;
	struct ic_image *img;
	int rc;

	if (ic_store_open(home, &s, err) < 0)
		return -1;
	img = xzalloc(sizeof(*img));
	rc = open_in_store(s, ref, verify, img, err);
	ic_store_close(s);
	if (rc < 0) {
		ic_image_free(img);
		return -1;
	}
	*out = img;
	return 0;
}

void ic_image_free(struct ic_image *img)
{
	if (!img)
		return;
	free(img->name);
	ic_config_free(&img->config);
	for (size_t i = 0; i < img->n_layers; i++)
		free(img->layer_paths[i]);
	free(img->layer_paths);
	free(img->layer_sizes);
	free(img);
}
