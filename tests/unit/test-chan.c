// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The agent channel without KVM: guest/chan.h's ring code (wrap-around,
 * index wrap at 2^32, hostile indices, the sleep/wake protocol) and the
 * host side in vmm/chan.c on its real memfd region with pipes for the
 * agent fds, the test playing the guest on the region: bridging both ways,
 * the doorbell bell, back-pressure, a broken ring and RESET, save/restore.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "guest/chan.h"
#include "lib/err.h"
#include "lib/log.h"
#include "vmm/chan.h"
#include "vmm/snap.h"

/* ---- the ring library on plain memory ---- */

struct fake_ring {
	struct chan_ctl ctl;
	uint8_t data[64];
};

static void test_ring_wrap(void **state)
{
	struct fake_ring f = { 0 };
	struct chan_ring tx, rx;
	uint8_t in[200], out[200];
	size_t sent = 0, got = 0;

	(void)state;
	for (unsigned int i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 7 + 1);
	/* both indices start just below 2^32: the stream crosses the u32 wrap */
	f.ctl.head = f.ctl.tail = 0xffffffd0u;
	chan_ring_init(&tx, &f.ctl, f.data, sizeof(f.data), 1, f.ctl.head);
	chan_ring_init(&rx, &f.ctl, f.data, sizeof(f.data), 0, f.ctl.tail);
	assert_int_equal(chan_ring_avail(&tx), 64);
	assert_int_equal(chan_ring_avail(&rx), 0);
	while (got < sizeof(in)) {
		long w = chan_ring_write(&tx, in + sent, (uint32_t)(sizeof(in) - sent));
		long r;

		assert_true(w >= 0);
		sent += (size_t)w;
		/* odd read sizes so reads straddle the ring's end */
		r = chan_ring_read(&rx, out + got,
				   (uint32_t)(sizeof(out) - got < 23 ? sizeof(out) - got : 23));
		assert_true(r >= 0);
		got += (size_t)r;
	}
	assert_memory_equal(in, out, sizeof(in));
	assert_int_equal(f.ctl.head, 0xffffffd0u + 200);
	assert_int_equal(f.ctl.tail, f.ctl.head);
	/* full ring: the producer gets 0, not an overwrite */
	memset(in, 0x5a, sizeof(in));
	assert_int_equal(chan_ring_write(&tx, in, 100), 64);
	assert_int_equal(chan_ring_write(&tx, in, 1), 0);
	assert_int_equal(chan_ring_avail(&rx), 64);
}

static void test_ring_hostile(void **state)
{
	struct fake_ring f = { 0 };
	struct chan_ring tx, rx;
	uint8_t b[8];

	(void)state;
	chan_ring_init(&rx, &f.ctl, f.data, sizeof(f.data), 0, 0);
	f.ctl.head = 65; /* one byte more than the ring holds */
	assert_int_equal(chan_ring_read(&rx, b, sizeof(b)), -1);
	assert_true(rx.broken);
	assert_int_equal(rx.bad, 65);
	f.ctl.head = 1; /* sticky: a sane value later does not revive it */
	assert_int_equal(chan_ring_read(&rx, b, sizeof(b)), -1);
	assert_int_equal(f.ctl.tail, 0); /* nothing consumed */

	memset(&f, 0, sizeof(f));
	chan_ring_init(&rx, &f.ctl, f.data, sizeof(f.data), 0, 100);
	f.ctl.head = 99; /* head behind tail */
	assert_int_equal(chan_ring_avail(&rx), -1);

	memset(&f, 0, sizeof(f));
	chan_ring_init(&tx, &f.ctl, f.data, sizeof(f.data), 1, 10);
	f.ctl.tail = 11; /* tail beyond head */
	assert_int_equal(chan_ring_write(&tx, b, 1), -1);
	assert_int_equal(tx.bad, 11);
	assert_int_equal(f.ctl.head, 0); /* nothing published */

	chan_ring_init(&tx, &f.ctl, f.data, sizeof(f.data), 1, 10);
	f.ctl.tail = 10u - 64; /* exactly full: legal */
	assert_int_equal(chan_ring_avail(&tx), 0);
	f.ctl.tail = 10u - 65; /* more than full */
	assert_int_equal(chan_ring_avail(&tx), -1);
}

static void test_ring_sleep_wake(void **state)
{
	struct fake_ring f = { 0 };
	struct chan_ring tx, rx;
	uint8_t b = 1;

	(void)state;
	chan_ring_init(&tx, &f.ctl, f.data, sizeof(f.data), 1, 0);
	chan_ring_init(&rx, &f.ctl, f.data, sizeof(f.data), 0, 0);
	assert_false(chan_ring_wake_peer(&tx)); /* nobody waits */
	assert_true(chan_ring_sleep_ok(&rx));	/* empty: may sleep */
	assert_int_equal(f.ctl.data_wait, 1);
	assert_int_equal(chan_ring_write(&tx, &b, 1), 1);
	assert_true(chan_ring_wake_peer(&tx)); /* it waits: ring once */
	assert_int_equal(f.ctl.data_wait, 0);
	assert_false(chan_ring_wake_peer(&tx)); /* not twice */
	/* data already there: no sleep, flag cleared again */
	assert_false(chan_ring_sleep_ok(&rx));
	assert_int_equal(f.ctl.data_wait, 0);
	/* the producer's side: full ring, wait for space */
	for (int i = 0; i < 63; i++)
		chan_ring_write(&tx, &b, 1);
	assert_true(chan_ring_sleep_ok(&tx));
	assert_int_equal(chan_ring_read(&rx, &b, 1), 1);
	assert_true(chan_ring_wake_peer(&rx));
	assert_false(chan_ring_sleep_ok(&tx));
}

/* ---- the host side ---- */

struct fix {
	struct vmm_chan *c;
	int in[2], out[2];	 /* in[1]: the test feeds the guest; out[0]: what the guest sent */
	struct chan_ring tx, rx; /* the guest's views */
	uint8_t *region;
};

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));
	struct kal_err *err = NULL;

	assert_int_equal(pipe2(f->in, O_CLOEXEC | O_NONBLOCK), 0);
	assert_int_equal(pipe2(f->out, O_CLOEXEC | O_NONBLOCK), 0);
	f->c = vmm_chan_create(f->in[0], f->out[1], 0, &err);
	assert_non_null(f->c);
	f->region = vmm_chan_region(f->c);
	chan_rings_init(f->region, 0, &f->tx, &f->rx);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;

	vmm_chan_destroy(f->c);
	for (int i = 0; i < 2; i++) {
		if (f->in[i] >= 0)
			close(f->in[i]);
		if (f->out[i] >= 0)
			close(f->out[i]);
	}
	free(f);
	return 0;
}

static void test_host_header(void **state)
{
	struct fix *f = *state;
	char cl[64];

	assert_true(chan_hdr_ok(f->region));
	assert_int_equal(((struct chan_hdr *)f->region)->status, CHAN_STATUS_OK);
	vmm_chan_cmdline(cl, sizeof(cl));
	assert_string_equal(cl, "kal.channel=ring@0xcf000000");
	assert_int_equal(CHAN_H2G_DATA + CHAN_RING_SIZE <= CHAN_REGION_SIZE, 1);
	assert_int_equal(sizeof(struct chan_ctl), 4 * CHAN_CACHELINE);
}

static void test_host_bridge(void **state)
{
	struct fix *f = *state;
	uint8_t buf[64];
	char bell;

	/* guest -> host */
	assert_int_equal(chan_ring_write(&f->tx, "hello host", 10), 10);
	vmm_chan_service(f->c);
	assert_int_equal(read(f->out[0], buf, sizeof(buf)), 10);
	assert_memory_equal(buf, "hello host", 10);
	/* the host went idle waiting for data: the guest's next write must ring */
	assert_int_equal(chan_ring_write(&f->tx, "x", 1), 1);
	assert_true(chan_ring_wake_peer(&f->tx));
	vmm_chan_service(f->c);
	assert_int_equal(read(f->out[0], buf, sizeof(buf)), 1);

	/* host -> guest, with the guest asleep: a bell byte on the agent console's input */
	assert_true(chan_ring_sleep_ok(&f->rx));
	assert_int_equal(write(f->in[1], "hello guest", 11), 11);
	vmm_chan_service(f->c);
	assert_int_equal(read(vmm_chan_bell_fd(f->c), &bell, 1), 1);
	assert_int_equal(chan_ring_read(&f->rx, buf, sizeof(buf)), 11);
	assert_memory_equal(buf, "hello guest", 11);
	/* awake guest: no bell */
	assert_int_equal(write(f->in[1], "again", 5), 5);
	vmm_chan_service(f->c);
	assert_int_equal(read(vmm_chan_bell_fd(f->c), &bell, 1), -1);
	assert_int_equal(chan_ring_read(&f->rx, buf, sizeof(buf)), 5);
}

static void test_host_backpressure(void **state)
{
	struct fix *f = *state;
	static uint8_t chunk[CHAN_RING_SIZE], sink[1 << 17];
	size_t total = 0, drained = 0;
	long n;

	/* the host reader stalls: its pipe holds 4 KiB */
	assert_true(fcntl(f->out[1], F_SETPIPE_SZ, 4096) >= 4096);
	for (unsigned int i = 0; i < sizeof(chunk); i++)
		chunk[i] = (uint8_t)i;
	for (int round = 0; round < 8; round++) {
		n = chan_ring_write(&f->tx, chunk, sizeof(chunk));
		assert_true(n >= 0);
		total += (size_t)n;
		vmm_chan_service(f->c);
	}
	/* ring full, host buffer full, pipe full: nothing more moves, nothing is lost */
	assert_int_equal(chan_ring_avail(&f->tx), 0);
	assert_true(total <= CHAN_RING_SIZE + VMM_CHAN_BUF + 4096 + 4096);
	/* the reader catches up: everything arrives in order */
	for (int round = 0; round < 64 && drained < total; round++) {
		n = read(f->out[0], sink + drained, sizeof(sink) - drained);
		if (n > 0)
			drained += (size_t)n;
		vmm_chan_service(f->c);
	}
	assert_int_equal(drained, total);
	for (size_t i = 0; i < total; i++)
		if (sink[i] != (uint8_t)(i % CHAN_RING_SIZE))
			fail_msg("byte %zu is %u", i, sink[i]);
}

static void test_host_hostile_and_reset(void **state)
{
	struct fix *f = *state;
	uint8_t buf[16];

	kal_log_set_level(KAL_LOG_ERROR); /* the warnings are expected */
	/* head far past tail */
	__atomic_store_n(&f->tx.ctl->head, 0x80000000u, __ATOMIC_RELEASE);
	vmm_chan_service(f->c);
	assert_true(vmm_chan_broken(f->c));
	assert_int_equal(((struct chan_hdr *)f->region)->status, CHAN_STATUS_BROKEN);
	/* stopped: host input no longer reaches the ring */
	assert_int_equal(write(f->in[1], "late", 4), 4);
	vmm_chan_service(f->c);
	assert_int_equal(f->rx.ctl->head, 0);
	/* RESET through the doorbell page's MMIO fallback */
	assert_true(vmm_chan_mmio(f->c, CHAN_DOORBELL_GPA + CHAN_DOORBELL_RESET, buf, 4, true));
	assert_false(vmm_chan_mmio(f->c, CHAN_GPA, buf, 4, true));
	vmm_chan_service(f->c);
	assert_false(vmm_chan_broken(f->c));
	assert_int_equal(((struct chan_hdr *)f->region)->status, CHAN_STATUS_OK);
	chan_rings_init(f->region, 0, &f->tx, &f->rx);
	/* "late" was still in the pipe: it flows now */
	assert_int_equal(chan_ring_read(&f->rx, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "late", 4);

	/* tail beyond head: seen when the host produces */
	__atomic_store_n(&f->rx.ctl->tail, 1000, __ATOMIC_RELEASE);
	assert_int_equal(write(f->in[1], "boom", 4), 4);
	vmm_chan_service(f->c);
	assert_true(vmm_chan_broken(f->c));
	kal_log_set_level(KAL_LOG_WARN);
}

static void test_host_reader_gone(void **state)
{
	struct fix *f = *state;
	uint8_t buf[16];

	kal_log_set_level(KAL_LOG_ERROR); /* "dropping guest bytes" is expected */
	signal(SIGPIPE, SIG_IGN);	  /* as kal's main() does */
	close(f->out[0]);
	f->out[0] = -1;
	/* guest bytes are dropped, never block the guest's ring */
	assert_int_equal(chan_ring_write(&f->tx, "to nobody", 9), 9);
	vmm_chan_service(f->c);
	assert_int_equal(chan_ring_avail(&f->tx), CHAN_RING_SIZE);
	assert_false(vmm_chan_broken(f->c));
	/* the other direction still works; then host input ends */
	assert_int_equal(write(f->in[1], "still", 5), 5);
	close(f->in[1]);
	f->in[1] = -1;
	vmm_chan_service(f->c);
	assert_int_equal(chan_ring_read(&f->rx, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "still", 5);
	vmm_chan_service(f->c);
	assert_int_equal(chan_ring_read(&f->rx, buf, sizeof(buf)), 0);
	kal_log_set_level(KAL_LOG_WARN);
}

static void test_host_save_restore(void **state)
{
	struct fix *f = *state;
	struct snap_writer w = { 0 };
	struct snap_reader r;
	struct kal_err *err = NULL;
	static uint8_t chunk[6000], sink[1 << 16];
	size_t drained = 0;
	long n;

	assert_true(fcntl(f->out[1], F_SETPIPE_SZ, 4096) >= 4096);
	for (unsigned int i = 0; i < sizeof(chunk); i++)
		chunk[i] = (uint8_t)(i * 3);
	assert_int_equal(chan_ring_write(&f->tx, chunk, sizeof(chunk)), sizeof(chunk));
	vmm_chan_service(f->c); /* pipe full, the host holds the rest in its buffer */
	assert_int_equal(vmm_chan_save(f->c, &w, &err), 0);
	vmm_chan_scribble(f->c);
	memset(f->region, 0xee, 4096); /* and the header page */
	r = (struct snap_reader){ .buf = w.buf, .len = w.len };
	assert_int_equal(vmm_chan_restore(f->c, &r, &err), 0);
	assert_true(chan_hdr_ok(f->region));
	for (int round = 0; round < 64 && drained < sizeof(chunk); round++) {
		n = read(f->out[0], sink + drained, sizeof(sink) - drained);
		if (n > 0)
			drained += (size_t)n;
		vmm_chan_service(f->c);
	}
	assert_int_equal(drained, sizeof(chunk));
	assert_memory_equal(sink, chunk, sizeof(chunk));

	/* a record claiming more buffered bytes than the cap */
	memset(w.buf + 4 + 4 + 1 + 4 + 4, 0xff, 4);
	r = (struct snap_reader){ .buf = w.buf, .len = w.len };
	assert_int_equal(vmm_chan_restore(f->c, &r, &err), -1);
	assert_string_equal(err->msg,
			    "agent channel record: 4294967295 buffered output bytes exceed "
			    "the cap of 4096");
	kal_err_free(err);
	err = NULL;
	/* truncated */
	r = (struct snap_reader){ .buf = w.buf, .len = 30 };
	assert_int_equal(vmm_chan_restore(f->c, &r, &err), -1);
	kal_err_free(err);
	snap_writer_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ring_wrap),
		cmocka_unit_test(test_ring_hostile),
		cmocka_unit_test(test_ring_sleep_wake),
		cmocka_unit_test_setup_teardown(test_host_header, setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_bridge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_backpressure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_hostile_and_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_reader_gone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_save_restore, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
