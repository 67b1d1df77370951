// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kal load (see load.h).  An OCI layout is random access, so it is imported
 * like a pull from a local registry.  A docker-save tarball is a stream: it is
 * read three times with libarchive (manifest.json, then the configs, then the
 * layers, each layer copied into an unnamed temp file and converted), because
 * docker writes manifest.json last and the configs after the layers.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <json-c/json.h>

#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "../lib/fsutil.h"
#include "../lib/xalloc.h"
#include "layer.h"
#include "load.h"
#include "manifest.h"
#include "pull.h"
#include "ref.h"
#include "store.h"

#define DOCKER_MANIFEST_MAX (4u << 20)
#define MAX_IMAGES	    1024

void ic_load_results_free(struct ic_load_result *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(r[i].name);
	free(r);
}

struct results {
	struct ic_load_result *v;
	size_t n, cap;
};

static void results_add(struct results *rs, const struct ic_store_image *img, size_t converted)
{
	struct ic_load_result *r;

	if (rs->n == rs->cap) {
		rs->cap = rs->cap ? rs->cap * 2 : 4;
		rs->v = xreallocarray(rs->v, rs->cap, sizeof(*rs->v));
	}
	r = &rs->v[rs->n++];
	memset(r, 0, sizeof(*r));
	r->name = xstrdup(img->name);
	r->digest = img->digest;
	r->n_layers = img->n_layers;
	r->layers_converted = converted;
	for (size_t i = 0; i < img->n_layers; i++)
		r->erofs_bytes += img->layers[i].erofs_size;
}

/* Canonical name from user or input text; a bare tag gets the fallback repository. */
static int canonical_name(const char *name, const char *fallback_repo, char **out,
			  struct kal_err **err)
{
	struct ic_ref r = { 0 };
	_cleanup_free_ char *full = NULL;

	if (!strchr(name, '/') && !strchr(name, ':') && !strchr(name, '@') && fallback_repo)
		full = xasprintf("%s:%s", fallback_repo, name);
	else
		full = xstrdup(name);
	if (ic_ref_parse(full, &r, err) < 0)
		return kal_err_wrap(err, "image name `%s`", name);
	*out = ic_ref_string(&r);
	ic_ref_free(&r);
	return 0;
}

/* Publish the layer read from fd under diff_id unless it is there (lock, re-check, ingest). */
static int ensure_layer(struct ic_store *s, int fd, enum ic_compression comp,
			const struct ic_digest *diff_id, uint64_t *erofs_size, bool *converted,
			struct kal_err **err)
{
	struct ic_store_layer_info info;
	_cleanup_close_ int lock = -1;

	*converted = false;
	if (ic_store_layer_has(s, diff_id, &info)) {
		*erofs_size = info.size;
		return 0;
	}
	lock = ic_store_layer_lock(s, diff_id, err);
	if (lock < 0)
		return -1;
	if (!ic_store_layer_has(s, diff_id, &info)) {
		if (lseek(fd, 0, SEEK_SET) < 0)
			return kal_err_sys(err, errno, "seek");
		if (ic_store_layer_ingest(s, fd, comp, diff_id, &info, err) < 0)
			return -1;
		*converted = true;
	}
	*erofs_size = info.size;
	return 0;
}

static int publish_names(struct ic_store *s, struct ic_store_image *img, char **names,
			 size_t n_names, size_t converted, struct results *rs, struct kal_err **err)
{
	for (size_t k = 0; k < n_names; k++) {
		free(img->name);
		img->name = xstrdup(names[k]);
		if (ic_store_image_put(s, img, err) < 0)
			return -1;
		results_add(rs, img, k == 0 ? converted : 0);
	}
	return 0;
}

/* ---------------- OCI image layout ---------------- */

struct layout {
	char *dir;
	char *fallback_repo;
};

/*
 * Open a file of a layout that may come from anywhere: a FIFO would block the
 * open and a device (a blob symlinked to /dev/zero) would never end, so only a
 * regular file is read, and never opened blocking.
 */
static int layout_open(const char *path, struct stat *st, struct kal_err **err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return kal_err_sys(err, errno, "open `%s`", path);
	if (fstat(fd, st) < 0)
		return kal_err_sys(err, errno, "stat `%s`", path);
	if (!S_ISREG(st->st_mode))
		return kal_err_set(err, EINVAL, "`%s` is not a regular file", path);
	return steal_fd(&fd);
}

/* layout_open + kal_read_fd: a small file of the layout, at most max bytes */
static int layout_read_file(const char *path, size_t max, char **buf, size_t *len,
			    struct kal_err **err)
{
	struct stat st;
	_cleanup_close_ int fd = layout_open(path, &st, err);

	if (fd < 0)
		return -1;
	if (kal_read_fd(fd, max, buf, len, err) < 0)
		return kal_err_wrap(err, "`%s`", path);
	return 0;
}

/* Read a blob of the layout, checking size and digest against the descriptor. */
static int layout_read_blob(const struct layout *lo, const struct ic_digest *d, uint64_t size,
			    size_t max, char **buf, size_t *len, struct kal_err **err)
{
	_cleanup_free_ char *p = xasprintf("%s/blobs/sha256/%s", lo->dir, d->hex);
	struct ic_digest got;
	char w[IC_DIGEST_STR_LEN + 1], g[IC_DIGEST_STR_LEN + 1];

	if (size > max)
		return kal_err_set(err, EFBIG, "blob %s: %llu bytes is over the %zu byte limit",
				   ic_digest_str(d, w), (unsigned long long)size, max);
	if (layout_read_file(p, (size_t)size, buf, len, err) < 0)
		return kal_err_wrap(err, "blob %s", ic_digest_str(d, w));
	if (*len != size) {
		free(*buf);
		return kal_err_set(err, EIO, "blob %s: size mismatch (want %llu, got %zu)",
				   ic_digest_str(d, w), (unsigned long long)size, *len);
	}
	ic_digest_buf(*buf, *len, &got);
	if (!ic_digest_equal(&got, d)) {
		free(*buf);
		return kal_err_set(err, EIO, "blob %s: digest mismatch (want %s, got %s)",
				   ic_digest_str(d, w), w, ic_digest_str(&got, g));
	}
	return 0;
}

static int layout_open_layer(const struct layout *lo, const struct ic_descriptor *desc,
			     struct kal_err **err)
{
	_cleanup_free_ char *p = xasprintf("%s/blobs/sha256/%s", lo->dir, desc->digest.hex);
	struct stat st;
	_cleanup_close_ int fd = layout_open(p, &st, err);
	struct ic_digest got;
	unsigned long long size;
	char w[IC_DIGEST_STR_LEN + 1], g[IC_DIGEST_STR_LEN + 1];

	if (fd < 0)
		return -1;
	/* a file that has grown would otherwise be hashed to its end first */
	if ((uint64_t)st.st_size != desc->size)
		return kal_err_set(err, EIO, "size mismatch (want %llu, got %llu)",
				   (unsigned long long)desc->size, (unsigned long long)st.st_size);
	if (ic_digest_fd(fd, &got, &size, err) < 0)
		return kal_err_wrap(err, "`%s`", p);
	if (size != desc->size)
		return kal_err_set(err, EIO, "size mismatch (want %llu, got %llu)",
				   (unsigned long long)desc->size, size);
	if (!ic_digest_equal(&got, &desc->digest))
		return kal_err_set(err, EIO, "digest mismatch (want %s, got %s)",
				   ic_digest_str(&desc->digest, w), ic_digest_str(&got, g));
	if (lseek(fd, 0, SEEK_SET) < 0)
		return kal_err_sys(err, errno, "seek `%s`", p);
	return steal_fd(&fd);
}

static int layout_import_manifest(struct ic_store *s, const struct layout *lo,
				  const struct ic_descriptor *desc, const struct ic_digest *index,
				  char **names, size_t n_names, struct results *rs,
				  struct kal_err **err)
{
	_cleanup_free_ char *mbuf = NULL, *cbuf = NULL;
	size_t mlen, clen, converted = 0;
	struct ic_manifest m = { 0 };
	struct ic_config cfg = { 0 };
	struct ic_store_image img = { 0 };
	int rc = -1;

	if (layout_read_blob(lo, &desc->digest, desc->size, IC_MAX_MANIFEST_SIZE, &mbuf, &mlen,
			     err) < 0)
		return kal_err_wrap(err, "manifest");
	if (ic_manifest_parse(mbuf, mlen, desc->media_type, &m, err) < 0)
		return -1;
	if (layout_read_blob(lo, &m.config.digest, m.config.size, IC_MAX_CONFIG_SIZE, &cbuf, &clen,
			     err) < 0) {
		kal_err_wrap(err, "config");
		goto out;
	}
	if (ic_config_parse(cbuf, clen, &cfg, err) < 0)
		goto out;
	if (cfg.n_diff_ids != m.n_layers) {
		kal_err_set(err, EINVAL,
			    "config lists %zu diff_id%s but the manifest has %zu layer%s",
			    cfg.n_diff_ids, cfg.n_diff_ids == 1 ? "" : "s", m.n_layers,
			    m.n_layers == 1 ? "" : "s");
		goto out;
	}
	img.digest = desc->digest;
	if (index) {
		img.has_index = true;
		img.index = *index;
	}
	img.media_type = xstrdup(m.media_type ? m.media_type : desc->media_type);
	img.config = m.config.digest;
	img.platform = ic_platform_string(&cfg.platform);
	img.created = (int64_t)time(NULL);
	img.layers = xcalloc(m.n_layers + 1, sizeof(*img.layers));
	for (size_t i = 0; i < m.n_layers; i++) {
		struct ic_store_layer *l = &img.layers[i];
		enum ic_compression comp;
		bool conv = false;

		img.n_layers = i + 1;
		l->digest = m.layers[i].digest;
		l->diff_id = cfg.diff_ids[i];
		l->media_type = xstrdup(m.layers[i].media_type);
		l->size = m.layers[i].size;
		if (ic_layer_compression(l->media_type, &comp, err) < 0) {
			kal_err_wrap(err, "layer %zu", i + 1);
			goto out;
		}
		if (!ic_store_layer_has(s, &l->diff_id, NULL)) {
			_cleanup_close_ int fd = layout_open_layer(lo, &m.layers[i], err);

			if (fd < 0 || ensure_layer(s, fd, comp, &l->diff_id, &l->erofs_size, &conv,
						   err) < 0) {
				kal_err_wrap(err, "layer %zu", i + 1);
				goto out;
			}
		} else {
			struct ic_store_layer_info info;

			if (!ic_store_layer_has(s, &l->diff_id, &info)) {
				kal_err_set(err, ENOENT, "layer %zu vanished", i + 1);
				goto out;
			}
			l->erofs_size = info.size;
		}
		converted += conv;
	}
	if (ic_store_blob_put(s, &m.config.digest, cbuf, clen, err) < 0 ||
	    ic_store_blob_put(s, &desc->digest, mbuf, mlen, err) < 0)
		goto out;
	rc = publish_names(s, &img, names, n_names, converted, rs, err);
out:
	ic_manifest_free(&m);
	ic_config_free(&cfg);
	ic_store_image_clear(&img);
	return rc;
}

static const char *entry_annotation(struct json_object *entry, const char *key)
{
	struct json_object *ann, *v;

	if (!json_object_object_get_ex(entry, "annotations", &ann) ||
	    !json_object_is_type(ann, json_type_object) ||
	    !json_object_object_get_ex(ann, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static int load_layout(struct ic_store *s, const char *dir, const struct ic_load_opts *opts,
		       struct results *rs, struct kal_err **err)
{
	struct layout lo = { 0 };
	_cleanup_free_ char *ol = NULL, *ij = NULL, *olp = xasprintf("%s/oci-layout", dir),
			    *ijp = xasprintf("%s/index.json", dir), *dcopy = xstrdup(dir);
	struct json_object *olj = NULL, *ijj = NULL, *mans, *v;
	struct ic_index idx = { 0 };
	size_t ijlen, n_named = 0;
	char **names = NULL;
	int rc = -1;

	lo.dir = (char *)dir;
	lo.fallback_repo = basename(dcopy);
	if (access(olp, F_OK) < 0 && errno == ENOENT)
		return kal_err_set(err, EINVAL,
				   "`%s` is not an OCI image layout (no `oci-layout` file)", dir);
	if (layout_read_file(olp, 4096, &ol, NULL, err) < 0)
		return -1;
	olj = json_tokener_parse(ol);
	if (!olj || !json_object_object_get_ex(olj, "imageLayoutVersion", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    strncmp(json_object_get_string(v), "1.", 2)) {
		kal_err_set(err, EINVAL, "`%s`: not an OCI layout version 1.x", olp);
		goto out;
	}
	if (layout_read_file(ijp, IC_MAX_MANIFEST_SIZE, &ij, &ijlen, err) < 0)
		goto out;
	if (ic_index_parse(ij, ijlen, IC_MT_OCI_INDEX, &idx, err) < 0) {
		kal_err_wrap(err, "`%s`", ijp);
		goto out;
	}
	ijj = json_tokener_parse(ij);
	if (!ijj || !json_object_object_get_ex(ijj, "manifests", &mans) ||
	    !json_object_is_type(mans, json_type_array) ||
	    json_object_array_length(mans) != idx.n) {
		kal_err_set(err, EINVAL, "`%s`: malformed manifests list", ijp);
		goto out;
	}
	names = xcalloc(idx.n + 1, sizeof(*names));
	for (size_t i = 0; i < idx.n; i++) {
		struct json_object *e = json_object_array_get_idx(mans, i);
		const char *nm = entry_annotation(e, "io.containerd.image.name");

		if (!nm)
			nm = entry_annotation(e, "org.opencontainers.image.ref.name");
		if (nm) {
			if (canonical_name(nm, lo.fallback_repo, &names[i], err) < 0)
				goto out;
			n_named++;
		}
	}
	if (opts->name) {
		if (idx.n != 1) {
			kal_err_set(err, EINVAL, "`%s` holds %zu images: --name needs exactly one",
				    dir, idx.n);
			goto out;
		}
		free(names[0]);
		if (canonical_name(opts->name, NULL, &names[0], err) < 0)
			goto out;
	} else if (n_named == 0) {
		kal_err_set(err, EINVAL, "no image in `%s` has a name (use --name NAME)", dir);
		goto out;
	}
	for (size_t i = 0; i < idx.n; i++) {
		const struct ic_descriptor *desc = &idx.manifests[i];
		enum ic_doc_kind kind;

		if (!names[i])
			continue; /* untagged entries are only loaded by --name */
		if (ic_doc_kind_of(desc->media_type, &kind, err) < 0)
			goto wrap;
		if (kind == IC_DOC_INDEX) {
			_cleanup_free_ char *buf = NULL;
			struct ic_index sub = { 0 };
			const struct ic_descriptor *pick;
			size_t len;
			int r;

			if (layout_read_blob(&lo, &desc->digest, desc->size, IC_MAX_MANIFEST_SIZE,
					     &buf, &len, err) < 0 ||
			    ic_index_parse(buf, len, desc->media_type, &sub, err) < 0)
				goto wrap;
			r = ic_index_select(&sub, opts->platform, &pick, err);
			if (r == 0)
				r = layout_import_manifest(s, &lo, pick, &desc->digest, &names[i],
							   1, rs, err);
			if (r == 0)
				r = ic_store_blob_put(s, &desc->digest, buf, len, err);
			ic_index_free(&sub);
			if (r < 0)
				goto wrap;
		} else if (layout_import_manifest(s, &lo, desc, NULL, &names[i], 1, rs, err) < 0) {
			goto wrap;
		}
		continue;
	wrap:
		kal_err_wrap(err, "`%s`", names[i]);
		goto out;
	}
	rc = 0;
out:
	for (size_t i = 0; names && i < idx.n; i++)
		free(names[i]);
	free(names);
	ic_index_free(&idx);
	if (olj)
		json_object_put(olj);
	if (ijj)
		json_object_put(ijj);
	return rc;
}

/* ---------------- docker save tarball ---------------- */

/* One Layers entry of manifest.json; a sorted array of them is the lookup table of pass 3. */
struct ds_layer_ref {
	const char *path;
	size_t image, index;
};

struct ds_image {
	char *config_path;
	char **names;
	size_t n_names;
	char **layer_paths;
	size_t n_layers;
	char *config;
	size_t config_len;
	struct ic_digest config_digest;
	struct ic_config cfg;
	struct ic_store_image img;
	size_t converted;
	bool *done;
};

struct ds {
	const char *path;
	struct ds_image *imgs;
	size_t n;
};

static struct archive *ds_open(const char *path, struct kal_err **err)
{
	struct archive *a = archive_read_new();

	archive_read_support_filter_all(a);
	archive_read_support_format_tar(a);
	if (archive_read_open_filename(a, path, 64 * 1024) != ARCHIVE_OK) {
		kal_err_set(err, EINVAL, "neither an OCI layout nor a docker-save tarball (%s)",
			    archive_error_string(a));
		archive_read_free(a);
		return NULL;
	}
	return a;
}

/* Normalise "./x" to "x" so entry names compare with manifest.json's paths. */
static const char *entry_name(struct archive_entry *e)
{
	const char *n = archive_entry_pathname(e);

	while (n && n[0] == '.' && n[1] == '/')
		n += 2;
	return n ? n : "";
}

static int read_entry(struct archive *a, const char *what, size_t max, char **out, size_t *len,
		      struct kal_err **err)
{
	size_t cap = 4096, used = 0;
	char *buf = xmalloc(cap + 1);

	for (;;) {
		la_ssize_t n;

		if (used == cap) {
			if (cap > max) {
				free(buf);
				return kal_err_set(err, EFBIG, "`%s`: larger than %zu bytes", what,
						   max);
			}
			cap *= 2;
			buf = xrealloc(buf, cap + 1);
		}
		n = archive_read_data(a, buf + used, cap - used);
		if (n < 0) {
			kal_err_set(err, EIO, "`%s`: %s", what, archive_error_string(a));
			free(buf);
			return -1;
		}
		if (n == 0)
			break;
		used += (size_t)n;
		if (used > max) {
			free(buf);
			return kal_err_set(err, EFBIG, "`%s`: larger than %zu bytes", what, max);
		}
	}
	buf[used] = '\0';
	*out = buf;
	*len = used;
	return 0;
}

static char **json_strings(struct json_object *arr, size_t *n)
{
	size_t len = json_object_array_length(arr);
	char **v = xcalloc(len + 1, sizeof(*v));

	*n = 0;
	for (size_t i = 0; i < len; i++) {
		struct json_object *s = json_object_array_get_idx(arr, i);

		if (!json_object_is_type(s, json_type_string)) {
			for (size_t k = 0; k < *n; k++)
				free(v[k]);
			free(v);
			return NULL;
		}
		v[(*n)++] = xstrdup(json_object_get_string(s));
	}
	return v;
}

/*
 * A manifest.json path names a member of the tarball, never a host file; docker
 * refuses names that would leave its extraction directory, and so does kal, so
 * that a tarball means the same to both (and "../x" cannot alias "x").
 */
static bool ds_path_ok(const char *p)
{
	if (!*p || *p == '/')
		return false;
	for (const char *c = p; *c;) {
		size_t n = strcspn(c, "/");

		if (n == 2 && c[0] == '.' && c[1] == '.')
			return false;
		c += n;
		c += *c == '/';
	}
	return true;
}

static int ds_check_paths(const struct ds_image *im, size_t i, struct kal_err **err)
{
	if (!ds_path_ok(im->config_path))
		return kal_err_set(err, EINVAL,
				   "manifest.json: image %zu: Config `%.200s` is not a path inside "
				   "the tarball",
				   i + 1, im->config_path);
	for (size_t k = 0; k < im->n_layers; k++)
		if (!ds_path_ok(im->layer_paths[k]))
			return kal_err_set(err, EINVAL,
					   "manifest.json: image %zu: layer %zu `%.200s` is not a "
					   "path inside the tarball",
					   i + 1, k + 1, im->layer_paths[k]);
	return 0;
}

static int ds_parse_manifest(struct ds *ds, const char *buf, struct kal_err **err)
{
	struct json_object *root = json_tokener_parse(buf);
	size_t n;
	int rc = -1;

	if (!root || !json_object_is_type(root, json_type_array)) {
		kal_err_set(err, EINVAL, "manifest.json: not a JSON array");
		goto out;
	}
	n = json_object_array_length(root);
	if (n == 0 || n > MAX_IMAGES) {
		kal_err_set(err, EINVAL, "manifest.json: %zu images", n);
		goto out;
	}
	ds->imgs = xcalloc(n, sizeof(*ds->imgs));
	for (size_t i = 0; i < n; i++) {
		struct json_object *o = json_object_array_get_idx(root, i), *v;
		struct ds_image *im = &ds->imgs[i];

		ds->n = i + 1;
		if (!json_object_is_type(o, json_type_object) ||
		    !json_object_object_get_ex(o, "Config", &v) ||
		    !json_object_is_type(v, json_type_string)) {
			kal_err_set(err, EINVAL, "manifest.json: image %zu has no Config", i + 1);
			goto out;
		}
		im->config_path = xstrdup(json_object_get_string(v));
		if (!json_object_object_get_ex(o, "Layers", &v) ||
		    !json_object_is_type(v, json_type_array) ||
		    !(im->layer_paths = json_strings(v, &im->n_layers)) ||
		    im->n_layers > IC_MAX_LAYERS) {
			kal_err_set(err, EINVAL, "manifest.json: image %zu: bad Layers", i + 1);
			goto out;
		}
		if (json_object_object_get_ex(o, "RepoTags", &v) &&
		    json_object_is_type(v, json_type_array) &&
		    !(im->names = json_strings(v, &im->n_names))) {
			kal_err_set(err, EINVAL, "manifest.json: image %zu: bad RepoTags", i + 1);
			goto out;
		}
		im->done = xcalloc(im->n_layers + 1, sizeof(*im->done));
		if (ds_check_paths(im, i, err) < 0)
			goto out;
	}
	rc = 0;
out:
	if (root)
		json_object_put(root);
	return rc;
}

static void ds_free(struct ds *ds)
{
	for (size_t i = 0; i < ds->n; i++) {
		struct ds_image *im = &ds->imgs[i];

		free(im->config_path);
		for (size_t k = 0; k < im->n_names; k++)
			free(im->names[k]);
		free(im->names);
		for (size_t k = 0; k < im->n_layers; k++)
			free(im->layer_paths[k]);
		free(im->layer_paths);
		free(im->config);
		ic_config_free(&im->cfg);
		ic_store_image_clear(&im->img);
		free(im->done);
	}
	free(ds->imgs);
}

/* Copy the current entry into fd, hashing it. */
static int copy_entry(struct archive *a, int fd, const char *what, struct ic_digest *d,
		      uint64_t *size, struct kal_err **err)
{
	struct ic_hasher *h = ic_hasher_new();
	_cleanup_free_ char *buf = xmalloc(256 * 1024);
	uint64_t total = 0;

	for (;;) {
		la_ssize_t n = archive_read_data(a, buf, 256 * 1024);

		if (n < 0) {
			ic_hasher_free(h);
			return kal_err_set(err, EIO, "`%s`: %s", what, archive_error_string(a));
		}
		if (n == 0)
			break;
		ic_hasher_update(h, buf, (size_t)n);
		if (kal_write_all(fd, buf, (size_t)n, err) < 0) {
			ic_hasher_free(h);
			return kal_err_wrap(err, "`%s`", what);
		}
		total += (uint64_t)n;
	}
	ic_hasher_final(h, d);
	ic_hasher_free(h);
	*size = total;
	return 0;
}

static int ds_ref_cmp(const void *a, const void *b)
{
	const struct ds_layer_ref *x = a, *y = b;
	int c = strcmp(x->path, y->path);

	if (c)
		return c;
	return x->image != y->image ? (x->image < y->image ? -1 : 1)
				    : (x->index < y->index ? -1 : x->index > y->index);
}

/*
 * The entries of manifest.json's Layers lists, sorted by path: a tarball entry
 * costs a binary search, not a walk over up to MAX_IMAGES * IC_MAX_LAYERS names.
 */
static struct ds_layer_ref *ds_layer_refs(const struct ds *ds, size_t *n)
{
	struct ds_layer_ref *v;
	size_t total = 0;

	for (size_t i = 0; i < ds->n; i++)
		total += ds->imgs[i].n_layers;
	v = xcalloc(total + 1, sizeof(*v));
	*n = 0;
	for (size_t i = 0; i < ds->n; i++)
		for (size_t k = 0; k < ds->imgs[i].n_layers; k++)
			v[(*n)++] = (struct ds_layer_ref){ ds->imgs[i].layer_paths[k], i, k };
	qsort(v, *n, sizeof(*v), ds_ref_cmp);
	return v;
}

/* First ref whose path is name, or NULL. */
static const struct ds_layer_ref *ds_ref_find(const struct ds_layer_ref *v, size_t n,
					      const char *name)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(v[mid].path, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && strcmp(v[lo].path, name) == 0 ? &v[lo] : NULL;
}

static int ds_layers_pass(struct ic_store *s, struct ds *ds, struct kal_err **err)
{
	struct archive *a = ds_open(ds->path, err);
	struct archive_entry *e;
	size_t nrefs;
	_cleanup_free_ struct ds_layer_ref *refs = NULL;
	int r, rc = -1;

	if (!a)
		return -1;
	refs = ds_layer_refs(ds, &nrefs);
	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		const char *name = entry_name(e);
		const struct ds_layer_ref *first = ds_ref_find(refs, nrefs, name), *end;
		struct ic_digest dg;
		uint64_t size = 0;
		unsigned char head[8];
		ssize_t hn;
		_cleanup_close_ int fd = -1;
		bool want = false;

		if (!first || archive_entry_filetype(e) != AE_IFREG)
			continue;
		for (end = first; end < refs + nrefs && strcmp(end->path, name) == 0; end++)
			want |= !ds->imgs[end->image].done[end->index];
		if (!want)
			continue;
		fd = ic_store_tmpfile(s, err);
		if (fd < 0)
			goto out;
		if (copy_entry(a, fd, name, &dg, &size, err) < 0)
			goto out;
		if (lseek(fd, 0, SEEK_SET) < 0) {
			kal_err_sys(err, errno, "seek");
			goto out;
		}
		hn = read(fd, head, sizeof(head));
		enum ic_compression comp = ic_layer_sniff(head, hn > 0 ? (size_t)hn : 0);
		for (const struct ds_layer_ref *ref = first; ref < end; ref++) {
			struct ds_image *im = &ds->imgs[ref->image];
			size_t k = ref->index;
			struct ic_store_layer *l = &im->img.layers[k];
			bool conv;

			if (im->done[k])
				continue;
			l->digest = dg;
			l->size = size;
			l->media_type = xstrdup(comp == IC_COMP_GZIP   ? IC_MT_OCI_LAYER_GZIP
						: comp == IC_COMP_ZSTD ? IC_MT_OCI_LAYER_ZSTD
								       : IC_MT_OCI_LAYER);
			if (ensure_layer(s, fd, comp, &l->diff_id, &l->erofs_size, &conv, err) <
			    0) {
				kal_err_wrap(err, "layer %zu (`%s`)", k + 1, name);
				goto out;
			}
			im->converted += conv;
			im->done[k] = true;
		}
	}
	if (r != ARCHIVE_EOF) {
		kal_err_set(err, EIO, "`%s`: %s", ds->path, archive_error_string(a));
		goto out;
	}
	for (size_t i = 0; i < ds->n; i++)
		for (size_t k = 0; k < ds->imgs[i].n_layers; k++)
			if (!ds->imgs[i].done[k]) {
				kal_err_set(err, ENOENT, "layer `%s` is missing from the tarball",
					    ds->imgs[i].layer_paths[k]);
				goto out;
			}
	rc = 0;
out:
	archive_read_free(a);
	return rc;
}

/* An OCI manifest describing the image as the tarball holds it, so it has a stable digest. */
static char *ds_synth_manifest(const struct ds_image *im)
{
	struct json_object *o = json_object_new_object(), *c = json_object_new_object(),
			   *layers = json_object_new_array();
	char b[IC_DIGEST_STR_LEN + 1];
	char *out;

	json_object_object_add(o, "schemaVersion", json_object_new_int(2));
	json_object_object_add(o, "mediaType", json_object_new_string(IC_MT_OCI_MANIFEST));
	json_object_object_add(c, "mediaType", json_object_new_string(IC_MT_OCI_CONFIG));
	json_object_object_add(c, "digest",
			       json_object_new_string(ic_digest_str(&im->config_digest, b)));
	json_object_object_add(c, "size", json_object_new_int64((int64_t)im->config_len));
	json_object_object_add(o, "config", c);
	for (size_t k = 0; k < im->n_layers; k++) {
		const struct ic_store_layer *l = &im->img.layers[k];
		struct json_object *lo = json_object_new_object();

		json_object_object_add(lo, "mediaType", json_object_new_string(l->media_type));
		json_object_object_add(lo, "digest",
				       json_object_new_string(ic_digest_str(&l->digest, b)));
		json_object_object_add(lo, "size", json_object_new_int64((int64_t)l->size));
		json_object_array_add(layers, lo);
	}
	json_object_object_add(o, "layers", layers);
	out = xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							    JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return out;
}

static int load_docker_save(struct ic_store *s, const char *path, const struct ic_load_opts *opts,
			    struct results *rs, struct kal_err **err)
{
	struct ds ds = { .path = path };
	struct archive *a = NULL;
	struct archive_entry *e;
	_cleanup_free_ char *mj = NULL;
	size_t mjlen, named = 0;
	int r, rc = -1;

	/* pass 1: manifest.json */
	a = ds_open(path, err);
	if (!a)
		return -1;
	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		if (strcmp(entry_name(e), "manifest.json") == 0) {
			if (read_entry(a, "manifest.json", DOCKER_MANIFEST_MAX, &mj, &mjlen, err) <
			    0)
				goto out;
			break;
		}
	}
	if (r != ARCHIVE_OK && r != ARCHIVE_EOF) {
		kal_err_set(err, EIO, "`%s`: %s", path, archive_error_string(a));
		goto out;
	}
	archive_read_free(a);
	a = NULL;
	if (!mj) {
		kal_err_set(err, EINVAL,
			    "`%s`: neither an OCI layout directory nor a docker-save tarball "
			    "(no manifest.json)",
			    path);
		goto out;
	}
	if (ds_parse_manifest(&ds, mj, err) < 0)
		goto out;
	for (size_t i = 0; i < ds.n; i++)
		named += ds.imgs[i].n_names > 0;
	if (opts->name) {
		if (ds.n != 1) {
			kal_err_set(err, EINVAL, "`%s` holds %zu images: --name needs exactly one",
				    path, ds.n);
			goto out;
		}
		for (size_t k = 0; k < ds.imgs[0].n_names; k++)
			free(ds.imgs[0].names[k]);
		free(ds.imgs[0].names);
		ds.imgs[0].names = xcalloc(2, sizeof(char *));
		ds.imgs[0].names[0] = xstrdup(opts->name);
		ds.imgs[0].n_names = 1;
	} else if (!named) {
		kal_err_set(err, EINVAL, "no image in `%s` has a name (use --name NAME)", path);
		goto out;
	}
	for (size_t i = 0; i < ds.n; i++)
		for (size_t k = 0; k < ds.imgs[i].n_names; k++) {
			char *c;

			if (canonical_name(ds.imgs[i].names[k], NULL, &c, err) < 0)
				goto out;
			free(ds.imgs[i].names[k]);
			ds.imgs[i].names[k] = c;
		}

	/* pass 2: configs */
	a = ds_open(path, err);
	if (!a)
		goto out;
	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		const char *name = entry_name(e);

		for (size_t i = 0; i < ds.n; i++) {
			struct ds_image *im = &ds.imgs[i];

			/* a link or device entry has no bytes of its own to read */
			if (im->config || strcmp(im->config_path, name) ||
			    archive_entry_filetype(e) != AE_IFREG)
				continue;
			if (read_entry(a, name, IC_MAX_CONFIG_SIZE, &im->config, &im->config_len,
				       err) < 0)
				goto out;
			for (size_t j = i + 1; j < ds.n; j++)
				if (!ds.imgs[j].config &&
				    strcmp(ds.imgs[j].config_path, name) == 0) {
					ds.imgs[j].config = xmalloc(im->config_len + 1);
					memcpy(ds.imgs[j].config, im->config, im->config_len + 1);
					ds.imgs[j].config_len = im->config_len;
				}
			break;
		}
	}
	if (r != ARCHIVE_EOF) {
		kal_err_set(err, EIO, "`%s`: %s", path, archive_error_string(a));
		goto out;
	}
	archive_read_free(a);
	a = NULL;
	for (size_t i = 0; i < ds.n; i++) {
		struct ds_image *im = &ds.imgs[i];
		_cleanup_free_ char *cp = xstrdup(im->config_path);
		char *base = basename(cp), *dot;

		if (!im->config) {
			kal_err_set(err, ENOENT, "config `%s` is missing from the tarball",
				    im->config_path);
			goto out;
		}
		ic_digest_buf(im->config, im->config_len, &im->config_digest);
		/* "<hex>.json" (legacy) or "blobs/sha256/<hex>": the name is a digest claim */
		dot = strchr(base, '.');
		if (dot)
			*dot = '\0';
		if (ic_digest_hex_valid(base) && strcmp(base, im->config_digest.hex)) {
			char g[IC_DIGEST_STR_LEN + 1];

			kal_err_set(err, EIO,
				    "config `%s`: digest mismatch (want sha256:%s, got %s)",
				    im->config_path, base, ic_digest_str(&im->config_digest, g));
			goto out;
		}
		if (ic_config_parse(im->config, im->config_len, &im->cfg, err) < 0) {
			kal_err_wrap(err, "config `%s`", im->config_path);
			goto out;
		}
		if (im->cfg.n_diff_ids != im->n_layers) {
			kal_err_set(err, EINVAL,
				    "config lists %zu diff_id%s but manifest.json has %zu layer%s",
				    im->cfg.n_diff_ids, im->cfg.n_diff_ids == 1 ? "" : "s",
				    im->n_layers, im->n_layers == 1 ? "" : "s");
			goto out;
		}
		im->img.layers = xcalloc(im->n_layers + 1, sizeof(*im->img.layers));
		im->img.n_layers = im->n_layers;
		for (size_t k = 0; k < im->n_layers; k++)
			im->img.layers[k].diff_id = im->cfg.diff_ids[k];
	}

	/* pass 3: layers, converted as they stream by */
	if (ds_layers_pass(s, &ds, err) < 0)
		goto out;

	for (size_t i = 0; i < ds.n; i++) {
		struct ds_image *im = &ds.imgs[i];
		_cleanup_free_ char *man = NULL;

		if (!im->n_names)
			continue;
		man = ds_synth_manifest(im);
		ic_digest_buf(man, strlen(man), &im->img.digest);
		im->img.media_type = xstrdup(IC_MT_OCI_MANIFEST);
		im->img.config = im->config_digest;
		im->img.platform = ic_platform_string(&im->cfg.platform);
		im->img.created = (int64_t)time(NULL);
		if (ic_store_blob_put(s, &im->config_digest, im->config, im->config_len, err) < 0 ||
		    ic_store_blob_put(s, &im->img.digest, man, strlen(man), err) < 0 ||
		    publish_names(s, &im->img, im->names, im->n_names, im->converted, rs, err) < 0)
			goto out;
	}
	rc = 0;
out:
	if (a)
		archive_read_free(a);
	ds_free(&ds);
	return rc;
}

int ic_load(const char *home, const char *path, const struct ic_load_opts *opts,
	    struct ic_load_result **out, size_t *n, struct kal_err **err)
{
	struct ic_store *s = NULL;
	struct results rs = { 0 };
	struct stat st;
	int rc;

	if (stat(path, &st) < 0)
		return kal_err_sys(err, errno, "`%s`", path);
	if (ic_store_open(home, &s, err) < 0)
		return -1;
	if (ic_store_lock_shared(s, err) < 0) {
		ic_store_close(s);
		return -1;
	}
	if (S_ISDIR(st.st_mode))
		rc = load_layout(s, path, opts, &rs, err);
	else
		rc = load_docker_save(s, path, opts, &rs, err);
	ic_store_close(s);
	if (rc < 0) {
		ic_load_results_free(rs.v, rs.n);
		return -1;
	}
	*out = rs.v;
	*n = rs.n;
	return 0;
}
