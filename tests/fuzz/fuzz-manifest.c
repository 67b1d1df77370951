// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target for the JSON document parsers (reliability.md F7): the
 * first byte picks the parser and the transport media type, the rest is the
 * document.  Parsed results are walked (and an index is used for platform
 * selection) so that bad pointers or lengths show up under ASan.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imagecache/manifest.h"
#include "lib/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const media_types[] = {
	IC_MT_OCI_MANIFEST,
	IC_MT_DOCKER_MANIFEST,
	IC_MT_OCI_INDEX,
	IC_MT_DOCKER_LIST,
	NULL,
	"application/vnd.docker.distribution.manifest.v1+prettyjws",
	"text/plain",
};
static const char *const platforms[] = { NULL, "linux/arm64", "linux/arm/v6", "linux/amd64/v3" };

static size_t walk_str(const char *s)
{
	return s ? strlen(s) : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kal_err *err = NULL;
	const char *mt;
	const char *doc;
	uint8_t sel;
	volatile size_t sink = 0;

	if (size < 1)
		return 0;
	sel = data[0];
	doc = (const char *)data + 1;
	size--;
	mt = media_types[(sel >> 2) % (sizeof(media_types) / sizeof(media_types[0]))];

	switch (sel & 3) {
	case 0: {
		struct ic_manifest m;

		if (ic_manifest_parse(doc, size, mt, &m, &err) == 0) {
			sink += walk_str(m.media_type) + walk_str(m.config.media_type);
			for (size_t i = 0; i < m.n_layers; i++) {
				enum ic_compression c;

				sink += walk_str(m.layers[i].media_type) + m.layers[i].size;
				if (ic_layer_compression(m.layers[i].media_type, &c, NULL) != 0)
					abort(); /* the parser promised a known layer type */
			}
			ic_manifest_free(&m);
		}
		break;
	}
	case 1: {
		struct ic_index idx;

		if (ic_index_parse(doc, size, mt, &idx, &err) == 0) {
			const struct ic_descriptor *d;

			for (size_t i = 0; i < idx.n; i++)
				sink += walk_str(idx.manifests[i].platform.os) +
					walk_str(idx.manifests[i].platform.variant);
			if (ic_index_select(&idx, platforms[(sel >> 5) & 3], &d, &err) == 0)
				sink += d->size;
			ic_index_free(&idx);
		}
		break;
	}
	default: {
		struct ic_config c;

		if (ic_config_parse(doc, size, &c, &err) == 0) {
			for (char **p = c.env; p && *p; p++)
				sink += strlen(*p);
			for (char **p = c.cmd; p && *p; p++)
				sink += strlen(*p);
			sink += walk_str(c.working_dir) + walk_str(c.user) + c.n_diff_ids;
			ic_config_free(&c);
		}
		break;
	}
	}
	kal_err_free(err);
	(void)sink;
	return 0;
}
