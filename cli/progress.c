// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Per-layer progress lines for kal pull.  Worker threads only update counters
 * under a mutex; one drawing thread repaints the block of lines in place
 * (cursor up + erase line) every 100 ms when something changed, so a fast
 * download does not flood the terminal.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../lib/xalloc.h"
#include "progress.h"
#include "util.h"

struct prog_layer {
	char id[13];
	enum ic_pull_state st;
	uint64_t done, total;
};

struct kal_progress {
	FILE *out;
	bool enabled;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	bool thread_started, stop, dirty;
	struct prog_layer *layers;
	size_t n;
	int drawn; /* lines currently on screen */
	struct timespec t0;
};

static double now_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static const char *state_name(enum ic_pull_state st)
{
	switch (st) {
	case IC_PULL_WAITING:
		return "waiting";
	case IC_PULL_DOWNLOADING:
		return "downloading";
	case IC_PULL_CONVERTING:
		return "converting";
	case IC_PULL_DONE:
		return "done";
	case IC_PULL_CACHED:
		return "cached";
	case IC_PULL_FAILED:
		return "failed";
	}
	return "?";
}

/* Caller holds the lock. */
static void draw(struct kal_progress *p)
{
	uint64_t done = 0, total = 0;
	char a[32], b[32], r[32];
	double secs = now_since(&p->t0);

	if (p->drawn)
		fprintf(p->out, "\033[%dA", p->drawn);
	for (size_t i = 0; i < p->n; i++) {
		struct prog_layer *l = &p->layers[i];

		kal_format_size(l->done, a, sizeof(a));
		kal_format_size(l->total, b, sizeof(b));
		fprintf(p->out, "\033[2K%s  %-11s  %s / %s\n", l->id, state_name(l->st), a, b);
		if (l->st != IC_PULL_CACHED) {
			done += l->done;
			total += l->total;
		}
	}
	kal_format_size(done, a, sizeof(a));
	kal_format_size(total, b, sizeof(b));
	kal_format_size(secs > 0.05 ? (uint64_t)((double)done / secs) : 0, r, sizeof(r));
	fprintf(p->out, "\033[2Ktotal         %s / %s  %s/s\n", a, b, r);
	fflush(p->out);
	p->drawn = (int)p->n + 1;
	p->dirty = false;
}

static void *draw_thread(void *arg)
{
	struct kal_progress *p = arg;

	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		struct timespec until;

		if (p->dirty)
			draw(p);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += 100 * 1000 * 1000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&p->cond, &p->lock, &until);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

struct kal_progress *kal_progress_new(FILE *out, bool enabled)
{
	struct kal_progress *p = xzalloc(sizeof(*p));

	p->out = out;
	p->enabled = enabled;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	clock_gettime(CLOCK_MONOTONIC, &p->t0);
	return p;
}

static void on_start(void *arg, size_t n, const struct ic_store_layer *layers)
{
	struct kal_progress *p = arg;

	if (!p->enabled)
		return;
	pthread_mutex_lock(&p->lock);
	free(p->layers);
	p->layers = xcalloc(n ? n : 1, sizeof(*p->layers));
	p->n = n;
	for (size_t i = 0; i < n; i++) {
		memcpy(p->layers[i].id, layers[i].digest.hex, 12);
		p->layers[i].total = layers[i].size;
	}
	p->dirty = true;
	if (!p->thread_started && pthread_create(&p->thread, NULL, draw_thread, p) == 0)
		p->thread_started = true;
	pthread_mutex_unlock(&p->lock);
}

static void on_layer(void *arg, size_t i, enum ic_pull_state st, uint64_t done, uint64_t total)
{
	struct kal_progress *p = arg;

	if (!p->enabled)
		return;
	pthread_mutex_lock(&p->lock);
	if (i < p->n) {
		p->layers[i].st = st;
		p->layers[i].done = done;
		p->layers[i].total = total;
		p->dirty = true;
	}
	pthread_mutex_unlock(&p->lock);
}

const struct ic_pull_progress kal_progress_ops = {
	.start = on_start,
	.layer = on_layer,
};

void kal_progress_finish(struct kal_progress *p)
{
	if (!p || !p->thread_started)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	p->thread_started = false;
	pthread_mutex_lock(&p->lock);
	draw(p);
	pthread_mutex_unlock(&p->lock);
}

void kal_progress_free(struct kal_progress *p)
{
	if (!p)
		return;
	kal_progress_finish(p);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p->layers);
	free(p);
}
