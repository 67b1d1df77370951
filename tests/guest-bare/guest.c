// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Bare test guest for kal's VMM (no libc, no Linux).  Drives every virtio-mmio
 * device the VMM announces on the command line, then plays a hostile driver:
 * chains that loop, run past the queue, point outside RAM or into pmem,
 * overflow, or go the wrong way.  Each must be refused with NEEDS_RESET while
 * the VMM keeps serving.  With the agent channel on the command line it
 * round-trips frames over the shared-memory rings (the host loops them back)
 * and breaks the rings' indices on purpose.  Results are TAP lines on debug
 * port 0xe9; the last act is an exit code on port 0xf4 (0 = every check
 * passed).  `kal.bench=agent` runs only a timed agent round-trip loop.
 * Kept small on purpose: on nested kvm_pvm each guest instruction costs ~1 us.
 */
#include <stdint.h>

#include "../../guest/chan.h"

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;

#define PORT_DEBUG    0xe9
#define PORT_EXIT     0xf4
#define PORT_SNAPSHOT 0xf5

/* virtio-mmio registers and status bits (virtio 1.2, 4.2.2) */
#define R_MAGIC		0x000
#define R_VERSION	0x004
#define R_DEVICE_ID	0x008
#define R_DEV_FEAT	0x010
#define R_DEV_FEAT_SEL	0x014
#define R_DRV_FEAT	0x020
#define R_DRV_FEAT_SEL	0x024
#define R_QUEUE_SEL	0x030
#define R_QUEUE_NUM_MAX 0x034
#define R_QUEUE_NUM	0x038
#define R_QUEUE_READY	0x044
#define R_QUEUE_NOTIFY	0x050
#define R_ISR		0x060
#define R_ISR_ACK	0x064
#define R_STATUS	0x070
#define R_DESC_LO	0x080
#define R_DESC_HI	0x084
#define R_AVAIL_LO	0x090
#define R_AVAIL_HI	0x094
#define R_USED_LO	0x0a0
#define R_USED_HI	0x0a4
#define R_CONFIG	0x100
#define S_ACK		1
#define S_DRIVER	2
#define S_DRIVER_OK	4
#define S_FEATURES_OK	8
#define S_NEEDS_RESET	0x40
#define D_NEXT		1
#define D_WRITE		2
#define D_INDIRECT	4

#define ID_NET	   1
#define ID_CONSOLE 3
#define ID_BLK	   2
#define ID_RNG	   4
#define ID_PMEM	   27

#define QSIZE	 8
#define MAX_DEVS 8

struct desc {
	u64 addr;
	u32 len;
	u16 flags;
	u16 next;
};

struct vq {
	volatile struct desc *desc;
	volatile u16 *avail; /* flags, idx, ring[QSIZE] */
	volatile u16 *used;  /* flags, idx, then {u32 id, u32 len}[QSIZE] */
	u16 avail_idx, used_seen;
};

struct dev {
	u64 base;
	u32 irq, id;
	unsigned int nq;
	struct vq q[2];
	volatile u32 irqs;     /* interrupts taken */
	volatile u32 isr_seen; /* InterruptStatus bits the handler read and acked */
};

struct start_info {
	u32 magic, version, flags, nr_modules;
	u64 modlist, cmdline, rsdp, memmap;
	u32 memmap_entries, reserved;
};

static struct dev devs[MAX_DEVS];
static unsigned int nr_devs;
static u8 rings[MAX_DEVS][2][4096] __attribute__((aligned(4096)));
static u8 bufs[4][4096] __attribute__((aligned(4096)));
static unsigned int test_nr, failed;

/* ---- freestanding basics ---- */

void *memset(void *d, int c, unsigned long n);
void *memcpy(void *d, const void *s, unsigned long n);

/* string instructions: one emulated instruction instead of a loop of them (nested kvm_pvm) */
void *memset(void *d, int c, unsigned long n)
{
	void *p = d;

	__asm__ volatile("rep stosb" : "+D"(p), "+c"(n) : "a"(c) : "memory");
	return d;
}

void *memcpy(void *d, const void *s, unsigned long n)
{
	void *p = d;
	unsigned long q = n / 8, r = n % 8;

	/* the emulator steps a rep per element: 8 bytes at a time, then the rest */
	__asm__ volatile("rep movsq" : "+D"(p), "+S"(s), "+c"(q) : : "memory");
	__asm__ volatile("rep movsb" : "+D"(p), "+S"(s), "+c"(r) : : "memory");
	return d;
}

static int memeq(const void *a, const void *b, unsigned long n)
{
	const u8 *p = a, *q = b;

	while (n--)
		if (*p++ != *q++)
			return 0;
	return 1;
}

static unsigned long slen(const char *s)
{
	unsigned long n = 0;

	while (s[n])
		n++;
	return n;
}

static inline void outb(u16 port, u8 v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline u8 inb(u16 port)
{
	u8 v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline void mb(void)
{
	__asm__ volatile("mfence" ::: "memory");
}

static void puts_dbg(const char *s)
{
	while (*s)
		outb(PORT_DEBUG, (u8)*s++);
}

static void put_hex(u64 v)
{
	char b[19];
	int i = 18;

	b[i] = 0;
	do {
		b[--i] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v);
	b[--i] = 'x';
	b[--i] = '0';
	puts_dbg(b + i);
}

static void put_dec(u64 v)
{
	char b[21];
	int i = 20;

	b[i] = 0;
	do {
		b[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	puts_dbg(b + i);
}

static void __attribute__((noreturn)) guest_exit(u8 code)
{
	for (;;)
		outb(PORT_EXIT, code);
}

static void ok(int cond, const char *what)
{
	test_nr++;
	if (!cond) {
		failed++;
		puts_dbg("not ");
	}
	puts_dbg("ok ");
	put_dec(test_nr);
	puts_dbg(" - ");
	puts_dbg(what);
	puts_dbg("\n");
}

/* ---- virtio-mmio driver ---- */

static u32 rd(struct dev *d, u32 off)
{
	return *(volatile u32 *)(d->base + off);
}

static void wr(struct dev *d, u32 off, u32 v)
{
	*(volatile u32 *)(d->base + off) = v;
}

static void setup_queue_regs(struct dev *d, unsigned int qi, u32 num, u64 desc)
{
	u64 avail = (u64)(unsigned long)&rings[d - devs][qi][256];
	u64 used = (u64)(unsigned long)&rings[d - devs][qi][512];

	wr(d, R_QUEUE_SEL, qi);
	wr(d, R_QUEUE_NUM, num);
	wr(d, R_DESC_LO, (u32)desc);
	wr(d, R_DESC_HI, (u32)(desc >> 32));
	wr(d, R_AVAIL_LO, (u32)avail);
	wr(d, R_AVAIL_HI, (u32)(avail >> 32));
	wr(d, R_USED_LO, (u32)used);
	wr(d, R_USED_HI, (u32)(used >> 32));
	wr(d, R_QUEUE_READY, 1);
}

/* Reset and bring up to FEATURES_OK; returns the status read back. */
static u32 dev_negotiate(struct dev *d, u32 feat_hi)
{
	wr(d, R_STATUS, 0);
	wr(d, R_STATUS, S_ACK);
	wr(d, R_STATUS, S_ACK | S_DRIVER);
	wr(d, R_DRV_FEAT_SEL, 1);
	wr(d, R_DRV_FEAT, feat_hi);
	wr(d, R_DRV_FEAT_SEL, 0);
	wr(d, R_DRV_FEAT, 0);
	wr(d, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
	return rd(d, R_STATUS);
}

static int dev_init(struct dev *d)
{
	if (!(dev_negotiate(d, 1 /* VERSION_1 */) & S_FEATURES_OK))
		return 0;
	for (unsigned int qi = 0; qi < d->nq; qi++) {
		struct vq *q = &d->q[qi];

		memset(rings[d - devs][qi], 0, 4096);
		q->desc = (volatile struct desc *)&rings[d - devs][qi][0];
		q->avail = (volatile u16 *)&rings[d - devs][qi][256];
		q->used = (volatile u16 *)&rings[d - devs][qi][512];
		q->avail_idx = q->used_seen = 0;
		setup_queue_regs(d, qi, QSIZE, (u64)(unsigned long)q->desc);
		if (!rd(d, R_QUEUE_READY))
			return 0;
	}
	wr(d, R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	return rd(d, R_STATUS) == (S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
}

static void set_desc(struct vq *q, u16 i, const void *addr, u32 len, u16 flags, u16 next)
{
	q->desc[i].addr = (u64)(unsigned long)addr;
	q->desc[i].len = len;
	q->desc[i].flags = flags;
	q->desc[i].next = next;
}

/* Offer head (the descriptors are already written) and kick. */
static void vq_kick(struct dev *d, unsigned int qi, u16 head)
{
	struct vq *q = &d->q[qi];

	q->avail[2 + (q->avail_idx % QSIZE)] = head;
	mb(); /* ring entry before the index that publishes it */
	q->avail[1] = ++q->avail_idx;
	mb(); /* index before the doorbell */
	wr(d, R_QUEUE_NOTIFY, qi);
}

/*
 * How often vq_wait() reads the status register (an exit to the VMM) while
 * spinning: every 64 spins suits emulated CPL0 code (~1 us per instruction);
 * native CPL3 code spins ~1000x faster and raises it (enter_user callers).
 */
static unsigned long status_every = 63;
/* spins before a wait gives up: a few seconds at either speed */
static unsigned long spin_limit = 2000000;

/* Wait for the next used entry: 1 with *len, 0 on timeout, -1 when the device needs reset. */
static int vq_wait(struct dev *d, unsigned int qi, u32 *len)
{
	struct vq *q = &d->q[qi];

	for (unsigned long spin = 0; spin < spin_limit; spin++) {
		if (q->used[1] != q->used_seen) {
			volatile u32 *e =
			    (volatile u32 *)(q->used + 2) + 2 * (q->used_seen % QSIZE);

			mb(); /* entry after the index */
			*len = e[1];
			q->used_seen++;
			return 1;
		}
		if ((spin & status_every) == status_every && (rd(d, R_STATUS) & S_NEEDS_RESET))
			return -1;
		__asm__ volatile("pause");
	}
	return 0;
}

/* Submit a one-buffer writable request and wait; returns bytes written or -1. */
static long vq_in(struct dev *d, unsigned int qi, void *buf, u32 len)
{
	u32 got;

	set_desc(&d->q[qi], 0, buf, len, D_WRITE, 0);
	vq_kick(d, qi, 0);
	return vq_wait(d, qi, &got) == 1 ? (long)got : -1;
}

/* Did the device refuse what we just offered: NEEDS_RESET plus a config interrupt? */
static int refused(struct dev *d)
{
	u32 len;
	int r = vq_wait(d, 0, &len);
	u32 isr = rd(d, R_ISR);

	wr(d, R_ISR_ACK, isr);
	return r == -1 && (isr & 2);
}

/* ---- the checks ---- */

static struct dev *find(u32 id)
{
	for (unsigned int i = 0; i < nr_devs; i++)
		if (devs[i].id == id)
			return &devs[i];
	return 0;
}

static u64 parse_num(const char **s)
{
	u64 v = 0;
	const char *p = *s;

	if (p[0] == '0' && p[1] == 'x') {
		for (p += 2;; p++) {
			u32 c = (u8)*p;

			if (c >= '0' && c <= '9')
				v = v * 16 + c - '0';
			else if (c >= 'a' && c <= 'f')
				v = v * 16 + c - 'a' + 10;
			else
				break;
		}
	} else {
		while (*p >= '0' && *p <= '9')
			v = v * 10 + (u64)(*p++ - '0');
	}
	*s = p;
	return v;
}

static u64 chan_gpa;	/* kal.channel=ring@GPA, or 0 */
static int bench_agent; /* kal.bench=agent or kal.bench=agent-user */
static int bench_user;	/* ...-user: the benchmark runs at CPL3 */

/* virtio_mmio.device=4K@0xd0000000:5 entries, as the kernel would parse them */
static void parse_cmdline(const char *s)
{
	static const char key[] = "virtio_mmio.device=";
	static const char chan_key[] = CHAN_CMDLINE_KEY;
	static const char bench_key[] = "kal.bench=agent";

	while (*s) {
		if (memeq(s, chan_key, sizeof(chan_key) - 1)) {
			s += sizeof(chan_key) - 1;
			chan_gpa = parse_num(&s);
		} else if (memeq(s, bench_key, sizeof(bench_key) - 1)) {
			s += sizeof(bench_key) - 1;
			bench_agent = 1;
			bench_user = memeq(s, "-user", 5);
		} else if (memeq(s, key, sizeof(key) - 1) && nr_devs < MAX_DEVS) {
			struct dev *d = &devs[nr_devs];

			s += sizeof(key) - 1;
			while (*s && *s != '@')
				s++;
			if (*s != '@')
				return;
			s++;
			d->base = parse_num(&s);
			if (*s == ':') {
				s++;
				d->irq = (u32)parse_num(&s);
			}
			if (rd(d, R_MAGIC) == 0x74726976 && rd(d, R_VERSION) == 2) {
				d->id = rd(d, R_DEVICE_ID);
				d->nq = d->id == ID_CONSOLE || d->id == ID_NET ? 2 : 1;
				nr_devs++;
			}
		} else {
			s++;
		}
	}
}

static void test_console(struct dev *d)
{
	static const char hello[] = "hello from the bare guest\n";
	u32 len = 0, isr;
	long n;

	memcpy(bufs[0], hello, sizeof(hello) - 1);
	set_desc(&d->q[1], 0, bufs[0], sizeof(hello) - 1, 0, 0);
	vq_kick(d, 1, 0);
	ok(vq_wait(d, 1, &len) == 1 && len == 0, "console: transmit buffer used, 0 bytes written");
	isr = rd(d, R_ISR);
	wr(d, R_ISR_ACK, isr);
	ok(isr & 1, "console: used-buffer interrupt status set");
	ok(rd(d, R_ISR) == 0, "console: interrupt status cleared by ack");

	memset(bufs[1], 0, 64);
	n = vq_in(d, 0, bufs[1], 64);
	ok(n == 5 && memeq(bufs[1], "ping\n", 5), "console: received `ping` from the host");
}

static void test_blk(struct dev *d)
{
	static const char pattern[] = "written by the bare guest";
	struct {
		u32 type, ioprio;
		u64 sector;
	} *hdr = (void *)bufs[0];
	u8 *status = bufs[0] + 64;
	u8 *data = bufs[1];
	u64 cap = (u64)rd(d, R_CONFIG) | ((u64)rd(d, R_CONFIG + 4) << 32);
	u32 len;
	int r;

	ok(cap == 2048, "blk: capacity 2048 sectors from config space");

	/* GET_ID */
	hdr->type = 8;
	hdr->sector = 0;
	memset(data, 0, 32);
	set_desc(&d->q[0], 0, hdr, 16, D_NEXT, 1);
	set_desc(&d->q[0], 1, data, 20, D_WRITE | D_NEXT, 2);
	set_desc(&d->q[0], 2, status, 1, D_WRITE, 0);
	*status = 0xff;
	vq_kick(d, 0, 0);
	r = vq_wait(d, 0, &len);
	ok(r == 1 && *status == 0 && memeq(data, "kal-test-disk", 14),
	   "blk: serial `kal-test-disk`");

	/* read sector 0 */
	hdr->type = 0;
	hdr->sector = 0;
	set_desc(&d->q[0], 1, data, 512, D_WRITE | D_NEXT, 2);
	*status = 0xff;
	vq_kick(d, 0, 0);
	r = vq_wait(d, 0, &len);
	ok(r == 1 && *status == 0 && len == 513 && memeq(data, "KALDISK0", 8),
	   "blk: read sector 0 (513 bytes used)");

	/* write sector 1, flush, read it back */
	memset(data, 0, 512);
	memcpy(data, pattern, sizeof(pattern) - 1);
	hdr->type = 1;
	hdr->sector = 1;
	set_desc(&d->q[0], 1, data, 512, D_NEXT, 2);
	*status = 0xff;
	vq_kick(d, 0, 0);
	r = vq_wait(d, 0, &len);
	ok(r == 1 && *status == 0 && len == 1, "blk: write sector 1");
	hdr->type = 4;
	set_desc(&d->q[0], 0, hdr, 16, D_NEXT, 2);
	*status = 0xff;
	vq_kick(d, 0, 0);
	r = vq_wait(d, 0, &len);
	ok(r == 1 && *status == 0, "blk: flush");
	hdr->type = 0;
	hdr->sector = 1;
	memset(data, 0, 512);
	set_desc(&d->q[0], 0, hdr, 16, D_NEXT, 1);
	set_desc(&d->q[0], 1, data, 512, D_WRITE | D_NEXT, 2);
	*status = 0xff;
	vq_kick(d, 0, 0);
	r = vq_wait(d, 0, &len);
	ok(r == 1 && *status == 0 && memeq(data, pattern, sizeof(pattern) - 1),
	   "blk: sector 1 reads back");

	/* past the end: the request fails, the device does not */
	hdr->sector = cap;
	*status = 0xff;
	vq_kick(d, 0, 0);
	r = vq_wait(d, 0, &len);
	ok(r == 1 && *status == 1, "blk: read past the end fails with IOERR");
	ok(!(rd(d, R_STATUS) & S_NEEDS_RESET), "blk: still live after a failed request");
}

static void test_pmem(struct dev *d)
{
	u64 start = (u64)rd(d, R_CONFIG) | ((u64)rd(d, R_CONFIG + 4) << 32);
	u64 size = (u64)rd(d, R_CONFIG + 8) | ((u64)rd(d, R_CONFIG + 12) << 32);
	volatile u8 *p = (volatile u8 *)(unsigned long)start;
	u32 *req = (u32 *)bufs[0], *resp = (u32 *)(bufs[0] + 64), len;
	int r;

	ok(start == 0x100000000ull && size == 2ull << 20, "pmem: window 2 MiB at 4 GiB");
	ok(p[0] == 'K' && p[1] == 'A' && p[2] == 'L' && p[7] == '0', "pmem: reads the image");
	p[0] = 'X';
	p[4096] = 'Y';
	mb();
	ok(p[0] == 'K' && p[4096] == 0, "pmem: guest stores are dropped");

	*req = 0; /* VIRTIO_PMEM_REQ_TYPE_FLUSH */
	*resp = 0xffffffff;
	set_desc(&d->q[0], 0, req, 4, D_NEXT, 1);
	set_desc(&d->q[0], 1, resp, 4, D_WRITE, 0);
	vq_kick(d, 0, 0);
	r = vq_wait(d, 0, &len);
	ok(r == 1 && *resp == 0 && len == 4, "pmem: flush answered");
}

static void test_rng(struct dev *d)
{
	long n;
	int nonzero = 0;

	memset(bufs[2], 0, 64);
	n = vq_in(d, 0, bufs[2], 64);
	for (int i = 0; i < 64; i++)
		nonzero |= bufs[2][i];
	ok(n == 64 && nonzero, "rng: 64 bytes of entropy");
}

/*
 * virtio-net on slirp: post a receive buffer, send an ARP request for the
 * gateway 10.0.2.2 from 10.0.2.15, and expect slirp's ARP reply.
 */
static void test_net(struct dev *d)
{
	static const u8 mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
	static const u8 arp_head[8] = { 0, 1, 8, 0, 6, 4, 0, 1 }; /* Ethernet/IPv4, request */
	static const u8 gw[4] = { 10, 0, 2, 2 }, me[4] = { 10, 0, 2, 15 };
	u8 *tx = bufs[0], *rx = bufs[3], *a = rx + 12 + 14;
	u32 len = 0;
	int sent;

	memset(rx, 0, 128);
	set_desc(&d->q[0], 0, rx, 12 + 1514, D_WRITE, 0);
	vq_kick(d, 0, 0);
	memset(tx, 0, 12 + 42); /* virtio_net_hdr_v1, no offloads */
	memset(tx + 12, 0xff, 6);
	memcpy(tx + 12 + 6, mac, 6);
	tx[12 + 12] = 0x08; /* ethertype ARP */
	tx[12 + 13] = 0x06;
	memcpy(tx + 26, arp_head, 8);
	memcpy(tx + 34, mac, 6);
	memcpy(tx + 40, me, 4);
	memcpy(tx + 50, gw, 4);
	set_desc(&d->q[1], 0, tx, 12 + 42, 0, 0);
	vq_kick(d, 1, 0);
	sent = vq_wait(d, 1, &len) == 1;
	ok(sent, "net: ARP request for 10.0.2.2 transmitted");
	ok(sent && vq_wait(d, 0, &len) == 1 && len >= 12 + 42 && rx[12 + 12] == 0x08 &&
	       rx[12 + 13] == 0x06 && a[7] == 2 && memeq(a + 14, gw, 4) && memeq(a + 18, mac, 6) &&
	       memeq(rx + 12, mac, 6),
	   "net: slirp answers the ARP request (reply from 10.0.2.2 to our MAC)");
}

/* One hostile submission on d's queue 0, then recovery by reset. */
static void hostile(struct dev *d, const char *what, u16 head, int jump)
{
	struct vq *q = &d->q[0];
	char line[120];
	unsigned long n = slen(what);

	if (jump) { /* publish more entries than the queue holds */
		q->avail_idx += QSIZE + 1;
		mb();
		q->avail[1] = q->avail_idx;
		mb();
		wr(d, R_QUEUE_NOTIFY, 0);
	} else {
		vq_kick(d, 0, head);
	}
	memcpy(line, "hostile: ", 9);
	memcpy(line + 9, what, n + 1);
	ok(refused(d), line);
	/* the guest's side of recovery: reset, set up again, and the device serves */
	ok(dev_init(d) && vq_in(d, 0, bufs[2], 16) == (d->id == ID_RNG ? 16 : -1),
	   "hostile: device serves again after reset");
}

static void test_hostile(struct dev *rng, struct dev *pmem)
{
	struct vq *q = &rng->q[0];
	u8 *buf = bufs[3];

	set_desc(q, 0, buf, 16, D_WRITE | D_NEXT, 1);
	set_desc(q, 1, buf, 16, D_WRITE | D_NEXT, 0);
	hostile(rng, "descriptor loop 0->1->0", 0, 0);

	for (u16 i = 0; i < QSIZE; i++)
		set_desc(q, i, buf, 16, D_WRITE | D_NEXT, (u16)((i + 1) % QSIZE));
	hostile(rng, "chain longer than the queue", 0, 0);

	hostile(rng, "head index out of range", QSIZE, 0);

	set_desc(q, 0, buf, 16, D_WRITE | D_NEXT, QSIZE);
	hostile(rng, "next index out of range", 0, 0);

	q->desc[0] = (struct desc){ .addr = 0x80000000ull, .len = 16, .flags = D_WRITE };
	hostile(rng, "buffer outside guest RAM", 0, 0);

	q->desc[0] = (struct desc){ .addr = 0xd0000000ull, .len = 16, .flags = D_WRITE };
	hostile(rng, "buffer in the MMIO window", 0, 0);

	q->desc[0] = (struct desc){ .addr = 0xfffffffffffffff0ull, .len = 32, .flags = D_WRITE };
	hostile(rng, "address + length overflows u64", 0, 0);

	set_desc(q, 0, buf, 16, 0, 0);
	hostile(rng, "readable buffer for a device that writes", 0, 0);

	set_desc(q, 0, buf, 16, D_WRITE | D_NEXT, 1);
	set_desc(q, 1, buf, 16, D_NEXT, 0);
	hostile(rng, "readable descriptor after a writable one", 0, 0);

	set_desc(q, 0, buf, 16, D_WRITE | D_INDIRECT, 0);
	hostile(rng, "indirect descriptor never negotiated", 0, 0);

	hostile(rng, "available index jumps past the queue size", 0, 1);

	if (pmem) {
		q->desc[0] = (struct desc){ .addr = 0x100000000ull, .len = 64, .flags = D_WRITE };
		hostile(rng, "writable buffer in the pmem window", 0, 0);
	}

	/* transport: a queue size that is not a power of two, a misaligned ring */
	dev_negotiate(rng, 1);
	setup_queue_regs(rng, 0, 3, (u64)(unsigned long)&rings[rng - devs][0][0]);
	ok(!rd(rng, R_QUEUE_READY) && (rd(rng, R_STATUS) & S_NEEDS_RESET),
	   "hostile: queue size 3 refused");
	dev_negotiate(rng, 1);
	setup_queue_regs(rng, 0, QSIZE, (u64)(unsigned long)&rings[rng - devs][0][8]);
	ok(!rd(rng, R_QUEUE_READY) && (rd(rng, R_STATUS) & S_NEEDS_RESET),
	   "hostile: misaligned descriptor ring refused");
	ok(!(dev_negotiate(rng, 0) & S_FEATURES_OK),
	   "hostile: FEATURES_OK without VERSION_1 refused");
	wr(rng, R_STATUS, S_ACK | S_DRIVER | S_DRIVER_OK);
	ok(!(rd(rng, R_STATUS) & S_DRIVER_OK), "hostile: DRIVER_OK before FEATURES_OK refused");
	ok(dev_init(rng) && vq_in(rng, 0, bufs[2], 16) == 16, "hostile: rng serves after all that");
}

/* ---- the agent channel: shared-memory rings (guest/chan.h) ---- */

#define FRAME_LEN 32

static struct dev *agent; /* the second console: ring doorbells, or the stream itself */
static struct chan_ring ctx, crx;
static u32 kicks, bells;
static u8 bell_buf[64], frame[FRAME_LEN], back[FRAME_LEN];

static inline u64 rdtsc(void)
{
	u32 lo, hi;

	__asm__ volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi));
	return ((u64)hi << 32) | lo;
}

static volatile struct chan_hdr *chan_hdr(void)
{
	return (volatile struct chan_hdr *)(unsigned long)chan_gpa;
}

static void chan_doorbell(u32 off)
{
	*(volatile u32 *)(unsigned long)(CHAN_DOORBELL_GPA + off) = 1;
}

/*
 * The bell's receive buffer on the agent port: a host byte there = look
 * at the rings.  Posted lazily, just before a sleep, so the notify it costs
 * overlaps the host's work instead of delaying the bytes that woke us.
 */
static int bell_posted;

static void bell_post(void)
{
	if (bell_posted)
		return;
	set_desc(&agent->q[0], 0, bell_buf, sizeof(bell_buf), D_WRITE, 0);
	vq_kick(agent, 0, 0);
	bell_posted = 1;
}

static void chan_views(void)
{
	chan_rings_init((void *)(unsigned long)chan_gpa, 0, &ctx, &crx);
}

static int chan_send(const void *p, u32 len)
{
	if (chan_ring_write(&ctx, p, len) != (long)len)
		return 0;
	if (chan_ring_wake_peer(&ctx)) {
		chan_doorbell(CHAN_DOORBELL_KICK);
		kicks++;
	}
	return 1;
}

enum { RECV_SLEEP, RECV_SPIN, RECV_SPIN_THEN_SLEEP };
#define RECV_SPIN_CYCLES 40000 /* ~20 us: a quick answer is caught without the bell */

/* Exactly len bytes: spin on the ring, sleep until the host's bell byte, or spin a little first. */
static int chan_recv(void *p, u32 len, int poll)
{
	u32 got = 0, blen;
	u64 t0 = poll == RECV_SPIN_THEN_SLEEP ? rdtsc() : 0;

	for (unsigned long spin = 0; spin < spin_limit && got < len; spin++) {
		long n = chan_ring_read(&crx, (u8 *)p + got, len - got);

		if (n < 0)
			return 0;
		if (n > 0) {
			got += (u32)n;
			if (chan_ring_wake_peer(&crx))
				chan_doorbell(CHAN_DOORBELL_KICK);
			continue;
		}
		if (poll == RECV_SPIN ||
		    (poll == RECV_SPIN_THEN_SLEEP && rdtsc() - t0 < RECV_SPIN_CYCLES))
			continue;
		bell_post();
		if (!chan_ring_sleep_ok(&crx))
			continue;
		if (vq_wait(agent, 0, &blen) != 1)
			return 0;
		bells++;
		bell_posted = 0;
	}
	return got == len;
}

/* A guest/proto.h-shaped frame: u32 length, u16 type, u16 flags, u32 session, payload. */
static void frame_make(u32 seq)
{
	static const char payload[] = "ping over the rings!";

	memset(frame, 0, sizeof(frame));
	frame[0] = FRAME_LEN - 12;
	frame[4] = 2; /* a PING */
	frame[8] = (u8)seq;
	frame[9] = (u8)(seq >> 8);
	memcpy(frame + 12, payload, FRAME_LEN - 12);
}

/* The timed loop's trip: the frame is built once, only its session id changes. */
static int chan_bench_trip(u32 seq, int poll)
{
	frame[8] = (u8)seq;
	return chan_send(frame, FRAME_LEN) && chan_recv(back, FRAME_LEN, poll) &&
	       back[8] == (u8)seq;
}

static int chan_round_trip(u32 seq, int poll)
{
	frame_make(seq);
	memset(back, 0, sizeof(back));
	return chan_send(frame, FRAME_LEN) && chan_recv(back, FRAME_LEN, poll) &&
	       memeq(frame, back, FRAME_LEN);
}

static int chan_wait_status(u32 want)
{
	for (unsigned long spin = 0; spin < 200000; spin++) {
		if (chan_hdr()->status == want)
			return 1;
		__asm__ volatile("pause");
	}
	return 0;
}

/* RESET, then fresh views: both rings start over at index 0. */
static int chan_reset(void)
{
	chan_doorbell(CHAN_DOORBELL_RESET);
	if (!chan_wait_status(CHAN_STATUS_OK))
		return 0;
	/* the host zeroes the indices before it clears status: ours start over too */
	chan_views();
	return 1;
}

/* The region and the doorbell page are a reserved (type 2) entry of the PVH memory map. */
static int chan_reserved(const struct start_info *si)
{
	const struct {
		u64 addr, size;
		u32 type, reserved;
	} *e = (const void *)(unsigned long)si->memmap;

	for (u32 i = 0; i < si->memmap_entries; i++)
		if (e[i].type == 2 && e[i].addr <= chan_gpa &&
		    e[i].addr + e[i].size >= CHAN_DOORBELL_GPA + CHAN_DOORBELL_SIZE)
			return 1;
	return 0;
}

static void test_chan(struct dev *rng, const struct start_info *si)
{
	u32 blen, k0;
	int r;

	ok(chan_gpa == CHAN_GPA && agent, "chan: kal.channel=ring@0xcf000000 and the agent port");
	if (chan_gpa != CHAN_GPA || !agent)
		return;
	ok(chan_hdr_ok((void *)(unsigned long)chan_gpa) && chan_hdr()->status == CHAN_STATUS_OK,
	   "chan: header magic, version 1, 16 KiB rings");
	ok(chan_reserved(si), "chan: region and doorbell page reserved in the memory map");
	chan_views();
	bell_post();

	k0 = kicks;
	ok(chan_round_trip(1, RECV_SLEEP),
	   "chan: frame round trip guest->host->guest over the rings");
	ok(kicks > k0, "chan: guest->host doorbell rung (the host was waiting)");

	/* sleep first, deterministically: the host must ring the bell */
	bell_post();
	ok(chan_ring_sleep_ok(&crx), "chan: receive ring empty, waiting announced");
	frame_make(2);
	r = chan_send(frame, FRAME_LEN) && vq_wait(agent, 0, &blen) == 1;
	bells += r;
	bell_posted = 0;
	bell_post();
	ok(r && chan_recv(back, FRAME_LEN, RECV_SPIN) && memeq(frame, back, FRAME_LEN),
	   "chan: host->guest doorbell byte on the agent port, then the echo");

	for (u32 i = 0; i < 8; i++)
		r = chan_round_trip(100 + i, RECV_SLEEP) && (i == 0 || r);
	ok(r, "chan: 8 more round trips");

	/* a frame in flight through save, scribble, restore */
	frame_make(3);
	r = chan_send(frame, FRAME_LEN);
	outb(PORT_SNAPSHOT, 1);
	ok(r && inb(PORT_SNAPSHOT) == 0, "chan: state saved and restored with a frame in flight");
	ok(chan_recv(back, FRAME_LEN, RECV_SLEEP) && memeq(frame, back, FRAME_LEN),
	   "chan: the in-flight frame arrives after the restore");
	ok(chan_round_trip(4, RECV_SLEEP), "chan: round trip after the restore");

	/* hostile: a head far past the tail */
	__atomic_store_n(&ctx.ctl->head, ctx.pos + 0x80000000u, __ATOMIC_RELEASE);
	chan_doorbell(CHAN_DOORBELL_KICK);
	ok(chan_wait_status(CHAN_STATUS_BROKEN),
	   "chan hostile: head far past tail stops the channel");
	ok(vq_in(rng, 0, bufs[2], 16) == 16, "chan hostile: the VMM and rng keep serving");
	ok(chan_reset() && chan_round_trip(5, RECV_SLEEP), "chan: works again after a reset");

	/* hostile: our tail beyond the host's head; the host sees it when it echoes */
	__atomic_store_n(&crx.ctl->tail, crx.pos + 100, __ATOMIC_RELEASE);
	frame_make(6);
	chan_send(frame, FRAME_LEN);
	chan_doorbell(CHAN_DOORBELL_KICK);
	ok(chan_wait_status(CHAN_STATUS_BROKEN),
	   "chan hostile: tail beyond head stops the channel");
	ok(chan_reset() && chan_round_trip(7, RECV_SLEEP),
	   "chan: works again after a second reset");
	puts_dbg("# chan: ");
	put_dec(kicks);
	puts_dbg(" kicks, ");
	put_dec(bells);
	puts_dbg(" bells\n");
}

/* The agent stream on the agent port itself (--agent console): send, wait for the echo. */
static int stream_trip(u32 seq)
{
	u32 len, got = 0;

	frame[8] = (u8)seq;
	set_desc(&agent->q[0], 0, back, FRAME_LEN, D_WRITE, 0);
	vq_kick(agent, 0, 0);
	set_desc(&agent->q[1], 0, frame, FRAME_LEN, 0, 0);
	vq_kick(agent, 1, 0);
	if (vq_wait(agent, 1, &len) != 1)
		return 0;
	while (got < FRAME_LEN) {
		if (vq_wait(agent, 0, &len) != 1)
			return 0;
		got += len;
		if (got < FRAME_LEN) {
			set_desc(&agent->q[0], 0, back + got, FRAME_LEN - got, D_WRITE, 0);
			vq_kick(agent, 0, 0);
		}
	}
	return back[8] == (u8)seq;
}

static int stream_round_trip(u32 seq)
{
	frame_make(seq);
	memset(back, 0, sizeof(back));
	return stream_trip(seq) && memeq(frame, back, FRAME_LEN);
}

/* kal.bench=agent: N timed round trips on whatever the agent channel is; cycles per trip */
static void bench_report(const char *what, u64 t0, u32 n, int good)
{
	u64 dt = rdtsc() - t0;

	puts_dbg("# bench agent ");
	puts_dbg(what);
	puts_dbg(": ");
	put_dec(good ? dt / n : 0);
	puts_dbg(" cycles per round trip of a ");
	put_dec(FRAME_LEN);
	puts_dbg("-byte frame\n");
}

#define BENCH_TRIPS 200

void enter_user(void (*fn)(void), void *stack_top) __attribute__((noreturn));
static u8 user_stack[16384] __attribute__((aligned(16)));

static void bench_run(void)
{
	int good = 1;
	u64 t0;

	puts_dbg(bench_user ? "# bench agent at CPL3\n" : "# bench agent at CPL0\n");
	if (!agent) {
		puts_dbg("Bail out! no agent port\n");
		guest_exit(2);
	}
	dev_init(agent);
	frame_make(0);
	if (chan_gpa) {
		chan_views();
		bell_post();
		for (u32 i = 0; i < 4; i++) /* warm up */
			good &= chan_bench_trip(i, RECV_SLEEP);
		t0 = rdtsc();
		for (u32 i = 0; i < BENCH_TRIPS; i++)
			good &= chan_bench_trip(i, RECV_SLEEP);
		bench_report("ring", t0, BENCH_TRIPS, good);
		t0 = rdtsc();
		for (u32 i = 0; i < BENCH_TRIPS; i++)
			good &= chan_bench_trip(i, RECV_SPIN_THEN_SLEEP);
		bench_report("ring-adaptive", t0, BENCH_TRIPS, good);
		t0 = rdtsc();
		for (u32 i = 0; i < BENCH_TRIPS; i++)
			good &= chan_bench_trip(i, RECV_SPIN);
		bench_report("ring-poll", t0, BENCH_TRIPS, good);
	} else {
		for (u32 i = 0; i < 4; i++)
			good &= stream_trip(i);
		t0 = rdtsc();
		for (u32 i = 0; i < BENCH_TRIPS; i++)
			good &= stream_trip(i);
		bench_report("console", t0, BENCH_TRIPS, good);
	}
	guest_exit(good ? 0 : 1);
}

/* ---- interrupts: IDT, LAPIC, IOAPIC (the in-kernel irqchip's) ---- */

#define LAPIC	   0xfee00000ul
#define IOAPIC	   0xfec00000ul
#define IRQ_VECTOR 0x40

struct gate {
	u16 off0, sel;
	u8 ist, attr;
	u16 off1;
	u32 off2, zero;
};

static struct gate idt[256] __attribute__((aligned(16)));
extern char exc_stubs[], irq_stubs[];

void guest_exception(u64 vec, u64 rip);
void guest_irq(u32 n);

void guest_exception(u64 vec, u64 rip)
{
	puts_dbg("Bail out! exception ");
	put_dec(vec);
	puts_dbg(" at ");
	put_hex(rip);
	puts_dbg("\n");
	guest_exit(3);
}

static volatile u32 serial_irqs;

void guest_irq(u32 n)
{
	if (n == 7) {		  /* COM1 */
		(void)inb(0x3fa); /* IIR read acknowledges transmitter-empty */
		serial_irqs++;
	} else if (n < nr_devs) {
		struct dev *d = &devs[n];
		u32 isr = rd(d, R_ISR);

		wr(d, R_ISR_ACK, isr); /* what Linux's vm_interrupt does */
		d->isr_seen |= isr;
		d->irqs++;
	}
	*(volatile u32 *)(LAPIC + 0xb0) = 0; /* EOI */
}

static void set_gate(unsigned int v, u64 handler)
{
	idt[v] = (struct gate){ .off0 = (u16)handler,
				.sel = 0x08,
				.attr = 0x8e,
				.off1 = (u16)(handler >> 16),
				.off2 = (u32)(handler >> 32) };
}

static void ioapic_write(u32 reg, u32 v)
{
	*(volatile u32 *)IOAPIC = reg;
	*(volatile u32 *)(IOAPIC + 0x10) = v;
}

static void irq_setup(void)
{
	struct {
		u16 limit;
		u64 base;
	} __attribute__((packed)) idtr = { sizeof(idt) - 1, (u64)(unsigned long)idt };

	for (unsigned int v = 0; v < 32; v++)
		set_gate(v, (u64)(unsigned long)exc_stubs + 16 * v);
	for (unsigned int i = 0; i < 8; i++)
		set_gate(IRQ_VECTOR + i, (u64)(unsigned long)irq_stubs + 16 * i);
	__asm__ volatile("lidt %0" : : "m"(idtr));
	outb(0x21, 0xff); /* the legacy PICs stay masked: the IOAPIC delivers */
	outb(0xa1, 0xff);
	*(volatile u32 *)(LAPIC + 0xf0) = 0x1ff; /* software enable, spurious vector 0xff */
	*(volatile u32 *)(LAPIC + 0x80) = 0;	 /* accept every priority */
	ioapic_write(0x11 + 2 * 4, 0);		 /* COM1, ISA IRQ 4, on stub 7 */
	ioapic_write(0x10 + 2 * 4, IRQ_VECTOR + 7);
	for (unsigned int i = 0; i < nr_devs && i < 7; i++) {
		/* edge, active high, fixed delivery to APIC 0, unmasked */
		ioapic_write(0x11 + 2 * devs[i].irq, 0);
		ioapic_write(0x10 + 2 * devs[i].irq, IRQ_VECTOR + i);
	}
}

static void test_interrupts(struct dev *rng, struct dev *con)
{
	u32 before = rng->irqs, len, halts = 0;
	struct vq *q = &rng->q[0];
	u16 seen;

	irq_setup();
	__asm__ volatile("sti");
	ok(vq_in(rng, 0, bufs[2], 16) == 16, "irq: rng request with interrupts enabled");
	for (unsigned long spin = 0; spin < 100000 && rng->irqs == before; spin++)
		__asm__ volatile("pause");
	ok(rng->irqs > before && (rng->isr_seen & 1),
	   "irq: device interrupt delivered through the IOAPIC, status acked by the handler");

	/* sleep in hlt until the used-buffer interrupt wakes the vCPU */
	__asm__ volatile("cli");
	before = rng->irqs;
	seen = q->used[1];
	set_desc(q, 0, bufs[2], 16, D_WRITE, 0);
	vq_kick(rng, 0, 0);
	while (q->used[1] == seen) {
		__asm__ volatile("sti; hlt; cli"); /* sti's shadow: no wakeup lost before hlt */
		halts++;
	}
	__asm__ volatile("sti");
	for (unsigned long spin = 0; spin < 100000 && rng->irqs == before; spin++)
		__asm__ volatile("pause");
	q->used_seen++;
	puts_dbg("# halted ");
	put_dec(halts);
	puts_dbg(" times\n");
	ok(rng->irqs > before, "irq: a halted vCPU is woken by the device interrupt");
	/* COM1: enabling the transmitter-empty interrupt raises IRQ 4 */
	outb(0x3f9, 0x02);
	for (unsigned long spin = 0; spin < 100000 && !serial_irqs; spin++)
		__asm__ volatile("pause");
	outb(0x3f9, 0x00);
	ok(serial_irqs > 0, "irq: COM1 transmitter-empty interrupt on IRQ 4");
	if (con) {
		before = con->irqs;
		memcpy(bufs[0], "irq\n", 4);
		set_desc(&con->q[1], 0, bufs[0], 4, 0, 0);
		vq_kick(con, 1, 0);
		ok(vq_wait(con, 1, &len) == 1, "irq: console transmit with interrupts enabled");
		for (unsigned long spin = 0; spin < 100000 && con->irqs == before; spin++)
			__asm__ volatile("pause");
		ok(con->irqs > before, "irq: console interrupt on its own line");
	}
}

/* COM1 as Linux's 8250 driver probes it, then a line of output */
static void test_serial(void)
{
	static const char hello[] = "serial: hello from COM1\n";

	ok(inb(0x3fd) == 0x60, "serial: transmitter reports empty");
	outb(0x3fc, 0x1a); /* loopback | OUT2 | RTS */
	ok((inb(0x3fe) & 0xf0) == 0x90, "serial: loopback reflects the modem control lines");
	outb(0x3fc, 0x0b);
	for (const char *p = hello; *p; p++) {
		while (!(inb(0x3fd) & 0x20))
			;
		outb(0x3f8, (u8)*p);
	}
}

void guest_main(struct start_info *si);

void guest_main(struct start_info *si)
{
	struct dev *con, *blk, *pmem, *rng, *net;

	puts_dbg("TAP version 13\n");
	ok(si->magic == 0x336ec578, "pvh: start_info magic");
	ok(si->memmap_entries >= 2, "pvh: memory map present");
	test_serial();
	parse_cmdline((const char *)(unsigned long)si->cmdline);
	con = find(ID_CONSOLE);
	for (unsigned int i = 0; i < nr_devs; i++)
		if (devs[i].id == ID_CONSOLE && &devs[i] != con)
			agent = &devs[i];
	if (bench_agent && bench_user) {
		status_every = 0xffff;
		spin_limit = 1000000000;
		enter_user(bench_run, user_stack + sizeof(user_stack));
	}
	if (bench_agent)
		bench_run();
	blk = find(ID_BLK);
	pmem = find(ID_PMEM);
	rng = find(ID_RNG);
	net = find(ID_NET);
	ok(con && rng, "virtio-mmio: console and rng found from the command line");
	for (unsigned int i = 0; i < nr_devs; i++) {
		puts_dbg("# device id ");
		put_dec(devs[i].id);
		puts_dbg(" at ");
		put_hex(devs[i].base);
		puts_dbg(" irq ");
		put_dec(devs[i].irq);
		puts_dbg("\n");
		ok(dev_init(&devs[i]), "virtio-mmio: device initialised (VERSION_1 accepted)");
	}
	if (con)
		test_console(con);
	if (blk)
		test_blk(blk);
	if (pmem)
		test_pmem(pmem);
	if (net)
		test_net(net);
	if (rng && blk) {
		/* device state through save -> scribble -> restore, then keep using it */
		outb(PORT_SNAPSHOT, 1);
		ok(inb(PORT_SNAPSHOT) == 0, "snapshot: every device saved and restored");
		test_rng(rng);
		ok(rd(blk, R_STATUS) == 0xf, "snapshot: blk status restored");
		test_blk(blk);
	}
	if (rng) {
		test_rng(rng);
		test_hostile(rng, pmem);
	}
	if (rng && (chan_gpa || agent)) {
		if (chan_gpa)
			test_chan(rng, si);
		else
			ok(stream_round_trip(1),
			   "agent port: frame echoed over the console stream");
	}
	if (rng)
		test_interrupts(rng, con);
	if (con) {
		static const char bye[] = "console still works after the hostile chains\n";
		u32 len;

		memcpy(bufs[0], bye, sizeof(bye) - 1);
		set_desc(&con->q[1], 0, bufs[0], sizeof(bye) - 1, 0, 0);
		vq_kick(con, 1, 0);
		ok(vq_wait(con, 1, &len) == 1, "console: transmit after the hostile chains");
	}
	puts_dbg("1..");
	put_dec(test_nr);
	puts_dbg("\n");
	guest_exit(failed ? 1 : 0);
}
