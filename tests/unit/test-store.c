// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests for imagecache/store.c: verified atomic publication (nothing
 * unverified becomes visible), the store and layer locks, stale temp
 * removal, name records and resolution, cache verify finding corruption, and
 * prune keeping exactly what image records reach.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "imagecache/image.h"
#include "imagecache/store.h"
#include "lib/cleanup.h"
#include "lib/err.h"
#include "lib/fsutil.h"
#include "lib/xalloc.h"

struct fx {
	char dir[64];
	struct ic_store *s;
};

static int setup(void **state)
{
	struct fx *f = xzalloc(sizeof(*f));
	struct kal_err *err = NULL;

	strcpy(f->dir, "/tmp/kal-test-store-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(ic_store_open(f->dir, &f->s, &err), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	ic_store_close(f->s);
	assert_int_equal(kal_rm_rf(f->dir, NULL), 0);
	free(f);
	return 0;
}

static size_t count_temps(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		n += strncmp(de->d_name, ".tmp-", 5) == 0;
	closedir(d);
	return n;
}

static bool exists(const char *path)
{
	return access(path, F_OK) == 0;
}

/* A layer published by hand (no converter): bytes + a sidecar with their sha256. */
static void fake_layer(struct fx *f, const struct ic_digest *diff_id, const char *content)
{
	struct ic_digest d;
	_cleanup_free_ char *ep = ic_store_layer_path(f->s, diff_id);
	_cleanup_free_ char *jp = xasprintf("%s/%s.json", f->s->layers, diff_id->hex);
	_cleanup_free_ char *rec = NULL;

	ic_digest_buf(content, strlen(content), &d);
	rec = xasprintf("{\"erofs_sha256\":\"%s\",\"size\":%zu,\"converter\":%d}", d.hex,
			strlen(content), IC_STORE_CONVERTER);
	assert_int_equal(kal_atomic_write_file(ep, content, strlen(content), 0644, NULL), 0);
	assert_int_equal(kal_atomic_write_file(jp, rec, strlen(rec), 0644, NULL), 0);
}

static void test_blob_put_verifies(void **state)
{
	struct fx *f = *state;
	struct kal_err *err = NULL;
	struct ic_digest d, other;
	_cleanup_free_ char *p = NULL, *buf = NULL;
	struct stat st;
	size_t len;

	ic_digest_buf("hello", 5, &d);
	ic_digest_buf("other", 5, &other);
	p = ic_store_blob_path(f->s, &d);

	/* wrong content for the name: refused, nothing visible */
	assert_int_equal(ic_store_blob_put(f->s, &d, "other", 5, &err), -1);
	assert_non_null(strstr(err->msg, "digest mismatch"));
	kal_err_clear(&err);
	assert_false(exists(p));

	assert_int_equal(ic_store_blob_put(f->s, &d, "hello", 5, &err), 0);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0444);
	assert_int_equal(ic_store_blob_read(f->s, &d, 100, &buf, &len, &err), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(count_temps(f->s->blobs), 0);
}

static void test_blob_ingest_size_and_digest(void **state)
{
	struct fx *f = *state;
	struct kal_err *err = NULL;
	struct ic_store_ingest in;
	struct ic_digest d;
	_cleanup_free_ char *p = NULL;

	ic_digest_buf("abcdef", 6, &d);
	p = ic_store_blob_path(f->s, &d);

	/* short write: size checked before the digest */
	assert_int_equal(ic_store_blob_begin(f->s, &d, 6, &in, &err), 0);
	assert_int_equal(kal_write_all(in.fd, "abc", 3, &err), 0);
	assert_int_equal(ic_store_blob_commit(f->s, &in, &err), -1);
	assert_non_null(strstr(err->msg, "size mismatch (want 6, got 3)"));
	kal_err_clear(&err);
	assert_false(exists(p));

	/* right size, wrong bytes */
	assert_int_equal(ic_store_blob_begin(f->s, &d, 6, &in, &err), 0);
	assert_int_equal(kal_write_all(in.fd, "abcdeX", 6, &err), 0);
	assert_int_equal(ic_store_blob_commit(f->s, &in, &err), -1);
	assert_non_null(strstr(err->msg, "digest mismatch"));
	kal_err_clear(&err);
	assert_false(exists(p));

	/* aborted: temp gone */
	assert_int_equal(ic_store_blob_begin(f->s, &d, 6, &in, &err), 0);
	assert_int_equal(count_temps(f->s->blobs), 1);
	ic_store_blob_abort(&in);
	assert_int_equal(count_temps(f->s->blobs), 0);

	assert_int_equal(ic_store_blob_begin(f->s, &d, 6, &in, &err), 0);
	assert_int_equal(kal_write_all(in.fd, "abcdef", 6, &err), 0);
	assert_int_equal(ic_store_blob_commit(f->s, &in, &err), 0);
	assert_true(ic_store_blob_has(f->s, &d));
	assert_int_equal(count_temps(f->s->blobs), 0);
}

static void test_corrupt_blob_read(void **state)
{
	struct fx *f = *state;
	struct kal_err *err = NULL;
	struct ic_digest d;
	_cleanup_free_ char *p = NULL, *buf = NULL;
	size_t len;

	ic_digest_buf("payload", 7, &d);
	assert_int_equal(ic_store_blob_put(f->s, &d, "payload", 7, &err), 0);
	p = ic_store_blob_path(f->s, &d);
	chmod(p, 0644);
	assert_int_equal(kal_atomic_write_file(p, "paylxad", 7, 0444, NULL), 0);
	assert_int_equal(ic_store_blob_read(f->s, &d, 100, &buf, &len, &err), -1);
	assert_non_null(strstr(err->msg, "corrupt blob"));
	kal_err_clear(&err);
}

/* Child: try to take `path` with op|LOCK_NB; exit 0 when it got it, 1 when it would block. */
static int child_try_lock(const char *path, int op)
{
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		int fd = open(path, O_RDWR | O_CREAT, 0644);

		_exit(fd >= 0 && flock(fd, op | LOCK_NB) == 0 ? 0 : 1);
	}
	waitpid(pid, &st, 0);
	return WEXITSTATUS(st);
}

static void test_locks(void **state)
{
	struct fx *f = *state;
	struct kal_err *err = NULL;
	_cleanup_free_ char *sl = xasprintf("%s/store", f->s->locks);
	struct ic_digest d;
	_cleanup_free_ char *ll = NULL;
	int fd;

	assert_int_equal(ic_store_lock_shared(f->s, &err), 0);
	/* other pulls may share the store, prune/verify may not */
	assert_int_equal(child_try_lock(sl, LOCK_SH), 0);
	assert_int_equal(child_try_lock(sl, LOCK_EX), 1);
	ic_store_unlock(f->s);
	assert_int_equal(child_try_lock(sl, LOCK_EX), 0);

	ic_digest_buf("layer", 5, &d);
	ll = xasprintf("%s/layer-%s", f->s->locks, d.hex);
	fd = ic_store_layer_lock(f->s, &d, &err);
	assert_true(fd >= 0);
	assert_int_equal(child_try_lock(ll, LOCK_EX), 1);
	close(fd);
	assert_int_equal(child_try_lock(ll, LOCK_EX), 0);
}

static void test_stale_temps(void **state)
{
	struct fx *f = *state;
	struct kal_err *err = NULL;
	_cleanup_free_ char *t1 = xasprintf("%s/.tmp-abc-123456", f->s->blobs);
	_cleanup_free_ char *t2 = xasprintf("%s/.tmp-x.erofs-123456", f->s->layers);
	_cleanup_free_ char *sl = xasprintf("%s/store", f->s->locks);
	struct ic_store *s2 = NULL;
	int pipefd[2];
	pid_t pid;
	char c;

	assert_int_equal(kal_atomic_write_file(t1, "x", 1, 0644, NULL), 0);
	assert_int_equal(kal_atomic_write_file(t2, "y", 1, 0644, NULL), 0);

	/* another kal holds the store: its temps may be live, so they stay */
	assert_int_equal(pipe(pipefd), 0);
	pid = fork();
	if (pid == 0) {
		int fd = open(sl, O_RDWR | O_CREAT, 0644);

		flock(fd, LOCK_SH);
		if (write(pipefd[1], "x", 1) != 1)
			_exit(1);
		sleep(30);
		_exit(0);
	}
	assert_int_equal(read(pipefd[0], &c, 1), 1);
	assert_int_equal(ic_store_open(f->dir, &s2, &err), 0);
	assert_int_equal(ic_store_lock_shared(s2, &err), 0);
	assert_true(exists(t1));
	ic_store_close(s2);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);

	/* alone: leftovers of a dead process are removed */
	assert_int_equal(ic_store_lock_shared(f->s, &err), 0);
	assert_false(exists(t1));
	assert_false(exists(t2));
	ic_store_unlock(f->s);
	close(pipefd[0]);
	close(pipefd[1]);
}

static void make_image(struct ic_store_image *img, const char *name, const char *mseed,
		       const char *cseed, const struct ic_digest *layer)
{
	memset(img, 0, sizeof(*img));
	img->name = xstrdup(name);
	ic_digest_buf(mseed, strlen(mseed), &img->digest);
	ic_digest_buf(cseed, strlen(cseed), &img->config);
	img->media_type = xstrdup("application/vnd.oci.image.manifest.v1+json");
	img->platform = xstrdup("linux/amd64");
	img->n_layers = 1;
	img->layers = xcalloc(1, sizeof(*img->layers));
	img->layers[0].diff_id = *layer;
	img->layers[0].digest = *layer;
	img->layers[0].media_type = xstrdup("application/vnd.oci.image.layer.v1.tar");
	img->layers[0].size = 10;
	img->layers[0].erofs_size = 2 << 20;
}

static void test_image_records_and_resolve(void **state)
{
	struct fx *f = *state;
	struct kal_err *err = NULL;
	struct ic_store_image a, b, got, *all = NULL;
	struct ic_digest l;
	char prefix[8];
	size_t n;

	ic_digest_buf("L", 1, &l);
	make_image(&a, "docker.io/library/busybox:latest", "m1", "c1", &l);
	make_image(&b, "127.0.0.1:5000/x/y:1", "m2", "c2", &l);
	assert_int_equal(ic_store_image_put(f->s, &a, &err), 0);
	assert_int_equal(ic_store_image_put(f->s, &b, &err), 0);

	assert_int_equal(ic_store_image_list(f->s, &all, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(all[0].name, "127.0.0.1:5000/x/y:1");
	assert_string_equal(all[1].name, "docker.io/library/busybox:latest");
	assert_int_equal(all[1].layers[0].erofs_size, 2 << 20);
	ic_store_image_list_free(all, n);

	/* short, familiar and canonical names, digest and prefix all find the same record */
	const char *forms[] = { "busybox", "busybox:latest", "docker.io/library/busybox:latest" };
	for (size_t i = 0; i < ARRAY_SIZE(forms); i++) {
		assert_int_equal(ic_store_image_resolve(f->s, forms[i], &got, &err), 0);
		assert_string_equal(got.name, a.name);
		ic_store_image_clear(&got);
	}
	memcpy(prefix, a.digest.hex, 6);
	prefix[6] = '\0';
	assert_int_equal(ic_store_image_resolve(f->s, prefix, &got, &err), 0);
	assert_string_equal(got.name, a.name);
	ic_store_image_clear(&got);

	assert_int_equal(ic_store_image_resolve(f->s, "nope", &got, &err), -1);
	assert_string_equal(err->msg, "image `nope` not found");
	assert_int_equal(err->code, ENOENT);
	kal_err_clear(&err);

	/* a record that names the same digest twice is not ambiguous; two digests are */
	assert_int_equal(ic_store_image_remove(f->s, "127.0.0.1:5000/x/y:1", &err), 0);
	assert_int_equal(ic_store_image_resolve(f->s, "127.0.0.1:5000/x/y:1", &got, &err), -1);
	kal_err_clear(&err);
	assert_int_equal(ic_store_image_remove(f->s, "127.0.0.1:5000/x/y:1", &err), -1);
	kal_err_clear(&err);
	ic_store_image_clear(&a);
	ic_store_image_clear(&b);
}

struct rep {
	char lines[16][256];
	size_t n;
};

static void collect(void *arg, const char *event, const char *path, const char *detail,
		    uint64_t bytes)
{
	struct rep *r = arg;

	(void)bytes;
	if (r->n < 16)
		snprintf(r->lines[r->n++], 256, "%s: %s%s%s", event, path, detail ? " " : "",
			 detail ? detail : "");
}

static void test_verify_finds_corruption(void **state)
{
	struct fx *f = *state;
	struct kal_err *err = NULL;
	struct ic_digest bd, l;
	struct rep r = { 0 };
	_cleanup_free_ char *bp = NULL, *ep = NULL;
	size_t bad;

	ic_digest_buf("blob", 4, &bd);
	ic_digest_buf("diffid", 6, &l);
	assert_int_equal(ic_store_blob_put(f->s, &bd, "blob", 4, &err), 0);
	fake_layer(f, &l, "erofs-bytes");
	assert_true(ic_store_layer_has(f->s, &l, NULL));

	assert_int_equal(ic_store_verify(f->s, false, collect, &r, &bad, &err), 0);
	assert_int_equal(bad, 0);
	assert_int_equal(r.n, 0);

	bp = ic_store_blob_path(f->s, &bd);
	ep = ic_store_layer_path(f->s, &l);
	chmod(bp, 0644);
	assert_int_equal(kal_atomic_write_file(bp, "blob", 3, 0444, NULL), 0);
	assert_int_equal(kal_atomic_write_file(ep, "erofs-bytez", 11, 0444, NULL), 0);
	assert_int_equal(ic_store_verify(f->s, false, collect, &r, &bad, &err), 0);
	assert_int_equal(bad, 2);
	assert_int_equal(r.n, 2);
	for (size_t i = 0; i < r.n; i++)
		assert_non_null(strstr(r.lines[i], "corrupt: "));
	assert_true(exists(bp));

	memset(&r, 0, sizeof(r));
	assert_int_equal(ic_store_verify(f->s, true, collect, &r, &bad, &err), 0);
	assert_int_equal(bad, 0);
	assert_false(exists(bp));
	assert_false(exists(ep));
	assert_false(ic_store_layer_has(f->s, &l, NULL));

	/* an image without its sidecar (crash between the two renames) is removed, not corrupt */
	fake_layer(f, &l, "erofs-bytes");
	_cleanup_free_ char *jp = xasprintf("%s/%s.json", f->s->layers, l.hex);
	unlink(jp);
	assert_false(ic_store_layer_has(f->s, &l, NULL));
	assert_int_equal(ic_store_verify(f->s, false, NULL, NULL, &bad, &err), 0);
	assert_int_equal(bad, 0);
	assert_false(exists(ep));
}

static void test_prune_reachability(void **state)
{
	struct fx *f = *state;
	struct kal_err *err = NULL;
	struct ic_store_image a;
	struct ic_digest keep_l, drop_l, drop_b;
	uint64_t freed = 0;
	_cleanup_free_ char *tmp = xasprintf("%s/.tmp-zzz-000000", f->s->layers);

	ic_digest_buf("keep", 4, &keep_l);
	ic_digest_buf("drop", 4, &drop_l);
	ic_digest_buf("loose", 5, &drop_b);
	make_image(&a, "docker.io/library/busybox:latest", "m1", "c1", &keep_l);
	assert_int_equal(ic_store_blob_put(f->s, &a.digest, "m1", 2, &err), 0);
	assert_int_equal(ic_store_blob_put(f->s, &a.config, "c1", 2, &err), 0);
	assert_int_equal(ic_store_blob_put(f->s, &drop_b, "loose", 5, &err), 0);
	fake_layer(f, &keep_l, "keep-layer");
	fake_layer(f, &drop_l, "drop-layer");
	assert_int_equal(kal_atomic_write_file(tmp, "partial", 7, 0644, NULL), 0);
	assert_int_equal(ic_store_image_put(f->s, &a, &err), 0);
	assert_true(ic_store_image_complete(f->s, &a));

	assert_int_equal(ic_store_prune(f->s, NULL, NULL, &freed, &err), 0);
	/* "loose" (5) + drop layer (10) + its sidecar + the temp (7) */
	assert_true(freed > 5 + 10 + 7);
	assert_true(ic_store_blob_has(f->s, &a.digest));
	assert_true(ic_store_blob_has(f->s, &a.config));
	assert_false(ic_store_blob_has(f->s, &drop_b));
	assert_true(ic_store_layer_has(f->s, &keep_l, NULL));
	assert_false(ic_store_layer_has(f->s, &drop_l, NULL));
	assert_false(exists(tmp));

	/* without the record everything goes */
	assert_int_equal(ic_store_image_remove(f->s, a.name, &err), 0);
	assert_int_equal(ic_store_prune(f->s, NULL, NULL, &freed, &err), 0);
	assert_false(ic_store_blob_has(f->s, &a.digest));
	assert_false(ic_store_layer_has(f->s, &keep_l, NULL));
	ic_store_image_clear(&a);
}

static void test_layer_sidecar_must_agree(void **state)
{
	struct fx *f = *state;
	struct ic_digest l;
	_cleanup_free_ char *jp = NULL;
	const char *bad = "{\"erofs_sha256\":\"00\",\"size\":1,\"converter\":1}";

	ic_digest_buf("agree", 5, &l);
	fake_layer(f, &l, "0123456789");
	assert_true(ic_store_layer_has(f->s, &l, NULL));
	jp = xasprintf("%s/%s.json", f->s->layers, l.hex);
	assert_int_equal(kal_atomic_write_file(jp, bad, strlen(bad), 0644, NULL), 0);
	assert_false(ic_store_layer_has(f->s, &l, NULL));
}

static void test_image_open(void **state)
{
	struct fx *f = *state;
	struct kal_err *err = NULL;
	struct ic_store_image rec;
	struct ic_image *img = NULL;
	struct ic_digest l1, l2;
	char cfg[512];
	_cleanup_free_ char *p2 = NULL;

	ic_digest_buf("l1", 2, &l1);
	ic_digest_buf("l2", 2, &l2);
	snprintf(cfg, sizeof(cfg),
		 "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Env\":[\"A=1\"],"
		 "\"Cmd\":[\"sh\"],\"WorkingDir\":\"/w\"},\"rootfs\":{\"type\":\"layers\","
		 "\"diff_ids\":[\"sha256:%s\",\"sha256:%s\"]}}",
		 l1.hex, l2.hex);
	make_image(&rec, "docker.io/library/img:1", "m", cfg, &l1);
	rec.layers = xreallocarray(rec.layers, 2, sizeof(*rec.layers));
	rec.layers[1] = rec.layers[0];
	rec.layers[1].media_type = xstrdup(rec.layers[0].media_type);
	rec.layers[1].diff_id = l2;
	rec.n_layers = 2;
	assert_int_equal(ic_store_blob_put(f->s, &rec.digest, "m", 1, &err), 0);
	assert_int_equal(ic_store_blob_put(f->s, &rec.config, cfg, strlen(cfg), &err), 0);
	assert_int_equal(ic_store_image_put(f->s, &rec, &err), 0);
	fake_layer(f, &l1, "bottom");

	/* a missing layer is an error naming it, not a VM without its rootfs */
	assert_int_equal(ic_image_open(f->dir, "img:1", false, &img, &err), -1);
	assert_non_null(strstr(err->msg, "layer 2"));
	kal_err_clear(&err);

	fake_layer(f, &l2, "top");
	assert_int_equal(ic_image_open(f->dir, "img:1", true, &img, &err), 0);
	assert_string_equal(img->name, "docker.io/library/img:1");
	assert_int_equal(img->n_layers, 2);
	p2 = ic_store_layer_path(f->s, &l2);
	assert_string_equal(img->layer_paths[1], p2);
	assert_int_equal(img->layer_sizes[1], 3);
	assert_string_equal(img->config.cmd[0], "sh");
	assert_string_equal(img->config.working_dir, "/w");
	ic_image_free(img);

	/* verify rehashes: a changed byte is refused */
	assert_int_equal(kal_atomic_write_file(p2, "tap", 3, 0444, NULL), 0);
	assert_int_equal(ic_image_open(f->dir, "img:1", false, &img, &err), 0);
	ic_image_free(img);
	assert_int_equal(ic_image_open(f->dir, "img:1", true, &img, &err), -1);
	assert_non_null(strstr(err->msg, "corrupt"));
	kal_err_clear(&err);

	assert_int_equal(ic_image_open(f->dir, "other", false, &img, &err), -1);
	assert_string_equal(err->msg,
			    "image `other` not found in the cache (pull it with `kal pull other`)");
	kal_err_clear(&err);
	ic_store_image_clear(&rec);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_blob_put_verifies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blob_ingest_size_and_digest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_blob_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_locks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_temps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_image_records_and_resolve, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_finds_corruption, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prune_reachability, setup, teardown),
		cmocka_unit_test_setup_teardown(test_layer_sidecar_must_agree, setup, teardown),
		cmocka_unit_test_setup_teardown(test_image_open, setup, teardown),
	};

	return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
