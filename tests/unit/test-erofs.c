// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests for the layer converter and EROFS writer: small tars built in
 * memory with libarchive's write API are converted, and a minimal EROFS
 * reader in this file checks the result (superblock and its crc32c, root
 * inode, path lookup through sorted dirents, block-aligned file data, 2 MiB
 * padding, whiteouts, xattrs) plus the exact errors for bad inputs.
 */
#include <archive.h>
#include <archive_entry.h>
#include <endian.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "imagecache/erofs.h"
#include "imagecache/layer.h"
#include "imagecache/tar.h"
#include "lib/err.h"
#include "lib/xalloc.h"

/* the entry tables below leave trailing fields to their zero defaults */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

/* ---- building tars ---- */

struct tent {
	const char *name;
	unsigned type; /* AE_IF*; 0 ends the list */
	unsigned mode;
	const char *data; /* file content, symlink or hardlink target */
	int64_t uid;
	int64_t mtime;
	const char *xname, *xvalue; /* one xattr */
	unsigned rmajor, rminor;
	int hardlink;
};

static size_t build_tar(const struct tent *ents, char *buf, size_t cap)
{
	struct archive *a = archive_write_new();
	size_t used = 0;

	assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
	assert_int_equal(archive_write_open_memory(a, buf, cap, &used), ARCHIVE_OK);
	for (const struct tent *e = ents; e->type; e++) {
		struct archive_entry *ae = archive_entry_new();

		archive_entry_set_pathname(ae, e->name);
		archive_entry_set_filetype(ae, e->type);
		archive_entry_set_perm(ae, e->mode ? e->mode : 0644);
		archive_entry_set_uid(ae, e->uid);
		archive_entry_set_mtime(ae, e->mtime ? e->mtime : 1700000000, 0);
		if (e->xname)
			archive_entry_xattr_add_entry(ae, e->xname, e->xvalue, strlen(e->xvalue));
		if (e->hardlink) {
			archive_entry_set_hardlink(ae, e->data);
			archive_entry_set_size(ae, 0);
		} else if (e->type == AE_IFLNK) {
			archive_entry_set_symlink(ae, e->data);
		} else if (e->type == AE_IFCHR || e->type == AE_IFBLK) {
			archive_entry_set_rdevmajor(ae, e->rmajor);
			archive_entry_set_rdevminor(ae, e->rminor);
		} else if (e->type == AE_IFREG) {
			archive_entry_set_size(ae, e->data ? (la_int64_t)strlen(e->data) : 0);
		}
		assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
		if (e->type == AE_IFREG && e->data && !e->hardlink)
			assert_int_equal(archive_write_data(a, e->data, strlen(e->data)),
					 (la_ssize_t)strlen(e->data));
		archive_entry_free(ae);
	}
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	return used;
}

static int memfd_with(const void *buf, size_t len)
{
	int fd = memfd_create("tar", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

struct image {
	uint8_t *p;
	size_t len;
	struct ic_layer_result res;
};

/* Convert; returns 0 with img mapped, or -1 with *msg set (caller frees). */
static int convert_buf(const void *tar, size_t len, enum ic_compression comp, struct image *img,
		       char **msg)
{
	struct kal_err *err = NULL;
	int in = memfd_with(tar, len), out = memfd_create("img", MFD_CLOEXEC);
	struct stat st;
	int rc = ic_layer_convert(in, comp, out, &img->res, &err);

	close(in);
	if (rc < 0) {
		assert_non_null(err);
		*msg = xstrdup(err->msg);
		kal_err_free(err);
		close(out);
		return -1;
	}
	assert_int_equal(fstat(out, &st), 0);
	img->len = (size_t)st.st_size;
	img->p = mmap(NULL, img->len, PROT_READ, MAP_PRIVATE, out, 0);
	assert_true(img->p != MAP_FAILED);
	close(out);
	return 0;
}

static void convert_ok(const struct tent *ents, struct image *img)
{
	static char tar[4 << 20];
	size_t len = build_tar(ents, tar, sizeof(tar));
	char *msg = NULL;

	if (convert_buf(tar, len, IC_COMP_NONE, img, &msg) < 0)
		fail_msg("convert failed: %s", msg);
}

static void convert_err(const struct tent *ents, const char *want)
{
	static char tar[4 << 20];
	size_t len = build_tar(ents, tar, sizeof(tar));
	struct image img;
	char *msg = NULL;

	assert_int_equal(convert_buf(tar, len, IC_COMP_NONE, &img, &msg), -1);
	assert_string_equal(msg, want);
	free(msg);
}

/* ---- a minimal EROFS reader ---- */

struct rinode {
	uint16_t format, mode;
	uint32_t nlink, uid, gid, iu, xcount;
	uint64_t size, mtime;
	size_t isize; /* core size */
	const uint8_t *base;
};

static const struct ic_erofs_super *sb_of(const struct image *img)
{
	return (const void *)(img->p + IC_EROFS_SUPER_OFFSET);
}

static void read_inode(const struct image *img, uint64_t nid, struct rinode *ri)
{
	const struct ic_erofs_super *sb = sb_of(img);
	size_t off = (size_t)le32toh(sb->meta_blkaddr) * IC_EROFS_BLKSIZE + nid * 32;
	const uint8_t *p = img->p + off;
	uint16_t fmt;

	assert_true(off + 64 <= img->len);
	memcpy(&fmt, p, 2);
	fmt = le16toh(fmt);
	memset(ri, 0, sizeof(*ri));
	ri->format = fmt;
	ri->base = p;
	if (fmt & 1) {
		struct ic_erofs_inode_extended e;

		memcpy(&e, p, sizeof(e));
		ri->mode = le16toh(e.i_mode);
		ri->nlink = le32toh(e.i_nlink);
		ri->uid = le32toh(e.i_uid);
		ri->gid = le32toh(e.i_gid);
		ri->size = le64toh(e.i_size);
		ri->iu = le32toh(e.i_u);
		ri->mtime = le64toh(e.i_mtime);
		ri->xcount = le16toh(e.i_xattr_icount);
		ri->isize = 64;
	} else {
		struct ic_erofs_inode_compact c;

		memcpy(&c, p, sizeof(c));
		ri->mode = le16toh(c.i_mode);
		ri->nlink = le16toh(c.i_nlink);
		ri->uid = le16toh(c.i_uid);
		ri->gid = le16toh(c.i_gid);
		ri->size = le32toh(c.i_size);
		ri->iu = le32toh(c.i_u);
		ri->mtime = le64toh(sb_of(img)->build_time);
		ri->xcount = le16toh(c.i_xattr_icount);
		ri->isize = 32;
	}
}

/* data of a FLAT_PLAIN inode, checking that it starts on a block boundary */
static const uint8_t *flat_data(const struct image *img, const struct rinode *ri)
{
	size_t off = (size_t)ri->iu * IC_EROFS_BLKSIZE;

	assert_int_equal((ri->format >> 1) & 7, IC_EROFS_FLAT_PLAIN);
	assert_int_equal(off % IC_EROFS_BLKSIZE, 0);
	assert_true(off + ri->size <= img->len);
	return img->p + off;
}

/* nid of name in directory dir, or 0; checks that dirents are sorted */
static uint64_t dir_lookup(const struct image *img, uint64_t dir, const char *name)
{
	struct rinode ri;
	const uint8_t *d;
	char prev[256] = "";

	read_inode(img, dir, &ri);
	if (!S_ISDIR(ri.mode))
		return 0;
	d = flat_data(img, &ri);
	for (uint64_t blk = 0; blk * IC_EROFS_BLKSIZE < ri.size; blk++) {
		const uint8_t *b = d + blk * IC_EROFS_BLKSIZE;
		struct ic_erofs_dirent de0;
		size_t maxsize = ri.size - blk * IC_EROFS_BLKSIZE, n;

		if (maxsize > IC_EROFS_BLKSIZE)
			maxsize = IC_EROFS_BLKSIZE;
		memcpy(&de0, b, sizeof(de0));
		n = le16toh(de0.nameoff) / sizeof(de0);
		for (size_t i = 0; i < n; i++) {
			struct ic_erofs_dirent de, nx;
			size_t off, end;
			char nm[256];

			memcpy(&de, b + i * sizeof(de), sizeof(de));
			off = le16toh(de.nameoff);
			if (i + 1 < n) {
				memcpy(&nx, b + (i + 1) * sizeof(nx), sizeof(nx));
				end = le16toh(nx.nameoff);
			} else {
				end = off + strnlen((const char *)b + off, maxsize - off);
			}
			assert_true(end > off && end - off <= 255);
			memcpy(nm, b + off, end - off);
			nm[end - off] = '\0';
			assert_true(strcmp(prev, nm) < 0);
			strcpy(prev, nm);
			if (strcmp(nm, name) == 0)
				return le64toh(de.nid);
		}
	}
	return 0;
}

static uint64_t path_lookup(const struct image *img, const char *path)
{
	char buf[512], *save = NULL;
	uint64_t nid = le16toh(sb_of(img)->root_nid);

	strcpy(buf, path);
	for (char *c = strtok_r(buf, "/", &save); c && nid; c = strtok_r(NULL, "/", &save))
		nid = dir_lookup(img, nid, c);
	return nid;
}

/* value of an inline xattr (index, suffix) or NULL */
static const char *xattr_get(const struct rinode *ri, uint8_t index, const char *name, size_t *vlen)
{
	size_t total, off;

	if (!ri->xcount)
		return NULL;
	total = 12 + 4 * (ri->xcount - 1);
	for (off = 12; off < total;) {
		struct ic_erofs_xattr_entry e;
		const uint8_t *p = ri->base + ri->isize + off;

		memcpy(&e, p, sizeof(e));
		if (e.e_name_index == index && e.e_name_len == strlen(name) &&
		    memcmp(p + 4, name, e.e_name_len) == 0) {
			*vlen = le16toh(e.e_value_size);
			return (const char *)p + 4 + e.e_name_len;
		}
		off += (4 + e.e_name_len + le16toh(e.e_value_size) + 3) & ~3u;
	}
	return NULL;
}

static void check_super(const struct image *img)
{
	const struct ic_erofs_super *sb = sb_of(img);
	uint8_t blk[IC_EROFS_BLKSIZE - IC_EROFS_SUPER_OFFSET];
	uint32_t want;

	assert_int_equal(le32toh(sb->magic), IC_EROFS_MAGIC);
	assert_int_equal(sb->blkszbits, 12);
	assert_int_equal(img->len % IC_EROFS_ALIGN, 0);
	assert_int_equal((uint64_t)le32toh(sb->blocks) * IC_EROFS_BLKSIZE, img->len);
	assert_int_equal(img->res.image_bytes, img->len);
	assert_true(le16toh(sb->root_nid) != 0);
	memcpy(blk, img->p + IC_EROFS_SUPER_OFFSET, sizeof(blk));
	want = le32toh(sb->checksum);
	memset(blk + 4, 0, 4);
	assert_int_equal(ic_erofs_crc32c(~0u, blk, sizeof(blk)), want);
}

static void image_free(struct image *img)
{
	munmap(img->p, img->len);
}

/* ---- tests ---- */

static void test_basic_tree(void **state)
{
	static const struct tent ents[] = {
		{ "./", AE_IFDIR, 0755 },
		{ "etc/", AE_IFDIR, 0755 },
		{ "etc/hostname", AE_IFREG, 0644, "kal\n" },
		{ "etc/link", AE_IFLNK, 0777, "hostname" },
		{ "etc/hard", AE_IFREG, 0644, "etc/hostname", .hardlink = 1 },
		{ "dev/null", AE_IFCHR, 0666, .rmajor = 1, .rminor = 3 },
		{ "usr/bin/tool", AE_IFREG, 04755, "#!/bin/sh\n", .uid = 100000,
		  .mtime = 1600000000, .xname = "user.k", .xvalue = "v" },
		{ 0 },
	};
	struct image img;
	struct rinode ri;
	uint64_t nid;
	size_t vlen;
	const char *v;

	(void)state;
	convert_ok(ents, &img);
	check_super(&img);
	assert_int_equal(img.res.entries, 7);

	nid = path_lookup(&img, "etc/hostname");
	assert_true(nid != 0);
	read_inode(&img, nid, &ri);
	assert_true(S_ISREG(ri.mode));
	assert_int_equal(ri.size, 4);
	assert_int_equal(ri.nlink, 2);
	assert_memory_equal(flat_data(&img, &ri), "kal\n", 4);
	assert_int_equal(path_lookup(&img, "etc/hard"), nid);

	read_inode(&img, path_lookup(&img, "etc/link"), &ri);
	assert_true(S_ISLNK(ri.mode));
	assert_memory_equal(flat_data(&img, &ri), "hostname", 8);

	read_inode(&img, path_lookup(&img, "dev/null"), &ri);
	assert_true(S_ISCHR(ri.mode));
	assert_int_equal(ri.iu, makedev(1, 3) & 0xffffffff);

	/* implicit parents: 0755 root */
	read_inode(&img, path_lookup(&img, "usr/bin"), &ri);
	assert_int_equal(ri.mode, S_IFDIR | 0755);
	assert_int_equal(ri.nlink, 2);

	/* big uid and an uncommon mtime need the extended inode */
	read_inode(&img, path_lookup(&img, "usr/bin/tool"), &ri);
	assert_int_equal(ri.format & 1, 1);
	assert_int_equal(ri.uid, 100000);
	assert_int_equal(ri.mtime, 1600000000);
	assert_int_equal(ri.mode, S_IFREG | 04755);
	v = xattr_get(&ri, IC_EROFS_XATTR_USER, "k", &vlen);
	assert_non_null(v);
	assert_int_equal(vlen, 1);
	assert_memory_equal(v, "v", 1);

	/* the root: nlink 2 + subdirs (etc, dev, usr) */
	read_inode(&img, le16toh(sb_of(&img)->root_nid), &ri);
	assert_int_equal(ri.nlink, 5);
	assert_int_equal(path_lookup(&img, "etc/.."), le16toh(sb_of(&img)->root_nid));
	assert_int_equal(path_lookup(&img, "missing"), 0);
	image_free(&img);
}

static void test_whiteouts(void **state)
{
	static const struct tent ents[] = {
		{ "gone/.wh..wh..opq", AE_IFREG, 0644, "" },
		{ "gone/new", AE_IFREG, 0644, "n" },
		{ ".wh.victim", AE_IFREG, 0644, "" },
		{ ".wh.etc/ordinary", AE_IFREG, 0644, "o" },
		{ "d/.wh.x", AE_IFREG, 0644, "" },
		{ "d/x/", AE_IFDIR, 0755 },
		{ 0 },
	};
	struct image img;
	struct rinode ri;
	size_t vlen;
	const char *v;

	(void)state;
	convert_ok(ents, &img);
	check_super(&img);
	read_inode(&img, path_lookup(&img, "victim"), &ri);
	assert_true(S_ISCHR(ri.mode));
	assert_int_equal(ri.iu, 0);
	assert_int_equal(path_lookup(&img, ".wh.victim"), 0);
	assert_int_equal(path_lookup(&img, "gone/.wh..wh..opq"), 0);

	read_inode(&img, path_lookup(&img, "gone"), &ri);
	v = xattr_get(&ri, IC_EROFS_XATTR_TRUSTED, "overlay.opaque", &vlen);
	assert_non_null(v);
	assert_int_equal(vlen, 1);
	assert_int_equal(v[0], 'y');
	assert_true(path_lookup(&img, "gone/new") != 0);
	assert_true(path_lookup(&img, ".wh.etc/ordinary") != 0);

	/* a whiteout then a dir of the same name in one layer: an opaque dir */
	read_inode(&img, path_lookup(&img, "d/x"), &ri);
	assert_true(S_ISDIR(ri.mode));
	assert_non_null(xattr_get(&ri, IC_EROFS_XATTR_TRUSTED, "overlay.opaque", &vlen));
	image_free(&img);
}

static void test_forged_overlay_xattr_dropped(void **state)
{
	static const struct tent ents[] = {
		{ "d/", AE_IFDIR, 0755, .xname = "trusted.overlay.opaque", .xvalue = "y" },
		{ 0 },
	};
	struct image img;
	struct rinode ri;
	size_t vlen;

	(void)state;
	convert_ok(ents, &img);
	read_inode(&img, path_lookup(&img, "d"), &ri);
	assert_null(xattr_get(&ri, IC_EROFS_XATTR_TRUSTED, "overlay.opaque", &vlen));
	image_free(&img);
}

static void test_duplicates_last_wins(void **state)
{
	static const struct tent ents[] = {
		{ "a", AE_IFREG, 0644, "first" },
		{ "a", AE_IFREG, 0600, "second" },
		{ "b/", AE_IFDIR, 0755 },
		{ "b/c", AE_IFREG, 0644, "c" },
		{ "b", AE_IFREG, 0644, "file now" },
		{ "h1", AE_IFREG, 0644, "linked" },
		{ "h2", AE_IFREG, 0644, "h1", .hardlink = 1 },
		{ "h3", AE_IFREG, 0644, "h1", .hardlink = 1 },
		{ "h1", AE_IFREG, 0644, "replaced" },
		{ 0 },
	};
	struct image img;
	struct rinode ri;

	(void)state;
	convert_ok(ents, &img);
	read_inode(&img, path_lookup(&img, "a"), &ri);
	assert_int_equal(ri.mode, S_IFREG | 0600);
	assert_memory_equal(flat_data(&img, &ri), "second", 6);
	read_inode(&img, path_lookup(&img, "b"), &ri);
	assert_true(S_ISREG(ri.mode));
	assert_int_equal(path_lookup(&img, "b/c"), 0);
	/* replacing a hardlinked name leaves the other links on the old inode */
	read_inode(&img, path_lookup(&img, "h1"), &ri);
	assert_int_equal(ri.nlink, 1);
	assert_memory_equal(flat_data(&img, &ri), "replaced", 8);
	assert_int_equal(path_lookup(&img, "h2"), path_lookup(&img, "h3"));
	read_inode(&img, path_lookup(&img, "h2"), &ri);
	assert_int_equal(ri.nlink, 2);
	assert_memory_equal(flat_data(&img, &ri), "linked", 6);
	image_free(&img);
}

static void test_errors(void **state)
{
	(void)state;
	convert_err((const struct tent[]){ { "../x", AE_IFREG, 0644, "x" }, { 0 } },
		    "layer: `../x`: path escapes the root");
	convert_err((const struct tent[]){ { ".wh..", AE_IFREG, 0644, "" }, { 0 } },
		    "layer: `.wh..`: invalid whiteout");
	convert_err((const struct tent[]){ { "d/", AE_IFDIR, 0755 },
					   { "h", AE_IFREG, 0644, "d", .hardlink = 1 },
					   { 0 } },
		    "layer: `h`: hardlink to directory `d`");
	convert_err((const struct tent[]){ { "f", AE_IFREG, 0644, "x" },
					   { "f/g", AE_IFREG, 0644, "y" },
					   { 0 } },
		    "layer: `f/g`: parent `f` is not a directory");
	convert_err((const struct tent[]){ { "s", AE_IFLNK, 0777, "" }, { 0 } },
		    "layer: `s`: empty symlink target");
}

static void test_truncated_and_garbage(void **state)
{
	static char tar[1 << 16];
	static const struct tent ents[] = {
		{ "f", AE_IFREG, 0644,
		  "0123456789012345678901234567890123456789012345678901234567890123456789" },
		{ 0 },
	};
	size_t len = build_tar(ents, tar, sizeof(tar));
	struct image img;
	char *msg = NULL;

	(void)state;
	assert_int_equal(convert_buf(tar, 512 + 40, IC_COMP_NONE, &img, &msg), -1);
	assert_string_equal(msg, "layer: truncated tar archive");
	free(msg);
	assert_int_equal(convert_buf("garbage garbage garbage", 23, IC_COMP_NONE, &img, &msg), -1);
	assert_string_equal(msg, "layer: not a tar archive");
	free(msg);
	assert_int_equal(convert_buf(tar, len, IC_COMP_ZSTD, &img, &msg), -1);
	assert_string_equal(msg, "layer: zstd: Unknown frame descriptor");
	free(msg);
}

static void test_deterministic_and_gzip(void **state)
{
	static char tar[1 << 16], gz[1 << 16];
	static const struct tent ents[] = {
		{ "z", AE_IFREG, 0644, "zzz" },
		{ "a", AE_IFREG, 0644, "aaa" },
		{ "m/", AE_IFDIR, 0700 },
		{ "m/-", AE_IFREG, 0644, "dash" },
		{ "m/.hidden", AE_IFREG, 0644, "h" },
		{ 0 },
	};
	size_t len = build_tar(ents, tar, sizeof(tar));
	uLongf gzlen = sizeof(gz);
	struct image a, b, c;
	char *msg = NULL;
	z_stream z = { 0 };

	(void)state;
	assert_int_equal(convert_buf(tar, len, IC_COMP_NONE, &a, &msg), 0);
	assert_int_equal(convert_buf(tar, len, IC_COMP_NONE, &b, &msg), 0);
	assert_int_equal(a.len, b.len);
	assert_memory_equal(a.p, b.p, a.len);
	assert_true(ic_digest_equal(&a.res.erofs_digest, &b.res.erofs_digest));

	assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
	z.next_in = (Bytef *)tar;
	z.avail_in = (uInt)len;
	z.next_out = (Bytef *)gz;
	z.avail_out = (uInt)gzlen;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	gzlen = z.total_out;
	deflateEnd(&z);
	assert_int_equal(ic_layer_sniff(gz, gzlen), IC_COMP_GZIP);
	assert_int_equal(convert_buf(gz, gzlen, IC_COMP_GZIP, &c, &msg), 0);
	assert_true(ic_digest_equal(&a.res.diff_id, &c.res.diff_id));
	assert_memory_equal(a.p, c.p, a.len);
	/* "-" sorts before "." and ".." in the dirents */
	assert_true(path_lookup(&a, "m/-") != 0);
	assert_true(path_lookup(&a, "m/.hidden") != 0);
	image_free(&a);
	image_free(&b);
	image_free(&c);
}

static void test_big_directory(void **state)
{
	static struct tent ents[1201];
	static char names[1200][64];
	struct image img;
	struct rinode ri;

	(void)state;
	for (int i = 0; i < 1200; i++) {
		snprintf(names[i], sizeof(names[i]), "d/file-%04d-%.*s", i, i % 30,
			 "abcdefghijklmnopqrstuvwxyzabcd");
		ents[i] = (struct tent){
			.name = names[i], .type = AE_IFREG, .mode = 0644, .data = names[i]
		};
	}
	convert_ok(ents, &img);
	check_super(&img);
	read_inode(&img, path_lookup(&img, "d"), &ri);
	assert_true(ri.size > 4 * IC_EROFS_BLKSIZE); /* several dirent blocks */
	for (int i = 0; i < 1200; i += 97) {
		uint64_t nid = path_lookup(&img, names[i]);

		assert_true(nid != 0);
		read_inode(&img, nid, &ri);
		assert_memory_equal(flat_data(&img, &ri), names[i], strlen(names[i]));
	}
	assert_true(path_lookup(&img, names[1199]) != 0);
	image_free(&img);
}

static void test_sniff(void **state)
{
	(void)state;
	assert_int_equal(ic_layer_sniff("\x1f\x8b\x08", 3), IC_COMP_GZIP);
	assert_int_equal(ic_layer_sniff("\x28\xb5\x2f\xfd", 4), IC_COMP_ZSTD);
	assert_int_equal(ic_layer_sniff("\x28\xb5\x2f", 3), IC_COMP_NONE);
	assert_int_equal(ic_layer_sniff("ustar", 5), IC_COMP_NONE);
	assert_int_equal(ic_layer_sniff("", 0), IC_COMP_NONE);
}

static void test_path_normalise(void **state)
{
	char buf[IC_TAR_MAX_PATH + 1];
	const char *comps[IC_TAR_MAX_DEPTH + 1];
	uint16_t lens[IC_TAR_MAX_DEPTH + 1];
	struct kal_err *err = NULL;

	(void)state;
	assert_int_equal(ic_tar_path_normalise("./a//b/./c/", 0, buf, comps, lens, &err), 3);
	assert_string_equal(comps[0], "a");
	assert_string_equal(comps[2], "c");
	assert_int_equal(ic_tar_path_normalise("/", 0, buf, comps, lens, &err), 0);
	assert_int_equal(ic_tar_path_normalise("a/b/../c", 0, buf, comps, lens, &err), 2);
	assert_string_equal(comps[1], "c");
	assert_int_equal(ic_tar_path_normalise("/../../etc/passwd", 1, buf, comps, lens, &err), 2);
	assert_string_equal(comps[0], "etc");
	assert_int_equal(ic_tar_path_normalise("a/../../x", 0, buf, comps, lens, &err), -1);
	assert_string_equal(err->msg, "`a/../../x`: path escapes the root");
	kal_err_clear(&err);
}

static void test_crc32c(void **state)
{
	(void)state;
	/* RFC 3720 check value: crc32c("123456789") = 0xe3069283 (with final inversion) */
	assert_int_equal(~ic_erofs_crc32c(~0u, "123456789", 9), 0xe3069283u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic_tree),
		cmocka_unit_test(test_whiteouts),
		cmocka_unit_test(test_forged_overlay_xattr_dropped),
		cmocka_unit_test(test_duplicates_last_wins),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_truncated_and_garbage),
		cmocka_unit_test(test_deterministic_and_gzip),
		cmocka_unit_test(test_big_directory),
		cmocka_unit_test(test_sniff),
		cmocka_unit_test(test_path_normalise),
		cmocka_unit_test(test_crc32c),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
