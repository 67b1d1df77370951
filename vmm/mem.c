// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Guest-physical address translation for the device model.  Kept tiny and
 * branch-simple: it runs for every descriptor of every request.
 */
#include <errno.h>
#include <stddef.h>

#include "mem.h"

int guest_mem_add(struct guest_mem *m, uint64_t gpa, uint64_t size, void *host, unsigned int flags)
{
	uint64_t end;

	if (m->nr >= GUEST_MEM_MAX_REGIONS || size == 0 || !host)
		return -EINVAL;
	if (__builtin_add_overflow(gpa, size, &end))
		return -EINVAL;
	for (unsigned int i = 0; i < m->nr; i++) {
		const struct guest_mem_region *o = &m->r[i];

		/* [gpa, end) and [o->gpa, o->gpa + o->size) overlap? */
		if (gpa < o->gpa + o->size && o->gpa < end)
			return -EINVAL;
	}
	m->r[m->nr++] =
	    (struct guest_mem_region){ .gpa = gpa, .size = size, .host = host, .flags = flags };
	return 0;
}

void *guest_mem_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len, bool device_writes)
{
	for (unsigned int i = 0; i < m->nr; i++) {
		const struct guest_mem_region *r = &m->r[i];
		uint64_t off;

		if (gpa < r->gpa)
			continue;
		off = gpa - r->gpa;
		if (off > r->size || (off == r->size && len))
			continue; /* maybe the next region, which may start right here */
		/* off <= size, so size - off cannot wrap: no addition that could overflow */
		if (len > r->size - off)
			return NULL; /* crosses the region's end: never split across regions */
		if (device_writes && (r->flags & GUEST_MEM_NO_DEVICE_WRITE))
			return NULL;
		return r->host + off;
	}
	return NULL;
}
