// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kal __convert [--gzip|--zstd|--auto] IN.tar OUT.erofs: hidden command that
 * runs the layer converter on a file, for tests and bench/convert.  Prints
 * the diff_id, sizes, entry count and the image digest, one `key: value` per line.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../imagecache/layer.h"
#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "cmd.h"

enum { OPT_GZIP = 0x100, OPT_ZSTD, OPT_AUTO, OPT_PLAIN };

static const struct kal_opt convert_opts[] = {
	{ "gzip", 0, NULL, "the input is gzip-compressed", OPT_GZIP },
	{ "zstd", 0, NULL, "the input is zstd-compressed", OPT_ZSTD },
	{ "plain", 0, NULL, "the input is an uncompressed tar", OPT_PLAIN },
	{ "auto", 0, NULL, "guess the compression from the first bytes (default)", OPT_AUTO },
	{ 0 },
};

static int convert_exec(struct kal_ctx *ctx, int argc, char **argv, struct kal_err **err)
{
	enum ic_compression comp = IC_COMP_NONE;
	struct ic_layer_result res;
	_cleanup_close_ int in = -1, out = -1;
	char d1[IC_DIGEST_STR_LEN + 1], d2[IC_DIGEST_STR_LEN + 1];
	const char *arg;
	bool autodetect = true;
	int c;

	(void)ctx;
	while ((c = kal_cmd_getopt(&kal_cmd_convert, argc, argv, &arg, err)) != -1) {
		switch (c) {
		case OPT_GZIP:
			comp = IC_COMP_GZIP;
			autodetect = false;
			break;
		case OPT_ZSTD:
			comp = IC_COMP_ZSTD;
			autodetect = false;
			break;
		case OPT_PLAIN:
			comp = IC_COMP_NONE;
			autodetect = false;
			break;
		case OPT_AUTO:
			autodetect = true;
			break;
		default:
			return -1;
		}
	}
	if (argc - kal_cmd_optind != 2)
		return kal_cmd_usage_error(&kal_cmd_convert, err, "requires exactly 2 arguments");
	in = open(argv[kal_cmd_optind], O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return kal_err_sys(err, errno, "open `%s`", argv[kal_cmd_optind]);
	if (autodetect) {
		unsigned char head[4];
		ssize_t n = pread(in, head, sizeof(head), 0);

		comp = ic_layer_sniff(head, n > 0 ? (size_t)n : 0);
	}
	out = open(argv[kal_cmd_optind + 1], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0)
		return kal_err_sys(err, errno, "create `%s`", argv[kal_cmd_optind + 1]);
	if (ic_layer_convert(in, comp, out, &res, err) < 0) {
		unlink(argv[kal_cmd_optind + 1]);
		return -1;
	}
	printf("diff_id: %s\n", ic_digest_str(&res.diff_id, d1));
	printf("tar_bytes: %llu\n", (unsigned long long)res.tar_bytes);
	printf("entries: %llu\n", (unsigned long long)res.entries);
	printf("image_bytes: %llu\n", (unsigned long long)res.image_bytes);
	printf("erofs_digest: %s\n", ic_digest_str(&res.erofs_digest, d2));
	return 0;
}

const struct kal_cmd kal_cmd_convert = {
	.name = "__convert",
	.summary = "convert one layer tar into an EROFS image (testing)",
	.usage = "[--gzip|--zstd|--plain|--auto] IN.tar OUT.erofs",
	.description = "Run the layer converter on a local file and print the diff_id, the "
		       "uncompressed size, the entry count, the image size and the image digest.",
	.opts = convert_opts,
	.args = KAL_ARG_FILE,
	.flags = KAL_CMD_HIDDEN,
	.exec = convert_exec,
};
