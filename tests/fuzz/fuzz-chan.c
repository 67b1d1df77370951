// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer target for the host side of the agent channel (vmm/chan.c with
 * guest/chan.h's ring code): the input is a script the "guest" plays on the
 * shared region between service calls of the host.  Each step is 5 bytes:
 *
 *   +--------+--------------+
 *   | op u8  | value u32 LE |
 *   +--------+--------------+
 *   op % 9: 0 ring 0 head := v     1 ring 1 tail := v    2 wait flags := v
 *           3 v % 4096 bytes into the host input pipe
 *           4 service               5 RESET doorbell      6 save/scribble/restore
 *           7 drain the host output pipe                 8 region byte v%64K := v>>16
 * Invariants: no sanitizer report; the host never holds more than its caps;
 * a broken channel stays broken (and moves nothing) until RESET.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "guest/chan.h"
#include "lib/err.h"
#include "lib/log.h"
#include "vmm/chan.h"
#include "vmm/snap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t junk[1 << 16];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kal_err *err = NULL;
	struct vmm_chan *c;
	struct chan_ctl *g2h, *h2g;
	uint8_t *region, b[4];
	bool reset_rung = false;
	int in[2], out[2];

	kal_log_set_level(KAL_LOG_ERROR);
	if (pipe2(in, O_CLOEXEC | O_NONBLOCK) < 0)
		return 0;
	if (pipe2(out, O_CLOEXEC | O_NONBLOCK) < 0) {
		close(in[0]);
		close(in[1]);
		return 0;
	}
	fcntl(out[1], F_SETPIPE_SZ, 4096);
	c = vmm_chan_create(in[0], out[1], 0, &err);
	if (!c)
		abort();
	region = vmm_chan_region(c);
	g2h = (struct chan_ctl *)(region + CHAN_G2H_CTL);
	h2g = (struct chan_ctl *)(region + CHAN_H2G_CTL);
	for (size_t at = 0; at + 5 <= size; at += 5) {
		uint32_t v;
		bool was_broken;
		uint32_t h2g_head;

		memcpy(&v, data + at + 1, 4);
		switch (data[at] % 9) {
		case 0:
			__atomic_store_n(&g2h->head, v, __ATOMIC_RELEASE);
			break;
		case 1:
			__atomic_store_n(&h2g->tail, v, __ATOMIC_RELEASE);
			break;
		case 2:
			g2h->space_wait = v & 1;
			h2g->data_wait = (v >> 1) & 1;
			break;
		case 3:
			if (write(in[1], junk, v % 4096) < 0) {
				/* a full pipe: the host is not reading, which is the point */
			}
			break;
		case 4:
			was_broken = vmm_chan_broken(c);
			h2g_head = h2g->head;
			vmm_chan_service(c);
			if (was_broken && !reset_rung && h2g->head != h2g_head)
				abort(); /* a stopped channel moved bytes */
			reset_rung = false;
			break;
		case 5:
			vmm_chan_mmio(c, CHAN_DOORBELL_GPA + CHAN_DOORBELL_RESET, b, 4, true);
			reset_rung = true;
			break;
		case 6: {
			struct snap_writer w = { 0 };
			struct snap_reader r;

			if (vmm_chan_save(c, &w, &err) < 0)
				abort();
			vmm_chan_scribble(c);
			r = (struct snap_reader){ .buf = w.buf, .len = w.len };
			if (vmm_chan_restore(c, &r, &err) < 0)
				abort(); /* our own record must always restore */
			snap_writer_free(&w);
			break;
		}
		case 7:
			while (read(out[0], junk, sizeof(junk)) > 0)
				;
			break;
		case 8:
			region[v % CHAN_REGION_SIZE] = (uint8_t)(v >> 16);
			break;
		}
	}
	vmm_chan_destroy(c);
	close(in[0]);
	close(in[1]);
	close(out[0]);
	close(out[1]);
	return 0;
}
