// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * PVH boot against fake guest memory: the ELF loader on good and hostile
 * files (every offset and size checked, exact errors), the Xen entry note,
 * and the start_info / memory map / command line layout.
 */
#include <elf.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/err.h"
#include "vmm/boot.h"
#include "vmm/mem.h"
#include "vmm/mptable.h"

#define RAM (4u << 20)

struct img {
	Elf64_Ehdr eh;
	Elf64_Phdr ph[2];
	Elf64_Nhdr nh;
	char name[4];
	uint32_t entry;
	uint8_t code[64];
};

static struct guest_mem mem;
static uint8_t *ram;
static char path[] = "/tmp/kal-test-elf-XXXXXX";

static int setup(void **state)
{
	int fd = mkstemp(path);

	(void)state;
	close(fd);
	ram = calloc(1, RAM);
	memset(&mem, 0, sizeof(mem));
	guest_mem_add(&mem, 0, RAM, ram, 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	free(ram);
	return 0;
}

static void good(struct img *m)
{
	memset(m, 0, sizeof(*m));
	memcpy(m->eh.e_ident, ELFMAG, SELFMAG);
	m->eh.e_ident[EI_CLASS] = ELFCLASS64;
	m->eh.e_machine = EM_X86_64;
	m->eh.e_type = ET_EXEC;
	m->eh.e_phoff = offsetof(struct img, ph);
	m->eh.e_phentsize = sizeof(Elf64_Phdr);
	m->eh.e_phnum = 2;
	m->ph[0] = (Elf64_Phdr){ .p_type = PT_LOAD,
				 .p_offset = offsetof(struct img, code),
				 .p_paddr = 0x100000,
				 .p_filesz = 64,
				 .p_memsz = 4096 };
	m->ph[1] = (Elf64_Phdr){ .p_type = PT_NOTE,
				 .p_offset = offsetof(struct img, nh),
				 .p_filesz = sizeof(Elf64_Nhdr) + 8 };
	m->nh = (Elf64_Nhdr){ .n_namesz = 4, .n_descsz = 4, .n_type = 18 };
	memcpy(m->name, "Xen", 4);
	m->entry = 0x100010;
	memset(m->code, 0x90, sizeof(m->code));
}

static void write_img(const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	fclose(f);
}

static void expect_err(const char *suffix)
{
	struct kal_err *err = NULL;
	uint64_t entry, end;
	size_t n = strlen(suffix), len;

	assert_int_equal(vmm_boot_load_elf(&mem, path, &entry, &end, &err), -1);
	len = strlen(err->msg);
	if (len < n || strcmp(err->msg + len - n, suffix))
		fail_msg("error `%s` does not end in `%s`", err->msg, suffix);
	kal_err_free(err);
}

static void test_load_good(void **state)
{
	struct img m;
	struct kal_err *err = NULL;
	uint64_t entry = 0, end = 0, gpa = 0, size = 0;

	(void)state;
	good(&m);
	memset(ram + 0x100000, 0xcc, 8192);
	write_img(&m, sizeof(m));
	assert_int_equal(vmm_boot_load_elf(&mem, path, &entry, &end, &err), 0);
	assert_int_equal(entry, 0x100010);
	assert_int_equal(end, 0x101000);
	/* the same file as an initrd: top of RAM, page aligned */
	assert_int_equal(vmm_boot_load_initrd(&mem, RAM, end, path, &gpa, &size, &err), 0);
	assert_int_equal(size, sizeof(m));
	assert_int_equal(gpa, (RAM - sizeof(m)) & ~0xfffull);
	assert_memory_equal(ram + gpa, &m, sizeof(m));
	assert_int_equal(vmm_boot_load_initrd(&mem, RAM, RAM - 16, path, &gpa, &size, &err), -1);
	assert_true(strstr(err->msg, "do not fit in guest RAM above the kernel") != NULL);
	kal_err_clear(&err);
	assert_int_equal(ram[0x100000], 0x90);
	assert_int_equal(ram[0x100000 + 64], 0); /* bss zeroed */
	assert_int_equal(ram[0x100000 + 4095], 0);
	assert_int_equal(ram[0x100000 + 4096], 0xcc); /* nothing past memsz */
}

static void test_load_hostile(void **state)
{
	struct img m;

	(void)state;
	good(&m);
	write_img(&m, 10);
	expect_err(": not an ELF file");
	good(&m);
	m.eh.e_machine = EM_AARCH64;
	write_img(&m, sizeof(m));
	expect_err(": not an x86-64 ELF");
	good(&m);
	m.eh.e_phnum = 60000;
	write_img(&m, sizeof(m));
	expect_err(": program headers out of file");
	good(&m);
	m.eh.e_phoff = UINT64_MAX - 8;
	write_img(&m, sizeof(m));
	expect_err(": program headers out of file");
	good(&m);
	m.ph[0].p_offset = UINT64_MAX - 8;
	write_img(&m, sizeof(m));
	expect_err(": segment 0 out of file");
	good(&m);
	m.ph[0].p_filesz = 8192;
	write_img(&m, sizeof(m));
	expect_err(": segment 0 out of file");
	good(&m);
	m.ph[0].p_memsz = 16;
	write_img(&m, sizeof(m));
	expect_err(": segment 0 file size > memory size");
	good(&m);
	m.ph[0].p_paddr = 0x7000; /* over start_info */
	write_img(&m, sizeof(m));
	expect_err(": segment 0 at 0x7000 is below 1 MiB");
	good(&m);
	m.ph[0].p_memsz = RAM;
	write_img(&m, sizeof(m));
	expect_err(": segment 0 [0x100000, +0x400000) does not fit in guest RAM");
	good(&m);
	m.ph[0].p_paddr = UINT64_MAX - 16;
	write_img(&m, sizeof(m));
	expect_err("does not fit in guest RAM");
	good(&m);
	m.nh.n_namesz = 0xffffffff; /* note sizes run off the segment */
	write_img(&m, sizeof(m));
	expect_err(": no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); build it with CONFIG_PVH=y");
	good(&m);
	m.nh.n_type = 17;
	write_img(&m, sizeof(m));
	expect_err(": no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); build it with CONFIG_PVH=y");
}

static void test_setup_pvh(void **state)
{
	struct kal_err *err = NULL;
	struct vmm_pvh_start_info si;
	struct vmm_pvh_memmap_entry map[2];
	char big[VMM_BOOT_CMDLINE_MAX + 1];

	(void)state;
	assert_int_equal(vmm_boot_setup_pvh(&mem, RAM, "console=ttyS0", 0x300000, 4096, &err), 0);
	memcpy(&si, ram + VMM_BOOT_START_INFO, sizeof(si));
	assert_int_equal(si.magic, 0x336ec578);
	assert_int_equal(si.version, 1);
	assert_int_equal(si.cmdline_paddr, VMM_BOOT_CMDLINE);
	assert_string_equal((char *)ram + VMM_BOOT_CMDLINE, "console=ttyS0");
	assert_int_equal(si.memmap_entries, 2);
	assert_int_equal(si.nr_modules, 1);
	assert_int_equal(si.modlist_paddr, VMM_BOOT_MODLIST);
	assert_int_equal(*(uint64_t *)(ram + VMM_BOOT_MODLIST), 0x300000);
	assert_int_equal(*(uint64_t *)(ram + VMM_BOOT_MODLIST + 8), 4096);
	memcpy(map, ram + si.memmap_paddr, sizeof(map));
	assert_int_equal(map[0].addr, 0);
	assert_int_equal(map[0].size, 0x9fc00);
	assert_int_equal(map[1].addr, 0x100000);
	assert_int_equal(map[1].size, RAM - 0x100000);
	assert_int_equal(map[1].type, 1);
	/* a reserved range appended (the agent channel's region) */
	assert_int_equal(vmm_boot_memmap_reserve(&mem, 0xcf000000, 0x11000, &err), 0);
	memcpy(&si, ram + VMM_BOOT_START_INFO, sizeof(si));
	assert_int_equal(si.memmap_entries, 3);
	{
		struct vmm_pvh_memmap_entry r;

		memcpy(&r, ram + VMM_BOOT_MEMMAP + 2 * sizeof(r), sizeof(r));
		assert_int_equal(r.addr, 0xcf000000);
		assert_int_equal(r.size, 0x11000);
		assert_int_equal(r.type, VMM_PVH_MEMMAP_RESERVED);
	}
	for (int i = 3; i < VMM_BOOT_MEMMAP_MAX; i++)
		assert_int_equal(vmm_boot_memmap_reserve(&mem, 0xd0000000, 4096, &err), 0);
	assert_int_equal(vmm_boot_memmap_reserve(&mem, 0xd0000000, 4096, &err), -1);
	assert_string_equal(err->msg, "memory map: more than 16 entries");
	kal_err_free(err);
	err = NULL;
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	assert_int_equal(vmm_boot_setup_pvh(&mem, RAM, big, 0, 0, &err), -1);
	assert_string_equal(err->msg, "kernel command line is 4096 bytes (max 4095)");
	kal_err_clear(&err);
}

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s += *p++;
	return s;
}

static void test_mptable(void **state)
{
	struct kal_err *err = NULL;
	const uint8_t *fp = ram + VMM_MPTABLE_ADDR, *t;
	uint32_t table;
	uint16_t len, n;

	(void)state;
	assert_int_equal(vmm_mptable_write(&mem, 2, &err), 0);
	assert_memory_equal(fp, "_MP_", 4);
	assert_int_equal(sum(fp, 16), 0);
	memcpy(&table, fp + 4, 4);
	assert_int_equal(table, VMM_MPTABLE_ADDR + 16);
	t = ram + table;
	assert_memory_equal(t, "PCMP", 4);
	memcpy(&len, t + 4, 2);
	memcpy(&n, t + 34, 2);
	assert_int_equal(sum(t, len), 0);
	/* 2 CPUs, ISA bus, IOAPIC, 23 I/O interrupts (no cascade), 2 local */
	assert_int_equal(n, 2 + 1 + 1 + 23 + 2);
	assert_int_equal(len, 44 + 2 * 20 + 8 + 8 + 23 * 8 + 2 * 8);
	assert_int_equal(t[44], 0);	/* processor */
	assert_int_equal(t[44 + 3], 3); /* enabled + BSP */
	assert_int_equal(t[64 + 3], 1); /* enabled */
	assert_int_equal(vmm_mptable_write(&mem, 200, &err), -1);
	assert_string_equal(err->msg, "mptable: 200 vCPUs do not fit");
	kal_err_clear(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_load_good, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_hostile, setup, teardown),
		cmocka_unit_test_setup_teardown(test_setup_pvh, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mptable, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
