// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kal pull, minus the terminal: resolve, fetch, verify, convert, publish.
 * Layers run on a small worker pool (IC_PULL_PARALLEL); each worker holds the
 * per-layer lock while it downloads and converts, so two kal processes
 * pulling images that share a layer convert it once, and the second one finds
 * it present when its lock is granted.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "../lib/xalloc.h"
#include "manifest.h"
#include "pull.h"
#include "ref.h"
#include "registry.h"
#include "store.h"

char *ic_platform_string(const struct ic_platform *p)
{
	if (!p->os || !p->arch)
		return NULL;
	if (p->variant)
		return xasprintf("%s/%s/%s", p->os, p->arch, p->variant);
	return xasprintf("%s/%s", p->os, p->arch);
}

void ic_pull_result_clear(struct ic_pull_result *res)
{
	free(res->name);
	memset(res, 0, sizeof(*res));
}

struct pull_job {
	struct ic_store *store;
	struct ic_registry *reg;
	const char *repo;
	const struct ic_pull_opts *opts;
	struct ic_store_layer *layers;
	enum ic_compression *comp;
	bool *missing; /* missing[i]: layer i is not in the cache yet: fetch and convert it */
	size_t n;

	pthread_mutex_t lock;
	size_t next;
	bool cancel;
	size_t err_layer; /* index of the first failing layer (lowest), SIZE_MAX = none */
	struct kal_err *err;
	uint64_t downloaded;
	size_t converted;
};

struct layer_cb {
	struct pull_job *job;
	size_t i;
};

static void notify(struct pull_job *job, size_t i, enum ic_pull_state st, uint64_t done,
		   uint64_t total)
{
	if (job->opts->progress && job->opts->progress->layer)
		job->opts->progress->layer(job->opts->progress_arg, i, st, done, total);
}

static void on_bytes(void *arg, uint64_t done, uint64_t total)
{
	struct layer_cb *cb = arg;

	notify(cb->job, cb->i, IC_PULL_DOWNLOADING, done, total);
}

/* Download layer i into an unnamed temp file, verify it, convert and publish. */
static int pull_layer(struct pull_job *job, size_t i, bool *converted, struct kal_err **err)
{
	struct ic_store_layer *l = &job->layers[i];
	_cleanup_close_ int lock = -1, fd = -1;
	struct ic_store_layer_info info;
	struct layer_cb cb = { job, i };
	struct ic_digest got;
	unsigned long long size;
	char w[IC_DIGEST_STR_LEN + 1], g[IC_DIGEST_STR_LEN + 1];

	*converted = false;
	lock = ic_store_layer_lock(job->store, &l->diff_id, err);
	if (lock < 0)
		return -1;
	/* another kal published it while we waited for the lock */
	if (ic_store_layer_has(job->store, &l->diff_id, &info)) {
		l->erofs_size = info.size;
		return 0;
	}
	fd = ic_store_tmpfile(job->store, err);
	if (fd < 0)
		return -1;
	notify(job, i, IC_PULL_DOWNLOADING, 0, l->size);
	if (ic_registry_get_blob(job->reg, job->repo, &l->digest, l->size, fd, on_bytes, &cb, err) <
	    0)
		return -1;
	/* the registry client verified the stream; check the bytes that landed on disk */
	if (lseek(fd, 0, SEEK_SET) < 0)
		return kal_err_sys(err, errno, "seek");
	if (ic_digest_fd(fd, &got, &size, err) < 0)
		return -1;
	if (size != l->size)
		return kal_err_set(err, EIO, "size mismatch (want %llu, got %llu)",
				   (unsigned long long)l->size, size);
	if (!ic_digest_equal(&got, &l->digest))
		return kal_err_set(err, EIO, "digest mismatch (want %s, got %s)",
				   ic_digest_str(&l->digest, w), ic_digest_str(&got, g));
	if (lseek(fd, 0, SEEK_SET) < 0)
		return kal_err_sys(err, errno, "seek");
	notify(job, i, IC_PULL_CONVERTING, l->size, l->size);
	if (ic_store_layer_ingest(job->store, fd, job->comp[i], &l->diff_id, &info, err) < 0)
		return -1;
	l->erofs_size = info.size;
	*converted = true;
	return 0;
}

static void *pull_worker(void *arg)
{
	struct pull_job *job = arg;

	for (;;) {
		struct kal_err *e = NULL;
		bool converted;
		size_t i;

		pthread_mutex_lock(&job->lock);
		while (job->next < job->n && !job->missing[job->next])
			job->next++;
		if (job->cancel || job->next >= job->n) {
			pthread_mutex_unlock(&job->lock);
			return NULL;
		}
		i = job->next++;
		pthread_mutex_unlock(&job->lock);

		if (pull_layer(job, i, &converted, &e) < 0) {
			kal_err_wrap(&e, "layer %zu", i + 1);
			notify(job, i, IC_PULL_FAILED, 0, job->layers[i].size);
			pthread_mutex_lock(&job->lock);
			job->cancel = true;
			if (i < job->err_layer) {
				kal_err_free(job->err);
				job->err = e;
				job->err_layer = i;
			} else {
				kal_err_free(e);
			}
			pthread_mutex_unlock(&job->lock);
			return NULL;
		}
		pthread_mutex_lock(&job->lock);
		if (converted) {
			job->downloaded += job->layers[i].size;
			job->converted++;
		}
		pthread_mutex_unlock(&job->lock);
		notify(job, i, IC_PULL_DONE, job->layers[i].size, job->layers[i].size);
	}
}

static int run_layers(struct pull_job *job, struct kal_err **err)
{
	pthread_t th[IC_PULL_PARALLEL];
	size_t want = 0, started = 0;

	for (size_t i = 0; i < job->n; i++)
		want += job->missing[i];
	if (want > IC_PULL_PARALLEL)
		want = IC_PULL_PARALLEL;
	pthread_mutex_init(&job->lock, NULL);
	job->err_layer = SIZE_MAX;
	for (size_t t = 0; t < want; t++) {
		if (pthread_create(&th[t], NULL, pull_worker, job) != 0)
			break;
		started++;
	}
	if (want && !started)
		pull_worker(job); /* no thread to be had: do the work here */
	for (size_t t = 0; t < started; t++)
		pthread_join(th[t], NULL);
	pthread_mutex_destroy(&job->lock);
	if (job->err) {
		*err = job->err;
		job->err = NULL;
		return -1;
	}
	return 0;
}

/* Fetch the manifest named by desc (from the store when it is there). */
static int fetch_manifest_by_digest(struct ic_store *s, struct ic_registry *reg, const char *repo,
				    const struct ic_descriptor *desc, char **body, size_t *len,
				    char **mt, struct kal_err **err)
{
	struct ic_digest got;
	char ds[IC_DIGEST_STR_LEN + 1];
	enum ic_doc_kind kind;

	ic_digest_str(&desc->digest, ds);
	if (desc->size > IC_MAX_MANIFEST_SIZE)
		return kal_err_set(err, EFBIG, "manifest %s: %llu bytes is over the %u byte limit",
				   ds, (unsigned long long)desc->size, IC_MAX_MANIFEST_SIZE);
	if (ic_doc_kind_of(desc->media_type, &kind, err) < 0)
		return kal_err_wrap(err, "manifest %s", ds);
	if (kind != IC_DOC_MANIFEST)
		return kal_err_set(err, EINVAL, "manifest %s: index entry points to an index", ds);
	if (ic_store_blob_has(s, &desc->digest)) {
		if (ic_store_blob_read(s, &desc->digest, IC_MAX_MANIFEST_SIZE, body, len, err) < 0)
			return -1;
		*mt = xstrdup(desc->media_type);
		return 0;
	}
	if (ic_registry_get_manifest(reg, repo, ds, body, len, mt, &got, err) < 0)
		return -1;
	if (!ic_digest_equal(&got, &desc->digest)) {
		char g[IC_DIGEST_STR_LEN + 1];

		return kal_err_set(err, EIO, "manifest: digest mismatch (want %s, got %s)", ds,
				   ic_digest_str(&got, g));
	}
	if (*len != desc->size)
		return kal_err_set(err, EIO, "manifest %s: size mismatch (want %llu, got %zu)", ds,
				   (unsigned long long)desc->size, *len);
	if (strcmp(*mt, desc->media_type))
		return kal_err_set(err, EINVAL,
				   "manifest %s: media type `%s` differs from the index's `%s`", ds,
				   *mt, desc->media_type);
	return 0;
}

static int fetch_config(struct ic_store *s, struct ic_registry *reg, const char *repo,
			const struct ic_descriptor *desc, struct ic_config *cfg,
			struct kal_err **err)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;

	if (desc->size > IC_MAX_CONFIG_SIZE)
		return kal_err_set(err, EFBIG, "config: %llu bytes is over the %u byte limit",
				   (unsigned long long)desc->size, IC_MAX_CONFIG_SIZE);
	if (!ic_store_blob_has(s, &desc->digest)) {
		struct ic_store_ingest in;

		if (ic_store_blob_begin(s, &desc->digest, desc->size, &in, err) < 0)
			return -1;
		if (ic_registry_get_blob(reg, repo, &desc->digest, desc->size, in.fd, NULL, NULL,
					 err) < 0) {
			ic_store_blob_abort(&in);
			return kal_err_wrap(err, "config");
		}
		if (ic_store_blob_commit(s, &in, err) < 0)
			return kal_err_wrap(err, "config");
	}
	if (ic_store_blob_read(s, &desc->digest, IC_MAX_CONFIG_SIZE, &buf, &len, err) < 0)
		return kal_err_wrap(err, "config");
	if (ic_config_parse(buf, len, cfg, err) < 0)
		return -1; /* its messages start with "config: " */
	return 0;
}

static void fill_result(struct ic_pull_result *res, const struct ic_store_image *img)
{
	res->name = xstrdup(img->name);
	res->digest = img->digest;
	res->n_layers = img->n_layers;
	res->erofs_bytes = 0;
	for (size_t i = 0; i < img->n_layers; i++)
		res->erofs_bytes += img->layers[i].erofs_size;
}

static void announce_cached(const struct ic_pull_opts *opts, const struct ic_store_image *img)
{
	if (!opts->progress)
		return;
	if (opts->progress->start)
		opts->progress->start(opts->progress_arg, img->n_layers, img->layers);
	for (size_t i = 0; opts->progress->layer && i < img->n_layers; i++)
		opts->progress->layer(opts->progress_arg, i, IC_PULL_CACHED, img->layers[i].size,
				      img->layers[i].size);
}

struct pull_state {
	struct ic_ref ref;
	char *name;
	struct ic_store *store;
	struct ic_registry *reg;
	struct ic_store_image old;
	bool have_old;
	char *body, *mt, *index_body;
	size_t len, index_len;
	struct ic_index idx;
	struct ic_manifest m;
	struct ic_config cfg;
	struct ic_store_image img;
	enum ic_compression *comp;
	bool *missing; /* missing[i]: layer i is not in the cache yet: fetch and convert it */
};

static void pull_state_free(struct pull_state *ps)
{
	ic_ref_free(&ps->ref);
	free(ps->name);
	if (ps->reg)
		ic_registry_free(ps->reg);
	ic_store_close(ps->store);
	ic_store_image_clear(&ps->old);
	free(ps->body);
	free(ps->mt);
	free(ps->index_body);
	ic_index_free(&ps->idx);
	ic_manifest_free(&ps->m);
	ic_config_free(&ps->cfg);
	ic_store_image_clear(&ps->img);
	free(ps->comp);
	free(ps->missing);
}

static int do_pull(struct pull_state *ps, const char *home, const char *refstr,
		   const struct ic_pull_opts *opts, struct ic_pull_result *res,
		   struct kal_err **err)
{
	struct ic_registry_opts ropts = { .insecure = opts->insecure };
	struct ic_digest top, mdigest;
	enum ic_doc_kind kind;
	char ds[IC_DIGEST_STR_LEN + 1];
	const char *reference;
	struct kal_err *e = NULL;
	struct pull_job job = { 0 };
	bool has_index = false;
	size_t n;

	if (ic_ref_parse(refstr, &ps->ref, err) < 0)
		return -1;
	ps->name = ic_ref_string(&ps->ref);
	if (ic_store_open(home, &ps->store, err) < 0)
		return -1;
	if (ic_store_lock_shared(ps->store, err) < 0)
		return -1;
	if (ic_store_image_get(ps->store, ps->name, &ps->old, &e) == 0) {
		ps->have_old = true;
	} else if (e->code != ENOENT) {
		*err = e;
		return -1;
	} else {
		kal_err_clear(&e);
	}

	if (opts->offline) {
		if (!ps->have_old)
			return kal_err_set(err, ENOENT, "`%s` is not in the cache (--offline)",
					   ps->name);
		if (!ic_store_image_complete(ps->store, &ps->old))
			return kal_err_set(err, ENOENT,
					   "`%s` is incomplete in the cache (--offline): pull it "
					   "without --offline",
					   ps->name);
		announce_cached(opts, &ps->old);
		fill_result(res, &ps->old);
		res->up_to_date = true;
		return 0;
	}

	/* a digest names immutable content: when it is cached there is nothing to ask */
	if (ps->ref.has_digest && ps->have_old &&
	    (ic_digest_equal(&ps->old.digest, &ps->ref.digest) ||
	     (ps->old.has_index && ic_digest_equal(&ps->old.index, &ps->ref.digest) &&
	      !opts->platform)) &&
	    ic_store_image_complete(ps->store, &ps->old))
		goto up_to_date;

	ps->reg = ic_registry_new(ps->ref.domain, &ropts, err);
	if (!ps->reg)
		return -1;
	reference = ps->ref.has_digest ? ic_digest_str(&ps->ref.digest, ds) : ps->ref.tag;
	if (ic_registry_get_manifest(ps->reg, ps->ref.repo, reference, &ps->body, &ps->len, &ps->mt,
				     &top, err) < 0)
		return -1;
	if (ic_doc_kind_of(ps->mt, &kind, err) < 0)
		return kal_err_wrap(err, "manifest");
	mdigest = top;
	if (kind == IC_DOC_INDEX) {
		const struct ic_descriptor *desc;

		if (ic_index_parse(ps->body, ps->len, ps->mt, &ps->idx, err) < 0)
			return -1;
		if (ic_index_select(&ps->idx, opts->platform, &desc, err) < 0)
			return -1;
		has_index = true;
		mdigest = desc->digest;
		ps->index_body = steal_ptr(&ps->body);
		ps->index_len = ps->len;
		free(ps->mt);
		ps->mt = NULL;
		/* unchanged image: the one request above is all a re-pull costs */
		if (ps->have_old && ic_digest_equal(&ps->old.digest, &mdigest) &&
		    ic_store_image_complete(ps->store, &ps->old))
			goto up_to_date;
		if (fetch_manifest_by_digest(ps->store, ps->reg, ps->ref.repo, desc, &ps->body,
					     &ps->len, &ps->mt, err) < 0)
			return -1;
	} else if (ps->have_old && ic_digest_equal(&ps->old.digest, &mdigest) &&
		   ic_store_image_complete(ps->store, &ps->old)) {
		goto up_to_date;
	}

	if (ic_manifest_parse(ps->body, ps->len, ps->mt, &ps->m, err) < 0)
		return -1;
	n = ps->m.n_layers;
	ps->comp = xcalloc(n ? n : 1, sizeof(*ps->comp));
	ps->missing = xcalloc(n ? n : 1, sizeof(*ps->missing));
	/* refuse unknown layer types before anything is downloaded */
	for (size_t i = 0; i < n; i++)
		if (ic_layer_compression(ps->m.layers[i].media_type, &ps->comp[i], err) < 0)
			return kal_err_wrap(err, "layer %zu", i + 1);
	if (fetch_config(ps->store, ps->reg, ps->ref.repo, &ps->m.config, &ps->cfg, err) < 0)
		return -1;
	if (ps->cfg.n_diff_ids != n)
		return kal_err_set(
		    err, EINVAL, "config lists %zu diff_id%s but the manifest has %zu layer%s",
		    ps->cfg.n_diff_ids, ps->cfg.n_diff_ids == 1 ? "" : "s", n, n == 1 ? "" : "s");
	if (has_index && ic_store_blob_put(ps->store, &top, ps->index_body, ps->index_len, err) < 0)
		return kal_err_wrap(err, "index");
	if (ic_store_blob_put(ps->store, &mdigest, ps->body, ps->len, err) < 0)
		return kal_err_wrap(err, "manifest");

	ps->img.name = xstrdup(ps->name);
	ps->img.digest = mdigest;
	ps->img.has_index = has_index;
	ps->img.index = top;
	ps->img.media_type = xstrdup(ps->mt);
	ps->img.config = ps->m.config.digest;
	ps->img.platform = ic_platform_string(&ps->cfg.platform);
	ps->img.created = (int64_t)time(NULL);
	ps->img.layers = xcalloc(n ? n : 1, sizeof(*ps->img.layers));
	ps->img.n_layers = n;
	for (size_t i = 0; i < n; i++) {
		struct ic_store_layer *l = &ps->img.layers[i];
		struct ic_store_layer_info info;

		l->digest = ps->m.layers[i].digest;
		l->diff_id = ps->cfg.diff_ids[i];
		l->media_type = xstrdup(ps->m.layers[i].media_type);
		l->size = ps->m.layers[i].size;
		if (ic_store_layer_has(ps->store, &l->diff_id, &info))
			l->erofs_size = info.size;
		else
			ps->missing[i] = true;
	}
	if (opts->progress && opts->progress->start)
		opts->progress->start(opts->progress_arg, n, ps->img.layers);
	for (size_t i = 0; i < n; i++)
		if (!ps->missing[i])
			notify(&(struct pull_job){ .opts = opts }, i, IC_PULL_CACHED,
			       ps->img.layers[i].size, ps->img.layers[i].size);
		else
			notify(&(struct pull_job){ .opts = opts }, i, IC_PULL_WAITING, 0,
			       ps->img.layers[i].size);

	job.store = ps->store;
	job.reg = ps->reg;
	job.repo = ps->ref.repo;
	job.opts = opts;
	job.layers = ps->img.layers;
	job.comp = ps->comp;
	job.missing = ps->missing;
	job.n = n;
	if (run_layers(&job, err) < 0)
		return -1;

	/* the record goes last: the image exists only once everything it names does */
	if (ic_store_image_put(ps->store, &ps->img, err) < 0)
		return -1;
	fill_result(res, &ps->img);
	res->layers_converted = job.converted;
	res->bytes_downloaded = job.downloaded;
	res->up_to_date =
	    job.converted == 0 && ps->have_old && ic_digest_equal(&ps->old.digest, &mdigest);
	return 0;

up_to_date:
	announce_cached(opts, &ps->old);
	fill_result(res, &ps->old);
	res->up_to_date = true;
	return 0;
}

int ic_pull(const char *home, const char *ref, const struct ic_pull_opts *opts,
	    struct ic_pull_result *res, struct kal_err **err)
{
	struct pull_state ps = { 0 };
	int rc;

	memset(res, 0, sizeof(*res));
	rc = do_pull(&ps, home, ref, opts, res, err);
	pull_state_free(&ps);
	if (rc < 0)
		ic_pull_result_clear(res);
	return rc;
}
