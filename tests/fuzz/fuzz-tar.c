// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target F6 (reliability.md 3.1): raw bytes, sniffed as gzip, zstd
 * or plain tar, through the whole layer converter into an in-memory EROFS
 * image.  Pass criteria: no sanitizer report, bounded memory (the byte cap is
 * lowered to 64 MiB here), and a successful conversion always yields an image
 * with the EROFS magic, 2 MiB alignment and a root inode.
 */
#include <endian.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "imagecache/erofs.h"
#include "imagecache/layer.h"
#include "lib/err.h"
#include "lib/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	setenv("KAL_MAX_LAYER_BYTES", "67108864", 1);
	setenv("KAL_MAX_LAYER_ENTRIES", "20000", 1);
	kal_log_set_level(KAL_LOG_ERROR);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int in = memfd_create("fuzz-in", MFD_CLOEXEC), out = memfd_create("fuzz-out", MFD_CLOEXEC);
	struct ic_layer_result res;
	struct kal_err *err = NULL;
	struct stat st;

	if (in < 0 || out < 0)
		abort();
	if (size && write(in, data, size) != (ssize_t)size)
		abort();
	lseek(in, 0, SEEK_SET);
	if (ic_layer_convert(in, ic_layer_sniff(data, size), out, &res, &err) == 0) {
		struct ic_erofs_super sb;

		if (fstat(out, &st) < 0 || (uint64_t)st.st_size != res.image_bytes ||
		    st.st_size % IC_EROFS_ALIGN)
			abort();
		if (pread(out, &sb, sizeof(sb), IC_EROFS_SUPER_OFFSET) != sizeof(sb) ||
		    le32toh(sb.magic) != IC_EROFS_MAGIC || sb.root_nid == 0)
			abort();
	} else if (!err || !err->msg || strncmp(err->msg, "layer: ", 7) != 0) {
		abort(); /* every failure is a clear "layer: ..." error */
	}
	kal_err_free(err);
	close(in);
	close(out);
	return 0;
}
