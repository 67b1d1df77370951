// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The content-addressed store (layout diagram in store.h): verified blobs,
 * one EROFS image per layer with its sidecar, name records, and the
 * maintenance passes (verify, prune, stale temp removal).  Publication order
 * is what makes a crash harmless: an object is visible only after it was
 * verified and renamed, a layer only once its sidecar exists, an image only
 * once every object it names is there.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "../lib/fsutil.h"
#include "../lib/log.h"
#include "../lib/xalloc.h"
#include "layer.h"
#include "ref.h"
#include "store.h"

#define SIDECAR_MAX 4096
#define RECORD_MAX  (1u << 20)

static void json_putp(struct json_object **o)
{
	if (*o)
		json_object_put(*o);
}
#define _cleanup_json_ _cleanup_(json_putp)

int ic_store_open(const char *home, struct ic_store **out, struct kal_err **err)
{
	struct ic_store *s = xzalloc(sizeof(*s));

	s->store_lock_fd = -1;
	s->home = xstrdup(home);
	s->blobs = xasprintf("%s/blobs/sha256", home);
	s->layers = xasprintf("%s/layers/sha256", home);
	s->images = xasprintf("%s/images", home);
	s->tmp = xasprintf("%s/tmp", home);
	s->locks = xasprintf("%s/locks", home);
	const char *dirs[] = { s->blobs, s->layers, s->images, s->tmp, s->locks };
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		if (kal_mkdir_p(dirs[i], 0755, err) < 0) {
			ic_store_close(s);
			return kal_err_wrap(err, "store `%s`", home);
		}
	}
	*out = s;
	return 0;
}

void ic_store_close(struct ic_store *s)
{
	if (!s)
		return;
	if (s->store_lock_fd >= 0)
		close(s->store_lock_fd);
	free(s->home);
	free(s->blobs);
	free(s->layers);
	free(s->images);
	free(s->tmp);
	free(s->locks);
	free(s);
}

static int store_lock_fd(struct ic_store *s, struct kal_err **err)
{
	if (s->store_lock_fd < 0) {
		_cleanup_free_ char *p = xasprintf("%s/store", s->locks);

		s->store_lock_fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		if (s->store_lock_fd < 0)
			return kal_err_sys(err, errno, "open lock `%s`", p);
	}
	return s->store_lock_fd;
}

static int flock_retry(int fd, int op)
{
	int r;

	do
		r = flock(fd, op);
	while (r < 0 && errno == EINTR);
	return r;
}

int ic_store_lock_shared(struct ic_store *s, struct kal_err **err)
{
	int fd = store_lock_fd(s, err);

	if (fd < 0)
		return -1;
	/* Alone in the store: whatever temp file exists belongs to a dead process. */
	if (flock_retry(fd, LOCK_EX | LOCK_NB) == 0) {
		struct kal_err *e = NULL;

		if (ic_store_clean_temps(s, NULL, NULL, NULL, &e) < 0) {
			kal_warn("%s", e->msg);
			kal_err_free(e);
		}
	}
	if (flock_retry(fd, LOCK_SH) < 0)
		return kal_err_sys(err, errno, "lock store `%s`", s->home);
	return 0;
}

int ic_store_lock_exclusive(struct ic_store *s, struct kal_err **err)
{
	int fd = store_lock_fd(s, err);

	if (fd < 0)
		return -1;
	if (flock_retry(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK)
			return kal_err_sys(err, errno, "lock store `%s`", s->home);
		kal_info("waiting for other kal processes using `%s`", s->home);
		if (flock_retry(fd, LOCK_EX) < 0)
			return kal_err_sys(err, errno, "lock store `%s`", s->home);
	}
	return 0;
}

void ic_store_unlock(struct ic_store *s)
{
	if (s->store_lock_fd >= 0)
		flock_retry(s->store_lock_fd, LOCK_UN);
}

/* ---- blobs ---- */

char *ic_store_blob_path(const struct ic_store *s, const struct ic_digest *d)
{
	return xasprintf("%s/%s", s->blobs, d->hex);
}

bool ic_store_blob_has(const struct ic_store *s, const struct ic_digest *d)
{
	_cleanup_free_ char *p = ic_store_blob_path(s, d);
	struct stat st;

	return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Re-read what was written through fd and compare with the expected size and digest. */
static int verify_fd(int fd, const struct ic_digest *want, uint64_t want_size, const char *what,
		     struct kal_err **err)
{
	struct ic_digest got;
	unsigned long long size;
	char w[IC_DIGEST_STR_LEN + 1], g[IC_DIGEST_STR_LEN + 1];

	if (lseek(fd, 0, SEEK_SET) < 0)
		return kal_err_sys(err, errno, "%s: seek", what);
	if (ic_digest_fd(fd, &got, &size, err) < 0)
		return kal_err_wrap(err, "%s", what);
	if (size != want_size)
		return kal_err_set(err, EIO, "%s: size mismatch (want %llu, got %llu)", what,
				   (unsigned long long)want_size, size);
	if (!ic_digest_equal(&got, want))
		return kal_err_set(err, EIO, "%s: digest mismatch (want %s, got %s)", what,
				   ic_digest_str(want, w), ic_digest_str(&got, g));
	return 0;
}

int ic_store_blob_put(struct ic_store *s, const struct ic_digest *d, const void *buf, size_t len,
		      struct kal_err **err)
{
	struct ic_store_ingest in;
	struct ic_digest got;
	char w[IC_DIGEST_STR_LEN + 1], g[IC_DIGEST_STR_LEN + 1];

	ic_digest_buf(buf, len, &got);
	if (!ic_digest_equal(&got, d))
		return kal_err_set(err, EIO, "blob: digest mismatch (want %s, got %s)",
				   ic_digest_str(d, w), ic_digest_str(&got, g));
	if (ic_store_blob_has(s, d))
		return 0;
	if (ic_store_blob_begin(s, d, len, &in, err) < 0)
		return -1;
	if (kal_write_all(in.fd, buf, len, err) < 0) {
		ic_store_blob_abort(&in);
		return kal_err_wrap(err, "blob %s", ic_digest_str(d, w));
	}
	return ic_store_blob_commit(s, &in, err);
}

int ic_store_blob_read(const struct ic_store *s, const struct ic_digest *d, size_t max, char **buf,
		       size_t *len, struct kal_err **err)
{
	_cleanup_free_ char *p = ic_store_blob_path(s, d);
	_cleanup_free_ char *b = NULL;
	struct ic_digest got;
	size_t n;
	char w[IC_DIGEST_STR_LEN + 1], g[IC_DIGEST_STR_LEN + 1];

	if (kal_read_file(p, max, &b, &n, err) < 0)
		return -1;
	/* documents are small: re-checking here turns silent disk corruption into an error */
	ic_digest_buf(b, n, &got);
	if (!ic_digest_equal(&got, d))
		return kal_err_set(
		    err, EIO,
		    "corrupt blob `blobs/sha256/%s` (want %s, got %s; run `kal cache "
		    "verify --delete` and pull again)",
		    d->hex, ic_digest_str(d, w), ic_digest_str(&got, g));
	*buf = steal_ptr(&b);
	if (len)
		*len = n;
	return 0;
}

int ic_store_blob_begin(struct ic_store *s, const struct ic_digest *d, uint64_t size,
			struct ic_store_ingest *in, struct kal_err **err)
{
	struct kal_atomic *a = xzalloc(sizeof(*a));
	_cleanup_free_ char *p = ic_store_blob_path(s, d);

	if (kal_atomic_open(a, p, 0444, err) < 0) {
		free(a);
		return -1;
	}
	in->fd = a->fd;
	in->priv = a;
	in->digest = *d;
	in->size = size;
	return 0;
}

int ic_store_blob_commit(struct ic_store *s, struct ic_store_ingest *in, struct kal_err **err)
{
	struct kal_atomic *a = in->priv;
	char w[IC_DIGEST_STR_LEN + 1];
	int r;

	(void)s;
	in->priv = NULL;
	in->fd = -1;
	if (verify_fd(a->fd, &in->digest, in->size, "blob", err) < 0) {
		kal_atomic_abort(a);
		free(a);
		return kal_err_wrap(err, "%s", ic_digest_str(&in->digest, w));
	}
	r = kal_atomic_commit(a, err);
	free(a);
	return r;
}

void ic_store_blob_abort(struct ic_store_ingest *in)
{
	struct kal_atomic *a = in->priv;

	if (a) {
		kal_atomic_abort(a);
		free(a);
	}
	in->priv = NULL;
	in->fd = -1;
}

int ic_store_tmpfile(const struct ic_store *s, struct kal_err **err)
{
	int fd = open(s->tmp, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd >= 0)
		return fd;
	if (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL) {
		_cleanup_free_ char *p = xasprintf("%s/.tmp-ingest-XXXXXX", s->tmp);

		fd = mkostemp(p, O_CLOEXEC);
		if (fd >= 0) {
			unlink(p);
			return fd;
		}
	}
	return kal_err_sys(err, errno, "create temporary file in `%s`", s->tmp);
}

/* ---- layers ---- */

char *ic_store_layer_path(const struct ic_store *s, const struct ic_digest *diff_id)
{
	return xasprintf("%s/%s.erofs", s->layers, diff_id->hex);
}

static char *sidecar_path(const struct ic_store *s, const struct ic_digest *diff_id)
{
	return xasprintf("%s/%s.json", s->layers, diff_id->hex);
}

static int sidecar_read(const char *path, struct ic_store_layer_info *info, struct kal_err **err)
{
	_cleanup_free_ char *buf = NULL;
	_cleanup_json_ struct json_object *o = NULL;
	struct json_object *v;
	size_t len;

	if (kal_read_file(path, SIDECAR_MAX, &buf, &len, err) < 0)
		return -1;
	o = json_tokener_parse(buf);
	if (!o || !json_object_is_type(o, json_type_object))
		return kal_err_set(err, EINVAL, "`%s`: not a layer record", path);
	if (!json_object_object_get_ex(o, "erofs_sha256", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    !ic_digest_hex_valid(json_object_get_string(v)))
		return kal_err_set(err, EINVAL, "`%s`: bad erofs_sha256", path);
	snprintf(info->erofs_sha256.hex, sizeof(info->erofs_sha256.hex), "%s",
		 json_object_get_string(v));
	if (!json_object_object_get_ex(o, "size", &v) || !json_object_is_type(v, json_type_int) ||
	    json_object_get_int64(v) < 0)
		return kal_err_set(err, EINVAL, "`%s`: bad size", path);
	info->size = (uint64_t)json_object_get_int64(v);
	if (!json_object_object_get_ex(o, "converter", &v) ||
	    !json_object_is_type(v, json_type_int))
		return kal_err_set(err, EINVAL, "`%s`: bad converter", path);
	info->converter = (unsigned int)json_object_get_int(v);
	return 0;
}

bool ic_store_layer_has(const struct ic_store *s, const struct ic_digest *diff_id,
			struct ic_store_layer_info *info)
{
	_cleanup_free_ char *ep = ic_store_layer_path(s, diff_id);
	_cleanup_free_ char *jp = sidecar_path(s, diff_id);
	struct ic_store_layer_info li;
	struct kal_err *e = NULL;
	struct stat st;

	if (stat(ep, &st) < 0 || !S_ISREG(st.st_mode))
		return false;
	if (sidecar_read(jp, &li, &e) < 0) {
		kal_err_free(e);
		return false;
	}
	if (li.converter != IC_STORE_CONVERTER || li.size != (uint64_t)st.st_size)
		return false;
	if (info)
		*info = li;
	return true;
}

int ic_store_layer_lock(struct ic_store *s, const struct ic_digest *diff_id, struct kal_err **err)
{
	_cleanup_free_ char *p = xasprintf("%s/layer-%s", s->locks, diff_id->hex);

	return kal_lock_path(p, 0, err);
}

int ic_store_layer_ingest(struct ic_store *s, int in_fd, enum ic_compression comp,
			  const struct ic_digest *want_diff_id, struct ic_store_layer_info *info,
			  struct kal_err **err)
{
	_cleanup_free_ char *ep = ic_store_layer_path(s, want_diff_id);
	_cleanup_free_ char *jp = sidecar_path(s, want_diff_id);
	_cleanup_free_ char *rec = NULL;
	struct ic_layer_result res = { 0 };
	struct kal_atomic a;
	char w[IC_DIGEST_STR_LEN + 1], g[IC_DIGEST_STR_LEN + 1];

	if (kal_atomic_open(&a, ep, 0444, err) < 0)
		return -1;
	if (ic_layer_convert(in_fd, comp, a.fd, &res, err) < 0)
		goto fail;
	if (!ic_digest_equal(&res.diff_id, want_diff_id)) {
		kal_err_set(err, EIO, "diff_id mismatch (want %s, got %s)",
			    ic_digest_str(want_diff_id, w), ic_digest_str(&res.diff_id, g));
		goto fail;
	}
	if (res.image_bytes % IC_EROFS_ALIGN) {
		kal_err_set(err, EIO, "EROFS image of %llu bytes is not 2 MiB aligned",
			    (unsigned long long)res.image_bytes);
		goto fail;
	}
	/* fsync happens in commit; verify what the file holds against what the writer hashed */
	if (fdatasync(a.fd) < 0) {
		kal_err_sys(err, errno, "fsync `%s`", a.tmp);
		goto fail;
	}
	if (verify_fd(a.fd, &res.erofs_digest, res.image_bytes, "EROFS image", err) < 0)
		goto fail;
	if (kal_atomic_commit(&a, err) < 0)
		return -1;
	rec = xasprintf("{\"erofs_sha256\":\"%s\",\"size\":%llu,\"converter\":%d}\n",
			res.erofs_digest.hex, (unsigned long long)res.image_bytes,
			IC_STORE_CONVERTER);
	if (kal_atomic_write_file(jp, rec, strlen(rec), 0444, err) < 0)
		return -1;
	if (info) {
		info->erofs_sha256 = res.erofs_digest;
		info->size = res.image_bytes;
		info->converter = IC_STORE_CONVERTER;
	}
	return 0;
fail:
	kal_atomic_abort(&a);
	return -1;
}

/* ---- image records ---- */

static char *record_path(const struct ic_store *s, const char *name)
{
	size_t n = strlen(name);
	char *out = xmalloc(strlen(s->images) + 2 + n * 3 + 1), *o;

	o = out + sprintf(out, "%s/", s->images);
	for (const char *p = name; *p; p++) {
		if (*p == '/' || *p == '%' || (*p == '.' && p == name))
			o += sprintf(o, "%%%02X", (unsigned char)*p);
		else
			*o++ = *p;
	}
	*o = '\0';
	return out;
}

static char *record_name_decode(const char *file)
{
	char *out = xmalloc(strlen(file) + 1), *o = out;

	for (const char *p = file; *p; p++) {
		unsigned int c;

		if (*p == '%' && sscanf(p + 1, "%2X", &c) == 1) {
			*o++ = (char)c;
			p += 2;
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
	return out;
}

static void put_digest(struct json_object *o, const char *key, const struct ic_digest *d)
{
	char b[IC_DIGEST_STR_LEN + 1];

	json_object_object_add(o, key, json_object_new_string(ic_digest_str(d, b)));
}

int ic_store_image_put(struct ic_store *s, const struct ic_store_image *img, struct kal_err **err)
{
	_cleanup_json_ struct json_object *o = json_object_new_object();
	struct json_object *layers = json_object_new_array();
	_cleanup_free_ char *path = record_path(s, img->name);
	const char *text;

	json_object_object_add(o, "name", json_object_new_string(img->name));
	put_digest(o, "digest", &img->digest);
	if (img->has_index)
		put_digest(o, "index", &img->index);
	json_object_object_add(o, "mediaType", json_object_new_string(img->media_type));
	put_digest(o, "config", &img->config);
	if (img->platform)
		json_object_object_add(o, "platform", json_object_new_string(img->platform));
	json_object_object_add(o, "created", json_object_new_int64(img->created));
	for (size_t i = 0; i < img->n_layers; i++) {
		const struct ic_store_layer *l = &img->layers[i];
		struct json_object *lo = json_object_new_object();

		put_digest(lo, "digest", &l->digest);
		put_digest(lo, "diffId", &l->diff_id);
		json_object_object_add(lo, "mediaType", json_object_new_string(l->media_type));
		json_object_object_add(lo, "size", json_object_new_int64((int64_t)l->size));
		json_object_object_add(lo, "erofsSize",
				       json_object_new_int64((int64_t)l->erofs_size));
		json_object_array_add(layers, lo);
	}
	json_object_object_add(o, "layers", layers);
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	if (kal_atomic_write_file(path, text, strlen(text), 0444, err) < 0)
		return kal_err_wrap(err, "image record `%s`", img->name);
	return 0;
}

static int get_str(struct json_object *o, const char *key, bool required, const char **out,
		   struct kal_err **err)
{
	struct json_object *v;

	*out = NULL;
	if (!json_object_object_get_ex(o, key, &v)) {
		if (required)
			return kal_err_set(err, EINVAL, "missing `%s`", key);
		return 0;
	}
	if (!json_object_is_type(v, json_type_string))
		return kal_err_set(err, EINVAL, "`%s` is not a string", key);
	*out = json_object_get_string(v);
	return 0;
}

static int get_digest(struct json_object *o, const char *key, struct ic_digest *d,
		      struct kal_err **err)
{
	const char *sv;

	if (get_str(o, key, true, &sv, err) < 0)
		return -1;
	if (ic_digest_parse(sv, d, err) < 0)
		return kal_err_wrap(err, "`%s`", key);
	return 0;
}

static int get_u64(struct json_object *o, const char *key, uint64_t *out, struct kal_err **err)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int) ||
	    json_object_get_int64(v) < 0)
		return kal_err_set(err, EINVAL, "bad `%s`", key);
	*out = (uint64_t)json_object_get_int64(v);
	return 0;
}

static int record_parse(const char *buf, struct ic_store_image *img, struct kal_err **err)
{
	_cleanup_json_ struct json_object *o = json_tokener_parse(buf);
	struct json_object *layers, *v;
	const char *sv;
	size_t n;

	memset(img, 0, sizeof(*img));
	if (!o || !json_object_is_type(o, json_type_object))
		return kal_err_set(err, EINVAL, "not a JSON object");
	if (get_str(o, "name", true, &sv, err) < 0)
		goto fail;
	img->name = xstrdup(sv);
	if (get_digest(o, "digest", &img->digest, err) < 0 ||
	    get_digest(o, "config", &img->config, err) < 0)
		goto fail;
	if (json_object_object_get_ex(o, "index", &v)) {
		if (get_digest(o, "index", &img->index, err) < 0)
			goto fail;
		img->has_index = true;
	}
	if (get_str(o, "mediaType", true, &sv, err) < 0)
		goto fail;
	img->media_type = xstrdup(sv);
	if (get_str(o, "platform", false, &sv, err) < 0)
		goto fail;
	img->platform = sv ? xstrdup(sv) : NULL;
	if (json_object_object_get_ex(o, "created", &v))
		img->created = json_object_get_int64(v);
	if (!json_object_object_get_ex(o, "layers", &layers) ||
	    !json_object_is_type(layers, json_type_array)) {
		kal_err_set(err, EINVAL, "missing `layers`");
		goto fail;
	}
	n = json_object_array_length(layers);
	if (n > IC_MAX_LAYERS) {
		kal_err_set(err, EINVAL, "too many layers");
		goto fail;
	}
	img->layers = xcalloc(n ? n : 1, sizeof(*img->layers));
	for (size_t i = 0; i < n; i++) {
		struct json_object *lo = json_object_array_get_idx(layers, i);
		struct ic_store_layer *l = &img->layers[i];

		img->n_layers = i + 1;
		if (!json_object_is_type(lo, json_type_object)) {
			kal_err_set(err, EINVAL, "layer %zu is not an object", i + 1);
			goto fail;
		}
		if (get_digest(lo, "digest", &l->digest, err) < 0 ||
		    get_digest(lo, "diffId", &l->diff_id, err) < 0 ||
		    get_str(lo, "mediaType", true, &sv, err) < 0)
			goto fail;
		l->media_type = xstrdup(sv);
		if (get_u64(lo, "size", &l->size, err) < 0 ||
		    get_u64(lo, "erofsSize", &l->erofs_size, err) < 0)
			goto fail;
	}
	return 0;
fail:
	ic_store_image_clear(img);
	return -1;
}

int ic_store_image_get(const struct ic_store *s, const char *name, struct ic_store_image *img,
		       struct kal_err **err)
{
	_cleanup_free_ char *path = record_path(s, name);
	_cleanup_free_ char *buf = NULL;

	memset(img, 0, sizeof(*img));
	if (kal_read_file(path, RECORD_MAX, &buf, NULL, err) < 0)
		return -1;
	if (record_parse(buf, img, err) < 0)
		return kal_err_wrap(err, "image record `%s`", path);
	return 0;
}

int ic_store_image_remove(struct ic_store *s, const char *name, struct kal_err **err)
{
	_cleanup_free_ char *path = record_path(s, name);

	if (unlink(path) < 0)
		return kal_err_sys(err, errno, "remove `%s`", path);
	return kal_fsync_dir(s->images, err);
}

void ic_store_image_clear(struct ic_store_image *img)
{
	free(img->name);
	free(img->media_type);
	free(img->platform);
	for (size_t i = 0; i < img->n_layers; i++)
		free(img->layers[i].media_type);
	free(img->layers);
	memset(img, 0, sizeof(*img));
}

void ic_store_image_list_free(struct ic_store_image *imgs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ic_store_image_clear(&imgs[i]);
	free(imgs);
}

static int image_cmp(const void *a, const void *b)
{
	return strcmp(((const struct ic_store_image *)a)->name,
		      ((const struct ic_store_image *)b)->name);
}

int ic_store_image_list(const struct ic_store *s, struct ic_store_image **out, size_t *n,
			struct kal_err **err)
{
	_cleanup_closedir_ DIR *d = opendir(s->images);
	struct ic_store_image *v = NULL;
	size_t cnt = 0, cap = 0;
	struct dirent *de;

	if (!d)
		return kal_err_sys(err, errno, "open `%s`", s->images);
	while ((de = readdir(d))) {
		_cleanup_free_ char *name = NULL;
		struct kal_err *e = NULL;

		if (de->d_name[0] == '.')
			continue; /* ".", "..", and temp files */
		name = record_name_decode(de->d_name);
		if (cnt == cap) {
			cap = cap ? cap * 2 : 16;
			v = xreallocarray(v, cap, sizeof(*v));
		}
		if (ic_store_image_get(s, name, &v[cnt], &e) < 0) {
			/* removed under us (rmi) or unreadable: skip, verify reports it */
			if (e->code != ENOENT)
				kal_warn("%s", e->msg);
			kal_err_free(e);
			continue;
		}
		cnt++;
	}
	if (cnt)
		qsort(v, cnt, sizeof(*v), image_cmp);
	*out = v;
	*n = cnt;
	return 0;
}

static bool is_hex_prefix(const char *s)
{
	size_t n = strlen(s);

	if (n < 4 || n > IC_DIGEST_HEX_LEN)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

int ic_store_image_resolve(const struct ic_store *s, const char *ref, struct ic_store_image *img,
			   struct kal_err **err)
{
	struct ic_ref r = { 0 };
	struct kal_err *e = NULL;
	const char *prefix = NULL;
	struct ic_store_image *all = NULL;
	size_t n = 0, found = SIZE_MAX;
	bool ambiguous = false;

	memset(img, 0, sizeof(*img));
	if (ic_ref_parse(ref, &r, &e) == 0) {
		_cleanup_free_ char *canon = ic_ref_string(&r);
		int rc = ic_store_image_get(s, canon, img, &e);

		ic_ref_free(&r);
		if (rc == 0)
			return 0;
		if (e->code != ENOENT) {
			*err = e;
			return kal_err_wrap(err, "image `%s`", ref);
		}
	}
	kal_err_clear(&e);
	if (strncmp(ref, "sha256:", 7) == 0 && is_hex_prefix(ref + 7))
		prefix = ref + 7;
	else if (is_hex_prefix(ref))
		prefix = ref;
	if (prefix) {
		if (ic_store_image_list(s, &all, &n, err) < 0)
			return -1;
		for (size_t i = 0; i < n; i++) {
			if (strncmp(all[i].digest.hex, prefix, strlen(prefix)))
				continue;
			if (found != SIZE_MAX &&
			    !ic_digest_equal(&all[found].digest, &all[i].digest))
				ambiguous = true;
			if (found == SIZE_MAX)
				found = i;
		}
		if (ambiguous) {
			ic_store_image_list_free(all, n);
			return kal_err_set(err, EINVAL,
					   "image `%s` is ambiguous (several images match)", ref);
		}
		if (found != SIZE_MAX) {
			*img = all[found];
			memset(&all[found], 0, sizeof(all[found]));
			ic_store_image_list_free(all, n);
			return 0;
		}
		ic_store_image_list_free(all, n);
	}
	return kal_err_set(err, ENOENT, "image `%s` not found", ref);
}

bool ic_store_image_complete(const struct ic_store *s, const struct ic_store_image *img)
{
	if (!ic_store_blob_has(s, &img->digest) || !ic_store_blob_has(s, &img->config))
		return false;
	for (size_t i = 0; i < img->n_layers; i++) {
		struct ic_store_layer_info info;

		if (!ic_store_layer_has(s, &img->layers[i].diff_id, &info))
			return false;
	}
	return true;
}

/* ---- maintenance ---- */

static void report(ic_store_report_fn fn, void *arg, const char *event, const char *path,
		   const char *detail, uint64_t bytes)
{
	if (fn)
		fn(arg, event, path, detail, bytes);
}

static int clean_dir_temps(const char *dir, const char *rel, ic_store_report_fn fn, void *arg,
			   uint64_t *freed, struct kal_err **err)
{
	_cleanup_closedir_ DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return errno == ENOENT ? 0 : kal_err_sys(err, errno, "open `%s`", dir);
	while ((de = readdir(d))) {
		struct stat st;
		_cleanup_free_ char *rp = NULL;

		if (strncmp(de->d_name, ".tmp-", 5))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) < 0) {
			if (errno == ENOENT)
				continue;
			return kal_err_sys(err, errno, "remove `%s/%s`", dir, de->d_name);
		}
		rp = xasprintf("%s/%s", rel, de->d_name);
		report(fn, arg, "removed", rp, "stale temporary file", (uint64_t)st.st_size);
		if (freed)
			*freed += (uint64_t)st.st_size;
	}
	return 0;
}

int ic_store_clean_temps(struct ic_store *s, ic_store_report_fn fn, void *arg, uint64_t *freed,
			 struct kal_err **err)
{
	if (clean_dir_temps(s->blobs, "blobs/sha256", fn, arg, freed, err) < 0 ||
	    clean_dir_temps(s->layers, "layers/sha256", fn, arg, freed, err) < 0 ||
	    clean_dir_temps(s->images, "images", fn, arg, freed, err) < 0 ||
	    clean_dir_temps(s->tmp, "tmp", fn, arg, freed, err) < 0)
		return -1;
	return 0;
}

static int remove_obj(int dfd, const char *name, const char *rel, const char *event,
		      const char *detail, ic_store_report_fn fn, void *arg, uint64_t *freed,
		      struct kal_err **err)
{
	struct stat st;
	_cleanup_free_ char *rp = xasprintf("%s/%s", rel, name);

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : kal_err_sys(err, errno, "stat `%s`", rp);
	if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT)
		return kal_err_sys(err, errno, "remove `%s`", rp);
	report(fn, arg, event, rp, detail, (uint64_t)st.st_size);
	if (freed)
		*freed += (uint64_t)st.st_size;
	return 0;
}

/* Split "<hex>.erofs" / "<hex>.json"; returns the suffix or NULL. */
static const char *layer_file_kind(const char *name, struct ic_digest *d)
{
	const char *dot = strchr(name, '.');

	if (!dot || dot - name != IC_DIGEST_HEX_LEN)
		return NULL;
	memcpy(d->hex, name, IC_DIGEST_HEX_LEN);
	d->hex[IC_DIGEST_HEX_LEN] = '\0';
	if (!ic_digest_hex_valid(d->hex))
		return NULL;
	if (strcmp(dot, ".erofs") && strcmp(dot, ".json"))
		return NULL;
	return dot + 1;
}

static int hash_at(int dfd, const char *name, struct ic_digest *d, unsigned long long *size,
		   struct kal_err **err)
{
	_cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return kal_err_sys(err, errno, "open `%s`", name);
	return ic_digest_fd(fd, d, size, err);
}

int ic_store_verify(struct ic_store *s, bool del, ic_store_report_fn fn, void *arg,
		    size_t *n_corrupt, struct kal_err **err)
{
	DIR *d;
	struct dirent *de;
	char w[IC_DIGEST_STR_LEN + 1], g[IC_DIGEST_STR_LEN + 1];
	size_t bad = 0;

	if (ic_store_clean_temps(s, fn, arg, NULL, err) < 0)
		return -1;

	d = opendir(s->blobs);
	if (!d)
		return kal_err_sys(err, errno, "open `%s`", s->blobs);
	while ((de = readdir(d))) {
		struct ic_digest want, got;
		unsigned long long size;
		_cleanup_free_ char *rp = NULL, *detail = NULL;

		if (de->d_name[0] == '.')
			continue;
		rp = xasprintf("blobs/sha256/%s", de->d_name);
		if (!ic_digest_hex_valid(de->d_name)) {
			detail = xstrdup("not a sha256 name");
		} else {
			memcpy(want.hex, de->d_name, sizeof(want.hex));
			if (hash_at(dirfd(d), de->d_name, &got, &size, err) < 0) {
				closedir(d);
				return kal_err_wrap(err, "verify `%s`", rp);
			}
			if (ic_digest_equal(&want, &got))
				continue;
			detail = xasprintf("want %s, got %s", ic_digest_str(&want, w),
					   ic_digest_str(&got, g));
		}
		report(fn, arg, "corrupt", rp, detail, 0);
		if (del) {
			if (remove_obj(dirfd(d), de->d_name, "blobs/sha256", "deleted", NULL, fn,
				       arg, NULL, err) < 0) {
				closedir(d);
				return -1;
			}
		} else {
			bad++;
		}
	}
	closedir(d);

	d = opendir(s->layers);
	if (!d)
		return kal_err_sys(err, errno, "open `%s`", s->layers);
	while ((de = readdir(d))) {
		struct ic_digest diff_id, got;
		struct ic_store_layer_info info;
		unsigned long long size;
		const char *kind;
		_cleanup_free_ char *rp = NULL, *jp = NULL, *detail = NULL, *jname = NULL;
		struct kal_err *e = NULL;

		if (de->d_name[0] == '.')
			continue;
		rp = xasprintf("layers/sha256/%s", de->d_name);
		kind = layer_file_kind(de->d_name, &diff_id);
		if (!kind) {
			report(fn, arg, "corrupt", rp, "not a layer file name", 0);
			if (!del)
				bad++;
			else if (remove_obj(dirfd(d), de->d_name, "layers/sha256", "deleted", NULL,
					    fn, arg, NULL, err) < 0) {
				closedir(d);
				return -1;
			}
			continue;
		}
		jname = xasprintf("%s.json", diff_id.hex);
		jp = sidecar_path(s, &diff_id);
		if (strcmp(kind, "json") == 0) {
			_cleanup_free_ char *en = xasprintf("%s.erofs", diff_id.hex);

			/* a sidecar without its image: the image was deleted; drop it */
			if (faccessat(dirfd(d), en, F_OK, AT_SYMLINK_NOFOLLOW) < 0 &&
			    errno == ENOENT &&
			    remove_obj(dirfd(d), de->d_name, "layers/sha256", "removed",
				       "sidecar without image", fn, arg, NULL, err) < 0) {
				closedir(d);
				return -1;
			}
			continue;
		}
		if (sidecar_read(jp, &info, &e) < 0) {
			bool missing = e->code == ENOENT;

			kal_err_free(e);
			if (missing) {
				/* crash between the image's rename and its sidecar's: incomplete */
				if (remove_obj(dirfd(d), de->d_name, "layers/sha256", "removed",
					       "incomplete layer (no sidecar)", fn, arg, NULL,
					       err) < 0) {
					closedir(d);
					return -1;
				}
				continue;
			}
			detail = xstrdup("unreadable sidecar");
		} else {
			if (hash_at(dirfd(d), de->d_name, &got, &size, err) < 0) {
				closedir(d);
				return kal_err_wrap(err, "verify `%s`", rp);
			}
			if (ic_digest_equal(&got, &info.erofs_sha256) && size == info.size)
				continue;
			if (size != info.size)
				detail = xasprintf("want %llu bytes, got %llu",
						   (unsigned long long)info.size, size);
			else
				detail = xasprintf("want %s, got %s",
						   ic_digest_str(&info.erofs_sha256, w),
						   ic_digest_str(&got, g));
		}
		report(fn, arg, "corrupt", rp, detail, 0);
		if (del) {
			if (remove_obj(dirfd(d), jname, "layers/sha256", "deleted", NULL, fn, arg,
				       NULL, err) < 0 ||
			    remove_obj(dirfd(d), de->d_name, "layers/sha256", "deleted", NULL, fn,
				       arg, NULL, err) < 0) {
				closedir(d);
				return -1;
			}
		} else {
			bad++;
		}
	}
	closedir(d);
	if (del && kal_fsync_dir(s->layers, err) < 0)
		return -1;
	if (del && kal_fsync_dir(s->blobs, err) < 0)
		return -1;
	/* names whose objects are gone (deleted above, or by hand): say how to repair them */
	{
		struct ic_store_image *imgs = NULL;
		size_t n = 0;

		if (ic_store_image_list(s, &imgs, &n, err) < 0)
			return -1;
		for (size_t i = 0; i < n; i++) {
			_cleanup_free_ char *rp = NULL, *detail = NULL, *rec = NULL;

			if (ic_store_image_complete(s, &imgs[i]))
				continue;
			rec = record_path(s, imgs[i].name);
			rp = xasprintf("images/%s", rec + strlen(s->images) + 1);
			detail = xasprintf("objects missing: pull `%s` again", imgs[i].name);
			report(fn, arg, "incomplete", rp, detail, 0);
		}
		ic_store_image_list_free(imgs, n);
	}
	*n_corrupt = bad;
	return 0;
}

/* Digest sets are small (images x layers): a sorted array is plenty. */
struct digest_set {
	struct ic_digest *v;
	size_t n, cap;
};

static void set_add(struct digest_set *set, const struct ic_digest *d)
{
	if (set->n == set->cap) {
		set->cap = set->cap ? set->cap * 2 : 64;
		set->v = xreallocarray(set->v, set->cap, sizeof(*set->v));
	}
	set->v[set->n++] = *d;
}

static int digest_cmp(const void *a, const void *b)
{
	return strcmp(((const struct ic_digest *)a)->hex, ((const struct ic_digest *)b)->hex);
}

static bool set_has(const struct digest_set *set, const struct ic_digest *d)
{
	return set->n && bsearch(d, set->v, set->n, sizeof(*d), digest_cmp);
}

int ic_store_prune(struct ic_store *s, ic_store_report_fn fn, void *arg, uint64_t *freed,
		   struct kal_err **err)
{
	struct digest_set blobs = { 0 }, layers = { 0 };
	struct ic_store_image *imgs = NULL;
	size_t n = 0;
	DIR *d = NULL;
	struct dirent *de;
	int rc = -1;

	*freed = 0;
	if (ic_store_image_list(s, &imgs, &n, err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		set_add(&blobs, &imgs[i].digest);
		set_add(&blobs, &imgs[i].config);
		if (imgs[i].has_index)
			set_add(&blobs, &imgs[i].index);
		for (size_t j = 0; j < imgs[i].n_layers; j++)
			set_add(&layers, &imgs[i].layers[j].diff_id);
	}
	if (blobs.n)
		qsort(blobs.v, blobs.n, sizeof(*blobs.v), digest_cmp);
	if (layers.n)
		qsort(layers.v, layers.n, sizeof(*layers.v), digest_cmp);

	if (ic_store_clean_temps(s, fn, arg, freed, err) < 0)
		goto out;

	d = opendir(s->blobs);
	if (!d) {
		kal_err_sys(err, errno, "open `%s`", s->blobs);
		goto out;
	}
	while ((de = readdir(d))) {
		struct ic_digest dg;

		if (de->d_name[0] == '.')
			continue;
		if (ic_digest_hex_valid(de->d_name)) {
			memcpy(dg.hex, de->d_name, sizeof(dg.hex));
			if (set_has(&blobs, &dg))
				continue;
		}
		if (remove_obj(dirfd(d), de->d_name, "blobs/sha256", "deleted", NULL, fn, arg,
			       freed, err) < 0)
			goto out;
	}
	closedir(d);

	d = opendir(s->layers);
	if (!d) {
		kal_err_sys(err, errno, "open `%s`", s->layers);
		goto out;
	}
	while ((de = readdir(d))) {
		struct ic_digest dg;

		if (de->d_name[0] == '.')
			continue;
		if (layer_file_kind(de->d_name, &dg) && set_has(&layers, &dg))
			continue;
		if (remove_obj(dirfd(d), de->d_name, "layers/sha256", "deleted", NULL, fn, arg,
			       freed, err) < 0)
			goto out;
	}
	closedir(d);
	d = NULL;
	/* no pull runs (exclusive lock), so nobody can be waiting on a layer lock file */
	d = opendir(s->locks);
	if (d) {
		while ((de = readdir(d)))
			if (strncmp(de->d_name, "layer-", 6) == 0)
				unlinkat(dirfd(d), de->d_name, 0);
		closedir(d);
		d = NULL;
	}
	if (kal_fsync_dir(s->blobs, err) < 0 || kal_fsync_dir(s->layers, err) < 0)
		goto out;
	rc = 0;
out:
	if (d)
		closedir(d);
	free(blobs.v);
	free(layers.v);
	ic_store_image_list_free(imgs, n);
	return rc;
}
