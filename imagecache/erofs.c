// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * EROFS writer: buffered block-aligned appends for file data while the tar
 * streams, then one layout pass over the finished tree (sorted dirents,
 * depth-first inode order, compact/extended inodes, inline xattrs, chunk
 * maps for sparse files), padding to 2 MiB and the superblock written last.
 * The layout diagram is in erofs.h.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "../lib/fsutil.h"
#include "../lib/xalloc.h"
#include "erofs.h"
#include "layer.h"

#define WBUF_SIZE (1u << 20)

uint32_t ic_erofs_crc32c(uint32_t crc, const void *buf, size_t len)
{
	static uint32_t table[256];
	static int ready;
	const uint8_t *p = buf;

	if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t c = i;

			for (int k = 0; k < 8; k++)
				c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
			table[i] = c;
		}
		__atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
	}
	while (len--)
		crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

/* ---- directory hash table (tar.c inserts, the layout pass sorts) ---- */

static uint32_t name_hash(const char *s, size_t len)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)s[i]) * 16777619u;
	return h;
}

struct ic_erofs_dentry *ic_erofs_dir_lookup(struct ic_erofs_inode *dir, const char *name,
					    size_t len)
{
	uint32_t mask, i;

	if (!dir->nslots)
		return NULL;
	mask = dir->nslots - 1;
	for (i = name_hash(name, len) & mask;; i = (i + 1) & mask) {
		struct ic_erofs_dentry *de = dir->slots[i];

		if (!de)
			return NULL;
		if (de->name_len == len && memcmp(de->name, name, len) == 0)
			return de;
	}
}

static void dir_place(struct ic_erofs_dentry **slots, uint32_t nslots, struct ic_erofs_dentry *de)
{
	uint32_t mask = nslots - 1, i;

	for (i = name_hash(de->name, de->name_len) & mask; slots[i]; i = (i + 1) & mask)
		;
	slots[i] = de;
}

struct ic_erofs_dentry *ic_erofs_dir_insert(struct ic_erofs_inode *dir, struct ic_erofs_dentry *de)
{
	if ((dir->nchildren + 1) * 4 > dir->nslots * 3) {
		uint32_t n = dir->nslots ? dir->nslots * 2 : 8;
		struct ic_erofs_dentry **s = xcalloc(n, sizeof(*s));

		for (uint32_t i = 0; i < dir->nslots; i++)
			if (dir->slots[i])
				dir_place(s, n, dir->slots[i]);
		free(dir->slots);
		dir->slots = s;
		dir->nslots = n;
	}
	dir_place(dir->slots, dir->nslots, de);
	dir->nchildren++;
	return de;
}

/* ---- buffered writer ---- */

struct ic_erofs_writer {
	int fd;
	uint64_t pos; /* logical end of the image written so far */
	uint64_t max_bytes;
	uint8_t *buf; /* holds [pos - blen, pos) */
	size_t blen;
};

struct ic_erofs_writer *ic_erofs_writer_new(int out_fd, uint64_t max_bytes)
{
	struct ic_erofs_writer *w = xzalloc(sizeof(*w));

	w->fd = out_fd;
	w->pos = IC_EROFS_BLKSIZE; /* block 0 holds the superblock, written last */
	w->max_bytes = max_bytes;
	w->buf = xmalloc(WBUF_SIZE);
	return w;
}

void ic_erofs_writer_free(struct ic_erofs_writer *w)
{
	if (!w)
		return;
	free(w->buf);
	free(w);
}

uint32_t ic_erofs_cur_block(const struct ic_erofs_writer *w)
{
	return (uint32_t)(w->pos >> IC_EROFS_BLKBITS);
}

static int wflush(struct ic_erofs_writer *w, struct kal_err **err)
{
	if (!w->blen)
		return 0;
	if (kal_pwrite_all(w->fd, w->buf, w->blen, (off_t)(w->pos - w->blen), err) < 0)
		return kal_err_wrap(err, "write image");
	w->blen = 0;
	return 0;
}

static int wcheck(struct ic_erofs_writer *w, uint64_t len, struct kal_err **err)
{
	if (len > w->max_bytes || w->pos + len > w->max_bytes)
		return kal_err_set(err, EFBIG, "image exceeds the size limit (%llu bytes)",
				   (unsigned long long)w->max_bytes);
	return 0;
}

int ic_erofs_write(struct ic_erofs_writer *w, const void *buf, size_t len, struct kal_err **err)
{
	const uint8_t *p = buf;

	if (wcheck(w, len, err) < 0)
		return -1;
	if (w->blen == 0 && len >= WBUF_SIZE) {
		/* big aligned chunk: skip the copy */
		size_t n = len & ~(size_t)(IC_EROFS_BLKSIZE - 1);

		if (kal_pwrite_all(w->fd, p, n, (off_t)w->pos, err) < 0)
			return kal_err_wrap(err, "write image");
		w->pos += n;
		p += n;
		len -= n;
	}
	while (len) {
		size_t n = WBUF_SIZE - w->blen;

		if (n > len)
			n = len;
		memcpy(w->buf + w->blen, p, n);
		w->blen += n;
		w->pos += n;
		p += n;
		len -= n;
		if (w->blen == WBUF_SIZE && wflush(w, err) < 0)
			return -1;
	}
	return 0;
}

int ic_erofs_write_zeros(struct ic_erofs_writer *w, uint64_t len, struct kal_err **err)
{
	if (wcheck(w, len, err) < 0)
		return -1;
	while (len) {
		size_t n = WBUF_SIZE - w->blen;

		if (n > len)
			n = (size_t)len;
		memset(w->buf + w->blen, 0, n);
		w->blen += n;
		w->pos += n;
		len -= n;
		if (w->blen == WBUF_SIZE && wflush(w, err) < 0)
			return -1;
	}
	return 0;
}

int ic_erofs_pad_block(struct ic_erofs_writer *w, struct kal_err **err)
{
	uint64_t rem = w->pos & (IC_EROFS_BLKSIZE - 1);

	return rem ? ic_erofs_write_zeros(w, IC_EROFS_BLKSIZE - rem, err) : 0;
}

/* ---- layout ---- */

struct layout {
	struct ic_erofs_inode **order; /* DFS order, order[0] = root */
	size_t n, cap;
	struct ic_erofs_inode **dirs; /* directories in order */
	size_t ndirs;
	bool chunked;
};

static int dentry_cmp(const void *a, const void *b)
{
	const struct ic_erofs_dentry *x = *(struct ic_erofs_dentry *const *)a;
	const struct ic_erofs_dentry *y = *(struct ic_erofs_dentry *const *)b;
	size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
	int c = memcmp(x->name, y->name, n);

	/* byte order, a prefix sorts first: what the kernel's binary search expects */
	return c ? c : (int)x->name_len - (int)y->name_len;
}

static void order_add(struct layout *l, struct ic_erofs_inode *ino)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 1024;
		l->order = xreallocarray(l->order, l->cap, sizeof(*l->order));
	}
	l->order[l->n++] = ino;
	ino->nid = 1; /* marks "seen"; real nids are assigned later */
}

/*
 * Depth-first walk: compact each directory's table into a sorted array (the
 * table is not used after this), count links, and fix the inode order.
 */
static void layout_walk(struct layout *l, struct ic_erofs_inode *root)
{
	struct ic_erofs_inode **stack = NULL;
	size_t sp = 0, scap = 0;

	root->parent = root;
	order_add(l, root);
	stack = xreallocarray(NULL, scap = 64, sizeof(*stack));
	stack[sp++] = root;
	while (sp) {
		struct ic_erofs_inode *d = stack[--sp];
		uint32_t k = 0, subdirs = 0;

		for (uint32_t i = 0; i < d->nslots; i++)
			if (d->slots[i])
				d->slots[k++] = d->slots[i];
		d->nchildren = k;
		if (k > 1)
			qsort(d->slots, k, sizeof(*d->slots), dentry_cmp);
		for (uint32_t i = 0; i < k; i++) {
			struct ic_erofs_inode *c = d->slots[i]->inode;

			if (S_ISDIR(c->mode)) {
				subdirs++;
				c->parent = d;
				c->nlink = 0;
			} else if (c->nid == 0) {
				c->nlink = 0;
			}
			if (c->nid == 0)
				order_add(l, c);
			c->nlink++;
		}
		d->nlink = 2 + subdirs;
		/* push subdirectories in reverse so they are visited in name order */
		for (uint32_t i = k; i-- > 0;) {
			struct ic_erofs_inode *c = d->slots[i]->inode;

			if (!S_ISDIR(c->mode))
				continue;
			if (sp == scap)
				stack = xreallocarray(stack, scap *= 2, sizeof(*stack));
			stack[sp++] = c;
		}
	}
	free(stack);
}

static int mtime_cmp(const void *a, const void *b)
{
	const int64_t *x = a, *y = b;

	if (x[0] != y[0])
		return x[0] < y[0] ? -1 : 1;
	return x[1] < y[1] ? -1 : x[1] > y[1];
}

/* The most common mtime (ties: the smallest), so most inodes can be compact. */
static void pick_build_time(struct layout *l, int64_t *sec, uint32_t *nsec)
{
	int64_t *t = xcalloc(l->n, 2 * sizeof(int64_t));
	size_t best = 0, bestn = 0;

	for (size_t i = 0; i < l->n; i++) {
		t[2 * i] = l->order[i]->mtime;
		t[2 * i + 1] = l->order[i]->mtime_nsec;
	}
	qsort(t, l->n, 2 * sizeof(int64_t), mtime_cmp);
	for (size_t i = 0, j; i < l->n; i = j) {
		for (j = i + 1; j < l->n && !mtime_cmp(&t[2 * i], &t[2 * j]); j++)
			;
		if (j - i > bestn) {
			bestn = j - i;
			best = i;
		}
	}
	*sec = t[2 * best];
	*nsec = (uint32_t)t[2 * best + 1];
	free(t);
}

static const char opaque_name[] = "overlay.opaque";

static uint32_t xattr_entry_len(size_t name_len, size_t value_len)
{
	return (uint32_t)((sizeof(struct ic_erofs_xattr_entry) + name_len + value_len + 3) & ~3u);
}

static uint32_t xattr_ibody_len(const struct ic_erofs_inode *ino)
{
	uint32_t n = 0;

	if (!ino->nxattrs && !ino->opaque)
		return 0;
	n = sizeof(struct ic_erofs_xattr_ibody);
	for (uint16_t i = 0; i < ino->nxattrs; i++)
		n += xattr_entry_len(ino->xattrs[i].name_len, ino->xattrs[i].value_len);
	if (ino->opaque)
		n += xattr_entry_len(sizeof(opaque_name) - 1, 1);
	return n;
}

/* dirent blocks of a directory, and its i_size */
static uint64_t dir_size(struct ic_erofs_dentry **ents, uint32_t n, uint32_t *nblocks)
{
	uint32_t blocks = 1, used = 0;

	for (uint32_t i = 0; i < n; i++) {
		uint32_t need = sizeof(struct ic_erofs_dirent) + ents[i]->name_len;

		if (used + need > IC_EROFS_BLKSIZE) {
			blocks++;
			used = 0;
		}
		used += need;
	}
	*nblocks = blocks;
	return (uint64_t)(blocks - 1) * IC_EROFS_BLKSIZE + used;
}

/* children plus "." and "..", sorted; ents must hold nchildren + 2 */
static void dir_entries(struct ic_erofs_inode *d, struct ic_erofs_dentry *dots,
			struct ic_erofs_dentry **ents)
{
	uint32_t n = 0, i = 0, k = 0;

	dots[0] = (struct ic_erofs_dentry){ .name = ".", .name_len = 1, .inode = d };
	dots[1] = (struct ic_erofs_dentry){ .name = "..", .name_len = 2, .inode = d->parent };
	/* merge the two dots into the sorted children */
	while (i < d->nchildren || k < 2) {
		if (k < 2 &&
		    (i == d->nchildren ||
		     dentry_cmp(&(struct ic_erofs_dentry *){ &dots[k] }, &d->slots[i]) < 0))
			ents[n++] = &dots[k++];
		else
			ents[n++] = d->slots[i++];
	}
}

static uint8_t file_type(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG:
		return IC_EROFS_FT_REG;
	case S_IFDIR:
		return IC_EROFS_FT_DIR;
	case S_IFCHR:
		return IC_EROFS_FT_CHR;
	case S_IFBLK:
		return IC_EROFS_FT_BLK;
	case S_IFIFO:
		return IC_EROFS_FT_FIFO;
	case S_IFSOCK:
		return IC_EROFS_FT_SOCK;
	case S_IFLNK:
		return IC_EROFS_FT_SYMLINK;
	}
	return IC_EROFS_FT_UNKNOWN;
}

static int write_dir(struct ic_erofs_writer *w, struct ic_erofs_inode *d, uint8_t *blk,
		     struct ic_erofs_dentry **ents, struct ic_erofs_dentry *dots,
		     struct kal_err **err)
{
	uint32_t n = d->nchildren + 2, i = 0;

	dir_entries(d, dots, ents);
	while (i < n) {
		uint32_t k = 0, used = 0, nameoff;

		while (i + k < n && used + sizeof(struct ic_erofs_dirent) + ents[i + k]->name_len <=
					IC_EROFS_BLKSIZE) {
			used += sizeof(struct ic_erofs_dirent) + ents[i + k]->name_len;
			k++;
		}
		memset(blk, 0, IC_EROFS_BLKSIZE);
		nameoff = k * sizeof(struct ic_erofs_dirent);
		for (uint32_t j = 0; j < k; j++) {
			struct ic_erofs_dentry *e = ents[i + j];
			struct ic_erofs_dirent de = {
				.nid = htole64(e->inode->nid),
				.nameoff = htole16((uint16_t)nameoff),
				.file_type = file_type(e->inode->mode),
			};

			memcpy(blk + j * sizeof(de), &de, sizeof(de));
			memcpy(blk + nameoff, e->name, e->name_len);
			nameoff += e->name_len;
		}
		if (ic_erofs_write(w, blk, IC_EROFS_BLKSIZE, err) < 0)
			return -1;
		i += k;
	}
	return 0;
}

static size_t put_xattrs(const struct ic_erofs_inode *ino, uint8_t *p)
{
	struct ic_erofs_xattr_ibody hdr = { 0 };
	size_t off = sizeof(hdr);

	memcpy(p, &hdr, sizeof(hdr));
	for (int i = 0; i <= ino->nxattrs; i++) {
		struct ic_erofs_xattr x;
		struct ic_erofs_xattr_entry e;

		if (i < ino->nxattrs) {
			x = ino->xattrs[i];
		} else {
			if (!ino->opaque)
				break;
			x = (struct ic_erofs_xattr){ .index = IC_EROFS_XATTR_TRUSTED,
						     .name_len = sizeof(opaque_name) - 1,
						     .value_len = 1,
						     .name = opaque_name,
						     .value = "y" };
		}
		e.e_name_len = x.name_len;
		e.e_name_index = x.index;
		e.e_value_size = htole16(x.value_len);
		memcpy(p + off, &e, sizeof(e));
		memcpy(p + off + sizeof(e), x.name, x.name_len);
		memcpy(p + off + sizeof(e) + x.name_len, x.value, x.value_len);
		off += xattr_entry_len(x.name_len, x.value_len);
	}
	return off;
}

/* Serialise one inode (core + xattrs + chunk map) into p (zeroed, meta_len bytes). */
static void put_inode(const struct ic_erofs_inode *ino, uint32_t ino_seq, uint8_t *p,
		      uint64_t dsize)
{
	uint32_t xlen = xattr_ibody_len(ino);
	uint16_t icount =
	    xlen ? (uint16_t)((xlen - sizeof(struct ic_erofs_xattr_ibody)) / 4 + 1) : 0;
	uint32_t iu = 0, layout = IC_EROFS_FLAT_PLAIN;
	uint64_t size = 0;
	size_t core;

	switch (ino->mode & S_IFMT) {
	case S_IFREG:
		size = ino->size;
		if (ino->chunks) {
			layout = IC_EROFS_CHUNK_BASED;
			iu = ino->chunkbits & IC_EROFS_CHUNK_BLKBITS_MASK;
		} else {
			iu = ino->size ? ino->blkaddr : 0;
		}
		break;
	case S_IFLNK:
		size = ino->size;
		iu = ino->blkaddr;
		break;
	case S_IFDIR:
		size = dsize;
		iu = ino->blkaddr;
		break;
	case S_IFCHR:
	case S_IFBLK:
		iu = ino->rdev;
		break;
	}
	if (ino->extended) {
		struct ic_erofs_inode_extended e = {
			.i_format = htole16((uint16_t)(IC_EROFS_LAYOUT_EXTENDED | (layout << 1))),
			.i_xattr_icount = htole16(icount),
			.i_mode = htole16((uint16_t)ino->mode),
			.i_size = htole64(size),
			.i_u = htole32(iu),
			.i_ino = htole32(ino_seq),
			.i_uid = htole32(ino->uid),
			.i_gid = htole32(ino->gid),
			.i_mtime = htole64((uint64_t)ino->mtime),
			.i_mtime_nsec = htole32(ino->mtime_nsec),
			.i_nlink = htole32(ino->nlink),
		};
		memcpy(p, &e, sizeof(e));
		core = sizeof(e);
	} else {
		struct ic_erofs_inode_compact c = {
			.i_format = htole16((uint16_t)(IC_EROFS_LAYOUT_COMPACT | (layout << 1))),
			.i_xattr_icount = htole16(icount),
			.i_mode = htole16((uint16_t)ino->mode),
			.i_nlink = htole16((uint16_t)ino->nlink),
			.i_size = htole32((uint32_t)size),
			.i_u = htole32(iu),
			.i_ino = htole32(ino_seq),
			.i_uid = htole16((uint16_t)ino->uid),
			.i_gid = htole16((uint16_t)ino->gid),
		};
		memcpy(p, &c, sizeof(c));
		core = sizeof(c);
	}
	if (xlen)
		core += put_xattrs(ino, p + core);
	for (uint32_t i = 0; ino->chunks && i < ino->nchunks; i++) {
		uint32_t v = htole32(ino->chunks[i]);

		memcpy(p + core + 4 * (size_t)i, &v, 4);
	}
}

int ic_erofs_finish(struct ic_erofs_writer *w, struct ic_erofs_inode *root,
		    const uint8_t uuid_seed[16], struct ic_erofs_stats *st, struct kal_err **err)
{
	struct layout l = { 0 };
	uint64_t *dsizes = NULL, meta_off, total;
	struct ic_erofs_dentry **ents = NULL, dots[2];
	uint32_t max_children = 0, dir_blk, meta_blkaddr;
	uint8_t *blk = NULL, *ibuf = NULL, sbblock[IC_EROFS_BLKSIZE];
	struct ic_erofs_super sb = { 0 };
	int64_t bt;
	uint32_t btn;
	int rc = -1;

	if (ic_erofs_pad_block(w, err) < 0)
		return -1;
	layout_walk(&l, root);
	pick_build_time(&l, &bt, &btn);

	/* directory sizes first: i_size decides compact vs extended */
	dsizes = xcalloc(l.n, sizeof(*dsizes));
	for (size_t i = 0; i < l.n; i++) {
		struct ic_erofs_inode *d = l.order[i];

		if (!S_ISDIR(d->mode))
			continue;
		if (d->nchildren > max_children)
			max_children = d->nchildren;
	}
	ents = xcalloc(max_children + 2, sizeof(*ents));
	dir_blk = ic_erofs_cur_block(w);
	for (size_t i = 0; i < l.n; i++) {
		struct ic_erofs_inode *d = l.order[i];

		if (!S_ISDIR(d->mode))
			continue;
		dir_entries(d, dots, ents);
		dsizes[i] = dir_size(ents, d->nchildren + 2, &d->dir_blocks);
		d->blkaddr = dir_blk;
		dir_blk += d->dir_blocks;
	}

	/* inode sizes and nids; nid 0 stays empty so no inode gets ino 0 */
	meta_off = IC_EROFS_ISLOT;
	for (size_t i = 0; i < l.n; i++) {
		struct ic_erofs_inode *ino = l.order[i];
		uint64_t size = S_ISDIR(ino->mode) ? dsizes[i] : ino->size;
		uint64_t len, inblk;

		ino->extended = ino->uid > 0xffff || ino->gid > 0xffff || ino->nlink > 0xffff ||
				size > 0xffffffffu || ino->mtime != bt || ino->mtime_nsec != btn;
		len = (ino->extended ? sizeof(struct ic_erofs_inode_extended)
				     : sizeof(struct ic_erofs_inode_compact)) +
		      xattr_ibody_len(ino) + 4 * (uint64_t)ino->nchunks;
		if (ino->chunks)
			l.chunked = true;
		ino->meta_len = (uint32_t)len;
		/* keep small inodes inside one block: simpler reads for every parser */
		inblk = meta_off & (IC_EROFS_BLKSIZE - 1);
		if (len <= IC_EROFS_BLKSIZE && inblk + len > IC_EROFS_BLKSIZE)
			meta_off += IC_EROFS_BLKSIZE - inblk;
		ino->nid = meta_off / IC_EROFS_ISLOT;
		meta_off += (len + IC_EROFS_ISLOT - 1) & ~(uint64_t)(IC_EROFS_ISLOT - 1);
	}
	if (root->nid > 0xffff) {
		kal_err_set(err, EOVERFLOW, "root inode nid out of range");
		goto out;
	}

	/* directory blocks */
	blk = xmalloc(IC_EROFS_BLKSIZE);
	for (size_t i = 0; i < l.n; i++) {
		struct ic_erofs_inode *d = l.order[i];

		if (S_ISDIR(d->mode) && write_dir(w, d, blk, ents, dots, err) < 0)
			goto out;
	}
	meta_blkaddr = ic_erofs_cur_block(w);

	/* metadata area */
	{
		uint64_t cur = 0;
		size_t ibuf_cap = 0;

		for (size_t i = 0; i < l.n; i++) {
			struct ic_erofs_inode *ino = l.order[i];
			uint64_t at = ino->nid * IC_EROFS_ISLOT;

			if (ino->meta_len > ibuf_cap) {
				ibuf_cap = ino->meta_len;
				free(ibuf);
				ibuf = xmalloc(ibuf_cap);
			}
			memset(ibuf, 0, ino->meta_len);
			put_inode(ino, (uint32_t)(i + 1), ibuf, S_ISDIR(ino->mode) ? dsizes[i] : 0);
			if (ic_erofs_write_zeros(w, at - cur, err) < 0 ||
			    ic_erofs_write(w, ibuf, ino->meta_len, err) < 0)
				goto out;
			cur = at + ino->meta_len;
		}
	}
	if (ic_erofs_pad_block(w, err) < 0 || wflush(w, err) < 0)
		goto out;
	total = (w->pos + IC_EROFS_ALIGN - 1) & ~(uint64_t)(IC_EROFS_ALIGN - 1);
	if (total >> IC_EROFS_BLKBITS > 0xffffffffu) {
		kal_err_set(err, EFBIG, "image too large for 32-bit block addresses");
		goto out;
	}
	if (ftruncate(w->fd, (off_t)total) < 0) {
		kal_err_sys(err, errno, "extend image to %llu bytes", (unsigned long long)total);
		goto out;
	}

	sb.magic = htole32(IC_EROFS_MAGIC);
	sb.feature_compat = htole32(IC_EROFS_COMPAT_SB_CHKSUM);
	sb.blkszbits = IC_EROFS_BLKBITS;
	sb.root_nid = htole16((uint16_t)root->nid);
	sb.inos = htole64(l.n);
	sb.build_time = htole64((uint64_t)bt);
	sb.build_time_nsec = htole32(btn);
	sb.blocks = htole32((uint32_t)(total >> IC_EROFS_BLKBITS));
	sb.meta_blkaddr = htole32(meta_blkaddr);
	memcpy(sb.uuid, uuid_seed, 16);
	sb.uuid[6] = (uint8_t)((sb.uuid[6] & 0x0f) | 0x40);
	sb.uuid[8] = (uint8_t)((sb.uuid[8] & 0x3f) | 0x80);
	if (l.chunked)
		sb.feature_incompat = htole32(IC_EROFS_INCOMPAT_CHUNKED_FILE);
	memset(sbblock, 0, sizeof(sbblock));
	memcpy(sbblock + IC_EROFS_SUPER_OFFSET, &sb, sizeof(sb));
	sb.checksum = htole32(ic_erofs_crc32c(~0u, sbblock + IC_EROFS_SUPER_OFFSET,
					      IC_EROFS_BLKSIZE - IC_EROFS_SUPER_OFFSET));
	memcpy(sbblock + IC_EROFS_SUPER_OFFSET, &sb, sizeof(sb));
	if (kal_pwrite_all(w->fd, sbblock, sizeof(sbblock), 0, err) < 0) {
		kal_err_wrap(err, "write superblock");
		goto out;
	}
	if (st) {
		st->image_bytes = total;
		st->inodes = l.n;
		st->data_blocks = meta_blkaddr;
	}
	rc = 0;
out:
	free(l.order);
	free(l.dirs);
	free(dsizes);
	free(ents);
	free(blk);
	free(ibuf);
	return rc;
}
