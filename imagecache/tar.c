// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Tar reader: libarchive entries -> normalised paths -> the in-memory tree,
 * with overlayfs whiteout translation, hardlinks, sparse files and the caps
 * of reliability.md D1-D8.  No tar-provided name ever reaches a host path
 * syscall: everything lands in memory or in the image being written.
 * The semantics chosen for ambiguous archives are listed in tar.h.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "../lib/log.h"
#include "../lib/xalloc.h"
#include "erofs.h"
#include "tar.h"

#define ARENA_CHUNK (256u << 10)

struct arena_chunk {
	struct arena_chunk *next;
	size_t used, cap;
	char data[];
};

struct ic_tree {
	struct arena_chunk *arena;
	struct ic_erofs_inode **inodes; /* every inode ever made, for freeing */
	size_t ninodes, cap;
	struct ic_erofs_inode *root;
	/* scratch for path normalisation */
	char path[IC_TAR_MAX_PATH + 1];
	const char *comps[IC_TAR_MAX_DEPTH + 1];
	uint16_t lens[IC_TAR_MAX_DEPTH + 1];
	char lpath[IC_TAR_MAX_PATH + 1];
	const char *lcomps[IC_TAR_MAX_DEPTH + 1];
	uint16_t llens[IC_TAR_MAX_DEPTH + 1];
	/* aggregated warnings */
	uint64_t sockets, dropped_xattrs, unknown_xattrs, aufs_meta;
	char first_socket[128], first_xattr[128];
};

static void *arena_alloc(struct ic_tree *t, size_t n)
{
	struct arena_chunk *c = t->arena;

	n = (n + 7) & ~(size_t)7;
	if (!c || c->cap - c->used < n) {
		size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;

		c = xmalloc(sizeof(*c) + cap);
		c->used = 0;
		c->cap = cap;
		c->next = t->arena;
		t->arena = c;
	}
	c->used += n;
	return c->data + c->used - n;
}

static char *arena_strndup(struct ic_tree *t, const char *s, size_t n)
{
	char *p = arena_alloc(t, n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

static struct ic_erofs_inode *inode_new(struct ic_tree *t, uint32_t mode)
{
	struct ic_erofs_inode *ino = arena_alloc(t, sizeof(*ino));

	if (t->ninodes == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 1024;
		t->inodes = xreallocarray(t->inodes, t->cap, sizeof(*t->inodes));
	}
	t->inodes[t->ninodes++] = ino;
	memset(ino, 0, sizeof(*ino));
	ino->mode = mode;
	return ino;
}

struct ic_tree *ic_tree_new(void)
{
	struct ic_tree *t = xzalloc(sizeof(*t));

	t->root = inode_new(t, S_IFDIR | 0755);
	return t;
}

void ic_tree_free(struct ic_tree *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->ninodes; i++) {
		free(t->inodes[i]->slots);
		free(t->inodes[i]->chunks);
	}
	free(t->inodes);
	while (t->arena) {
		struct arena_chunk *n = t->arena->next;

		free(t->arena);
		t->arena = n;
	}
	free(t);
}

struct ic_erofs_inode *ic_tree_root(struct ic_tree *t)
{
	return t->root;
}

/* ---- names ---- */

int ic_tar_path_normalise(const char *raw, int clamp, char *buf, const char **comps, uint16_t *lens,
			  struct kal_err **err)
{
	size_t rlen = strlen(raw), o = 0;
	int n = 0;
	const char *p = raw;

	if (rlen > IC_TAR_MAX_PATH)
		return kal_err_set(err, ENAMETOOLONG, "`%.200s...`: path longer than %u bytes", raw,
				   IC_TAR_MAX_PATH);
	while (*p) {
		const char *s;
		size_t len;

		while (*p == '/')
			p++;
		if (!*p)
			break;
		s = p;
		while (*p && *p != '/')
			p++;
		len = (size_t)(p - s);
		if (len == 1 && s[0] == '.')
			continue;
		if (len == 2 && s[0] == '.' && s[1] == '.') {
			if (n == 0) {
				if (clamp)
					continue;
				return kal_err_set(err, EINVAL, "`%s`: path escapes the root", raw);
			}
			n--;
			o = (size_t)(comps[n] - buf);
			continue;
		}
		if (len > IC_EROFS_NAME_LEN)
			return kal_err_set(err, ENAMETOOLONG,
					   "`%.200s...`: name component longer than %d bytes", raw,
					   IC_EROFS_NAME_LEN);
		if (n >= IC_TAR_MAX_DEPTH)
			return kal_err_set(err, ELOOP, "`%.200s...`: path deeper than %d levels",
					   raw, IC_TAR_MAX_DEPTH);
		memcpy(buf + o, s, len);
		buf[o + len] = '\0';
		comps[n] = buf + o;
		lens[n] = (uint16_t)len;
		n++;
		o += len + 1;
	}
	return n;
}

/* Join the first n components with '/' for messages (into t->lpath scratch). */
static const char *comp_join(char *out, const char *const *comps, const uint16_t *lens, int n)
{
	size_t o = 0;

	for (int i = 0; i < n; i++) {
		if (i)
			out[o++] = '/';
		memcpy(out + o, comps[i], lens[i]);
		o += lens[i];
	}
	out[o] = '\0';
	return out;
}

/* Copy s into a fixed buffer with control bytes shown as \xNN (warnings are not escaped by main). */
static void escape_into(char *out, size_t cap, const char *s)
{
	static const char hexd[] = "0123456789abcdef";
	size_t o = 0;

	for (; *s && o + 5 < cap; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c == 0x7f) {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hexd[c >> 4];
			out[o++] = hexd[c & 15];
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
}

/* ---- tree edits ---- */

static struct ic_erofs_inode *implicit_dir(struct ic_tree *t)
{
	return inode_new(t, S_IFDIR | 0755);
}

static struct ic_erofs_dentry *dentry_add(struct ic_tree *t, struct ic_erofs_inode *dir,
					  const char *name, uint16_t len,
					  struct ic_erofs_inode *ino)
{
	struct ic_erofs_dentry *de = arena_alloc(t, sizeof(*de));

	de->name = arena_strndup(t, name, len);
	de->name_len = len;
	de->inode = ino;
	return ic_erofs_dir_insert(dir, de);
}

/*
 * Walk (creating missing directories) to the directory holding component n.
 * A same-layer whiteout in the way becomes an opaque directory; any other
 * non-directory is an error (symlinks are never followed).
 */
static struct ic_erofs_inode *walk_parents(struct ic_tree *t, const char *raw, int n,
					   struct kal_err **err)
{
	struct ic_erofs_inode *d = t->root;

	for (int i = 0; i < n; i++) {
		struct ic_erofs_dentry *de = ic_erofs_dir_lookup(d, t->comps[i], t->lens[i]);

		if (!de) {
			de = dentry_add(t, d, t->comps[i], t->lens[i], implicit_dir(t));
		} else if (de->inode->whiteout) {
			de->inode = implicit_dir(t);
			de->inode->opaque = true;
		} else if (!S_ISDIR(de->inode->mode)) {
			kal_err_set(err, ENOTDIR, "`%s`: parent `%s` is not a directory", raw,
				    comp_join(t->lpath, t->comps, t->lens, i + 1));
			return NULL;
		}
		d = de->inode;
	}
	return d;
}

/* linux/posix_acl_xattr.h: version 2 header, then (tag, perm, id) entries sorted by tag, id */
#define ACL_XATTR_VERSION 2
enum {
	ACL_USER_OBJ = 1,
	ACL_USER = 2,
	ACL_GROUP_OBJ = 4,
	ACL_GROUP = 8,
	ACL_MASK = 16,
	ACL_OTHER = 32
};

struct acl_ent {
	uint16_t tag, perm;
	uint32_t id;
};

static int acl_ent_cmp(const void *a, const void *b)
{
	const struct acl_ent *x = a, *y = b;

	if (x->tag != y->tag)
		return x->tag < y->tag ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/*
 * The entry's access (type 0) or default (type 1) ACL as a posix_acl xattr
 * value in the arena; NULL with *len 0 when there is none, NULL with *len 1
 * after an error.
 */
static void *acl_xattr(struct ic_tree *t, struct archive_entry *ae, int type, const char *raw,
		       size_t *len, struct kal_err **err)
{
	int want = type ? ARCHIVE_ENTRY_ACL_TYPE_DEFAULT : ARCHIVE_ENTRY_ACL_TYPE_ACCESS;
	int n = archive_entry_acl_count(ae, want), k = 0, atype, perm, tag, id;
	struct acl_ent ents[64 + 1];
	uint32_t group_class = 0;
	bool named = false, mask = false;
	const char *name;
	uint8_t *out;

	*len = 0;
	if (n <= 0)
		return NULL;
	archive_entry_acl_reset(ae, want);
	while (archive_entry_acl_next(ae, want, &atype, &perm, &tag, &id, &name) == ARCHIVE_OK) {
		struct acl_ent e = { .perm = (uint16_t)(perm & 7), .id = 0xffffffffu };

		if (k == 64) {
			*len = 1;
			kal_err_set(err, E2BIG, "`%s`: more than 64 ACL entries", raw);
			return NULL;
		}
		switch (tag) {
		case ARCHIVE_ENTRY_ACL_USER_OBJ:
			e.tag = ACL_USER_OBJ;
			break;
		case ARCHIVE_ENTRY_ACL_USER:
			e.tag = ACL_USER;
			e.id = (uint32_t)id;
			named = true;
			break;
		case ARCHIVE_ENTRY_ACL_GROUP_OBJ:
			e.tag = ACL_GROUP_OBJ;
			break;
		case ARCHIVE_ENTRY_ACL_GROUP:
			e.tag = ACL_GROUP;
			e.id = (uint32_t)id;
			named = true;
			break;
		case ARCHIVE_ENTRY_ACL_MASK:
			e.tag = ACL_MASK;
			mask = true;
			break;
		case ARCHIVE_ENTRY_ACL_OTHER:
			e.tag = ACL_OTHER;
			break;
		default:
			continue; /* NFSv4 ACLs have no POSIX form */
		}
		if (e.tag & (ACL_USER | ACL_GROUP | ACL_GROUP_OBJ))
			group_class |= e.perm;
		ents[k++] = e;
	}
	if (named && !mask) /* what setfacl does: the mask covers the group class */
		ents[k++] = (struct acl_ent){ .tag = ACL_MASK,
					      .perm = (uint16_t)group_class,
					      .id = 0xffffffffu };
	if (!k)
		return NULL;
	qsort(ents, (size_t)k, sizeof(ents[0]), acl_ent_cmp);
	*len = 4 + 8 * (size_t)k;
	out = arena_alloc(t, *len);
	out[0] = ACL_XATTR_VERSION;
	out[1] = out[2] = out[3] = 0;
	for (int i = 0; i < k; i++) {
		uint8_t *p = out + 4 + 8 * i;

		p[0] = (uint8_t)ents[i].tag;
		p[1] = (uint8_t)(ents[i].tag >> 8);
		p[2] = (uint8_t)ents[i].perm;
		p[3] = 0;
		for (int b = 0; b < 4; b++)
			p[4 + b] = (uint8_t)(ents[i].id >> (8 * b));
	}
	return out;
}

static int set_xattrs(struct ic_tree *t, struct archive_entry *ae, struct ic_erofs_inode *ino,
		      const char *raw, struct kal_err **err)
{
	static const struct {
		const char *prefix;
		uint8_t index;
	} prefixes[] = {
		{ "user.", IC_EROFS_XATTR_USER },
		{ "trusted.", IC_EROFS_XATTR_TRUSTED },
		{ "security.", IC_EROFS_XATTR_SECURITY },
		{ "system.posix_acl_access", IC_EROFS_XATTR_ACL_ACCESS },
		{ "system.posix_acl_default", IC_EROFS_XATTR_ACL_DEFAULT },
	};
	const char *name;
	const void *value;
	size_t vlen, total = 0;
	int n = archive_entry_xattr_reset(ae), k = 0;
	struct ic_erofs_xattr *xs;

	ino->nxattrs = 0;
	ino->xattrs = NULL;
	if (n < 0)
		n = 0;
	if (!n && archive_entry_acl_count(ae, ARCHIVE_ENTRY_ACL_TYPE_ACCESS) <= 0 &&
	    archive_entry_acl_count(ae, ARCHIVE_ENTRY_ACL_TYPE_DEFAULT) <= 0)
		return 0;
	xs = arena_alloc(t, ((size_t)n + 2) * sizeof(*xs)); /* + the two ACL xattrs */
	while (n && archive_entry_xattr_next(ae, &name, &value, &vlen) == ARCHIVE_OK) {
		size_t i, plen = 0, slen;
		int dup = -1;

		for (i = 0; i < ARRAY_SIZE(prefixes); i++) {
			plen = strlen(prefixes[i].prefix);
			if (strncmp(name, prefixes[i].prefix, plen) == 0)
				break;
		}
		if (strncmp(name, "trusted.overlay.", 16) == 0 ||
		    strncmp(name, "user.overlay.", 13) == 0) {
			/* reliability D6: an image must not forge whiteouts or opaque dirs */
			if (!t->dropped_xattrs++)
				escape_into(t->first_xattr, sizeof(t->first_xattr), raw);
			continue;
		}
		slen = i < ARRAY_SIZE(prefixes) ? strlen(name) - plen : 0;
		if (i == ARRAY_SIZE(prefixes) || strlen(name) > 255 ||
		    (slen == 0 && prefixes[i].index < IC_EROFS_XATTR_ACL_ACCESS) ||
		    (slen && (prefixes[i].index == IC_EROFS_XATTR_ACL_ACCESS ||
			      prefixes[i].index == IC_EROFS_XATTR_ACL_DEFAULT))) {
			t->unknown_xattrs++;
			continue;
		}
		if (vlen > 0xffff)
			return kal_err_set(
			    err, E2BIG, "`%s`: xattr value of %zu bytes is too large", raw, vlen);
		total += 4 + slen + vlen;
		if (total > IC_TAR_MAX_XATTR_BYTES)
			return kal_err_set(err, E2BIG, "`%s`: xattrs larger than %u bytes", raw,
					   IC_TAR_MAX_XATTR_BYTES);
		for (int j = 0; j < k; j++)
			if (xs[j].index == prefixes[i].index && xs[j].name_len == slen &&
			    memcmp(xs[j].name, name + plen, slen) == 0)
				dup = j;
		if (dup < 0)
			dup = k++;
		xs[dup] = (struct ic_erofs_xattr){
			.index = prefixes[i].index,
			.name_len = (uint8_t)slen,
			.value_len = (uint16_t)vlen,
			.name = arena_strndup(t, name + plen, slen),
			.value = memcpy(arena_alloc(t, vlen ? vlen : 1), value, vlen),
		};
	}
	/* POSIX ACLs (SCHILY.acl.*) become the system.posix_acl_* xattrs; they replace raw ones */
	for (int type = 0; type < 2; type++) {
		size_t alen = 0;
		void *acl = acl_xattr(t, ae, type, raw, &alen, err);
		uint8_t index = type ? IC_EROFS_XATTR_ACL_DEFAULT : IC_EROFS_XATTR_ACL_ACCESS;
		int dup = -1;

		if (!acl && alen)
			return -1;
		if (!acl)
			continue;
		for (int j = 0; j < k; j++)
			if (xs[j].index == index)
				dup = j;
		if (dup < 0)
			dup = k++;
		xs[dup] = (struct ic_erofs_xattr){
			.index = index, .name = "", .value = acl, .value_len = (uint16_t)alen
		};
	}
	if (!k)
		return 0;
	/* fixed order for determinism: by index, then name */
	for (int i = 1; i < k; i++) {
		struct ic_erofs_xattr x = xs[i];
		int j = i;

		while (j > 0) {
			const struct ic_erofs_xattr *y = &xs[j - 1];
			size_t m = x.name_len < y->name_len ? x.name_len : y->name_len;
			int c =
			    x.index != y->index ? x.index - y->index : memcmp(x.name, y->name, m);

			if (!c)
				c = x.name_len - y->name_len;
			if (c >= 0)
				break;
			xs[j] = xs[j - 1];
			j--;
		}
		xs[j] = x;
	}
	ino->xattrs = xs;
	ino->nxattrs = (uint16_t)k;
	return 0;
}

/* ---- file data ---- */

struct fdata {
	struct ic_erofs_inode *ino;
	struct ic_erofs_writer *w;
	uint64_t pos; /* file offset reached */
	unsigned cb;  /* log2 chunk size */
	uint64_t nchunks;
	uint64_t mapped;    /* chunks [0, mapped) decided (mapped or hole) */
	uint32_t first_blk; /* block of chunk 0 while the file is dense */
	bool dense;	    /* no hole so far */
	uint32_t *map;	    /* allocated on the first hole */
};

/* decide chunk f->mapped: blk is its first block, or IC_EROFS_NULL_ADDR for a hole */
static void chunk_decide(struct fdata *f, uint32_t blk)
{
	uint64_t c = f->mapped;

	if (f->dense) {
		if (c == 0 && blk != IC_EROFS_NULL_ADDR) {
			f->first_blk = blk;
		} else if (blk == IC_EROFS_NULL_ADDR ||
			   blk != f->first_blk + (uint32_t)(c << (f->cb - IC_EROFS_BLKBITS))) {
			f->dense = false;
			f->map = xmalloc(f->nchunks * sizeof(uint32_t));
			for (uint64_t i = 0; i < c; i++)
				f->map[i] =
				    f->first_blk + (uint32_t)(i << (f->cb - IC_EROFS_BLKBITS));
		}
	}
	if (!f->dense)
		f->map[c] = blk;
	f->mapped++;
}

/* bytes of chunk c that exist on disk (the last one ends at the block-rounded size) */
static uint64_t chunk_end(const struct fdata *f, uint64_t c)
{
	uint64_t end = (c + 1) << f->cb;
	uint64_t lim = (f->ino->size + IC_EROFS_BLKSIZE - 1) & ~(uint64_t)(IC_EROFS_BLKSIZE - 1);

	return end < lim ? end : lim;
}

/*
 * Move the file cursor to `to`: zeros inside a chunk that has blocks, holes
 * for chunks skipped entirely.  An undecided chunk always starts at pos.
 */
static int fdata_seek(struct fdata *f, uint64_t to, struct kal_err **err)
{
	while (f->pos < to) {
		uint64_t c = f->pos >> f->cb;

		if (c < f->mapped) {
			uint64_t end = chunk_end(f, c);

			if (end > to)
				end = to;
			if (ic_erofs_write_zeros(f->w, end - f->pos, err) < 0)
				return -1;
			f->pos = end < to ? (c + 1) << f->cb : end;
		} else if (to >= (c + 1) << f->cb) {
			chunk_decide(f, IC_EROFS_NULL_ADDR);
			f->pos = (c + 1) << f->cb;
		} else {
			chunk_decide(f, ic_erofs_cur_block(f->w));
			if (ic_erofs_write_zeros(f->w, to - f->pos, err) < 0)
				return -1;
			f->pos = to;
		}
	}
	return 0;
}

static int fdata_write(struct fdata *f, const uint8_t *p, size_t len, struct kal_err **err)
{
	while (len) {
		uint64_t c = f->pos >> f->cb, room;
		size_t n;

		if (c >= f->mapped)
			chunk_decide(f, ic_erofs_cur_block(f->w));
		room = ((c + 1) << f->cb) - f->pos;
		n = len < room ? len : (size_t)room;
		if (ic_erofs_write(f->w, p, n, err) < 0)
			return -1;
		f->pos += n;
		p += n;
		len -= n;
	}
	return 0;
}

static int read_data(struct ic_tree *t, struct archive *a, struct ic_erofs_inode *ino,
		     struct ic_erofs_writer *w, const char *raw, struct kal_err **err)
{
	struct fdata f = { .ino = ino, .w = w, .dense = true, .cb = IC_EROFS_BLKBITS };
	uint64_t size = ino->size;
	int rc = -1;

	(void)t;
	if (ic_erofs_pad_block(w, err) < 0)
		return -1;
	if (size == 0) {
		ino->blkaddr = 0;
		return 0;
	}
	f.nchunks = (size + IC_EROFS_BLKSIZE - 1) >> IC_EROFS_BLKBITS;
	/* bigger chunks for big files keep the map small; 2 MiB bounds the zero-fill per chunk */
	while (f.nchunks > IC_TAR_CHUNK_TARGET && f.cb < IC_TAR_CHUNK_MAX_BITS) {
		f.cb++;
		f.nchunks = (size + (1ull << f.cb) - 1) >> f.cb;
	}
	if (f.nchunks > IC_TAR_MAX_CHUNKS)
		return kal_err_set(err, EFBIG, "`%s`: file of %llu bytes is too large", raw,
				   (unsigned long long)size);
	for (;;) {
		const void *buf;
		size_t len;
		la_int64_t off;
		int r = archive_read_data_block(a, &buf, &len, &off);

		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK) {
			kal_err_set(err, EIO, "`%s`: %s", raw,
				    archive_error_string(a) ? archive_error_string(a)
							    : "read error");
			goto out;
		}
		if (off < 0 || (uint64_t)off < f.pos || (uint64_t)off > size ||
		    len > size - (uint64_t)off) {
			kal_err_set(err, EINVAL, "`%s`: data block outside the file (sparse map?)",
				    raw);
			goto out;
		}
		if (fdata_seek(&f, (uint64_t)off, err) < 0 || fdata_write(&f, buf, len, err) < 0)
			goto out;
	}
	/* finish the current chunk and leave the rest as holes */
	if (f.pos < size) {
		uint64_t c = f.pos >> f.cb;

		if (c < f.mapped && ic_erofs_write_zeros(w, chunk_end(&f, c) - f.pos, err) < 0)
			goto out;
		while (f.mapped < f.nchunks)
			chunk_decide(&f, IC_EROFS_NULL_ADDR);
	}
	if (ic_erofs_pad_block(w, err) < 0)
		goto out;
	if (f.dense) {
		ino->blkaddr = f.first_blk;
	} else {
		ino->chunks = steal_ptr(&f.map);
		ino->nchunks = (uint32_t)f.nchunks;
		ino->chunkbits = (uint8_t)(f.cb - IC_EROFS_BLKBITS);
	}
	rc = 0;
out:
	free(f.map);
	return rc;
}

/* ---- entries ---- */

static uint32_t encode_dev(uint64_t major, uint64_t minor)
{
	return (uint32_t)((minor & 0xff) | (major << 8) | ((minor & ~0xffull) << 12));
}

static int check_ids(struct archive_entry *ae, const char *raw, struct kal_err **err)
{
	la_int64_t uid = archive_entry_uid(ae), gid = archive_entry_gid(ae);

	if (uid < 0 || uid >= 0xffffffffll)
		return kal_err_set(err, ERANGE, "`%s`: uid %lld out of range", raw, (long long)uid);
	if (gid < 0 || gid >= 0xffffffffll)
		return kal_err_set(err, ERANGE, "`%s`: gid %lld out of range", raw, (long long)gid);
	return 0;
}

static void set_attrs(struct ic_erofs_inode *ino, struct archive_entry *ae, uint32_t type)
{
	ino->mode = type | (archive_entry_perm(ae) & 07777);
	ino->uid = (uint32_t)archive_entry_uid(ae);
	ino->gid = (uint32_t)archive_entry_gid(ae);
	ino->mtime = archive_entry_mtime(ae);
	ino->mtime_nsec = (uint32_t)archive_entry_mtime_nsec(ae);
	if (ino->mtime_nsec >= 1000000000u)
		ino->mtime_nsec = 0;
}

static int whiteout(struct ic_tree *t, const char *raw, int n, const char *name, size_t len,
		    struct archive_entry *ae, struct kal_err **err)
{
	struct ic_erofs_inode *d = walk_parents(t, raw, n, err);
	struct ic_erofs_dentry *de;
	struct ic_erofs_inode *wh;

	if (!d)
		return -1;
	de = ic_erofs_dir_lookup(d, name, len);
	if (de) {
		/* same-layer entries stay; a same-layer dir still hides the lower one */
		if (S_ISDIR(de->inode->mode))
			de->inode->opaque = true;
		return 0;
	}
	wh = inode_new(t, S_IFCHR);
	wh->whiteout = true;
	wh->mtime = archive_entry_mtime(ae);
	dentry_add(t, d, name, (uint16_t)len, wh);
	return 0;
}

static int apply_entry(struct ic_tree *t, struct archive *a, struct archive_entry *ae,
		       struct ic_erofs_writer *w, struct kal_err **err)
{
	const char *raw = archive_entry_pathname(ae), *base, *hl;
	uint32_t type = archive_entry_filetype(ae);
	struct ic_erofs_inode *dir, *ino;
	struct ic_erofs_dentry *de;
	uint16_t blen;
	int n;

	if (!raw || !*raw)
		return kal_err_set(err, EINVAL, "entry with an empty name");
	n = ic_tar_path_normalise(raw, 0, t->path, t->comps, t->lens, err);
	if (n < 0)
		return -1;
	hl = archive_entry_hardlink(ae);
	if (n == 0) {
		if (type != AE_IFDIR || hl)
			return kal_err_set(err, EINVAL, "`%s`: only a directory can be the root",
					   raw);
		if (check_ids(ae, raw, err) < 0)
			return -1;
		set_attrs(t->root, ae, S_IFDIR);
		return set_xattrs(t, ae, t->root, raw, err);
	}
	base = t->comps[n - 1];
	blen = t->lens[n - 1];

	/* whiteouts (OCI image-spec layer.md; reliability D4) */
	if (blen >= 4 && memcmp(base, ".wh.", 4) == 0) {
		const char *rest = base + 4;
		size_t rlen = blen - 4u;

		if (strcmp(base, ".wh..wh..opq") == 0) {
			dir = walk_parents(t, raw, n - 1, err);
			if (!dir)
				return -1;
			dir->opaque = true;
			return 0;
		}
		if (rlen == 0 || strcmp(rest, ".") == 0 || strcmp(rest, "..") == 0)
			return kal_err_set(err, EINVAL, "`%s`: invalid whiteout", raw);
		if (rlen >= 4 && memcmp(rest, ".wh.", 4) == 0) {
			t->aufs_meta++; /* other aufs metadata (.wh..wh.plnk etc.): ignored */
			return 0;
		}
		return whiteout(t, raw, n - 1, rest, rlen, ae, err);
	}

	if (type == AE_IFSOCK && !hl) {
		if (!t->sockets++)
			escape_into(t->first_socket, sizeof(t->first_socket), raw);
		return 0;
	}
	if (check_ids(ae, raw, err) < 0)
		return -1;
	dir = walk_parents(t, raw, n - 1, err);
	if (!dir)
		return -1;
	de = ic_erofs_dir_lookup(dir, base, blen);

	if (hl) {
		struct ic_erofs_inode *target = t->root;
		int m = ic_tar_path_normalise(hl, 1, t->lpath, t->lcomps, t->llens, err);

		if (m < 0)
			return -1;
		for (int i = 0; i < m && target; i++) {
			struct ic_erofs_dentry *x;

			if (!S_ISDIR(target->mode))
				target = NULL;
			else if ((x = ic_erofs_dir_lookup(target, t->lcomps[i], t->llens[i])))
				target = x->inode;
			else
				target = NULL;
		}
		if (!target || target->whiteout)
			return kal_err_set(err, ENOENT,
					   "`%s`: hardlink target `%s` is not an earlier entry of "
					   "this layer",
					   raw, hl);
		if (S_ISDIR(target->mode))
			return kal_err_set(err, EPERM, "`%s`: hardlink to directory `%s`", raw, hl);
		if (de)
			de->inode = target;
		else
			dentry_add(t, dir, base, blen, target);
		return 0; /* data of a "hardlink with contents" entry is skipped */
	}

	if (type == AE_IFDIR) {
		if (de && S_ISDIR(de->inode->mode)) {
			ino = de->inode; /* same dir again: new attributes, children stay */
		} else {
			ino = inode_new(t, S_IFDIR);
			if (de) {
				ino->opaque = de->inode->whiteout;
				de->inode = ino;
			} else {
				dentry_add(t, dir, base, blen, ino);
			}
		}
		set_attrs(ino, ae, S_IFDIR);
		return set_xattrs(t, ae, ino, raw, err);
	}

	switch (type) {
	case AE_IFREG:
	case AE_IFLNK:
	case AE_IFCHR:
	case AE_IFBLK:
	case AE_IFIFO:
		break;
	default:
		return kal_err_set(err, EINVAL, "`%s`: unsupported entry type 0%o", raw, type);
	}
	ino = inode_new(t, type);
	set_attrs(ino, ae, type);
	if (set_xattrs(t, ae, ino, raw, err) < 0)
		return -1;
	if (type == AE_IFREG) {
		la_int64_t size = archive_entry_size_is_set(ae) ? archive_entry_size(ae) : 0;

		if (size < 0)
			return kal_err_set(err, EINVAL, "`%s`: negative size", raw);
		ino->size = (uint64_t)size;
		if (read_data(t, a, ino, w, raw, err) < 0)
			return -1;
	} else if (type == AE_IFLNK) {
		const char *target = archive_entry_symlink(ae);
		size_t len = target ? strlen(target) : 0;

		if (len == 0)
			return kal_err_set(err, EINVAL, "`%s`: empty symlink target", raw);
		if (len >= IC_TAR_MAX_PATH)
			return kal_err_set(err, ENAMETOOLONG, "`%s`: symlink target too long", raw);
		if (ic_erofs_pad_block(w, err) < 0)
			return -1;
		ino->blkaddr = ic_erofs_cur_block(w);
		ino->size = len;
		if (ic_erofs_write(w, target, len, err) < 0 || ic_erofs_pad_block(w, err) < 0)
			return -1;
	} else if (type == AE_IFCHR || type == AE_IFBLK) {
		uint64_t ma = archive_entry_rdevmajor(ae), mi = archive_entry_rdevminor(ae);

		if (ma > 0xfff || mi > 0xfffff)
			return kal_err_set(err, ERANGE,
					   "`%s`: device number %llu:%llu out of range", raw,
					   (unsigned long long)ma, (unsigned long long)mi);
		ino->rdev = encode_dev(ma, mi);
	}
	if (de)
		de->inode = ino; /* last entry wins; a replaced dir takes its subtree along */
	else
		dentry_add(t, dir, base, blen, ino);
	return 0;
}

/* libarchive's charset fallback keeps the raw bytes; that WARN is not an error */
static bool benign_warning(struct archive *a)
{
	const char *m = archive_error_string(a);

	return m && strstr(m, "can't be converted");
}

int ic_tar_read(struct archive *a, struct ic_tree *t, struct ic_erofs_writer *w,
		const struct ic_tar_limits *lim, uint64_t *entries, struct kal_err **err)
{
	struct archive_entry *ae;
	uint64_t count = 0;

	for (;;) {
		int r = archive_read_next_header(a, &ae);

		if (r == ARCHIVE_EOF)
			break;
		if (r == ARCHIVE_WARN && benign_warning(a))
			r = ARCHIVE_OK;
		if (r != ARCHIVE_OK) { /* RETRY (bad checksum) and WARN are errors too */
			*entries = count;
			return kal_err_set(err, EINVAL, "tar: %s",
					   archive_error_string(a) ? archive_error_string(a)
								   : "read error");
		}
		if (++count > lim->max_entries) {
			*entries = count;
			return kal_err_set(err, EFBIG, "more than %llu entries",
					   (unsigned long long)lim->max_entries);
		}
		if (apply_entry(t, a, ae, w, err) < 0) {
			*entries = count;
			return -1;
		}
	}
	*entries = count;
	if (t->sockets)
		kal_warn("layer: dropped %llu socket entr%s (first: `%s`)",
			 (unsigned long long)t->sockets, t->sockets == 1 ? "y" : "ies",
			 t->first_socket);
	if (t->dropped_xattrs)
		kal_warn("layer: dropped %llu overlay xattr%s from the image (first on `%s`)",
			 (unsigned long long)t->dropped_xattrs, t->dropped_xattrs == 1 ? "" : "s",
			 t->first_xattr);
	if (t->unknown_xattrs)
		kal_debug("layer: skipped %llu xattrs EROFS cannot name",
			  (unsigned long long)t->unknown_xattrs);
	return 0;
}
