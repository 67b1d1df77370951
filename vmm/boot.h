/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Direct boot through the PVH entry (Xen's x86 HVM direct boot ABI, which
 * Linux implements in arch/x86/platform/pvh/): load an ELF's PT_LOAD segments
 * at their physical addresses, find XEN_ELFNOTE_PHYS32_ENTRY, and lay out
 * hvm_start_info, the memory map and the command line in low guest RAM.
 *
 *   guest-physical low memory used by the boot:
 *   0x0500  GDT (null, null, code32 0x10, data32 0x18, tss 0x20)
 *   0x7000  struct vmm_pvh_start_info (version 1)
 *   0x7080  one module list entry {paddr, size, cmdline, reserved} (the initrd)
 *   0x7100  memmap entries {addr u64, size u64, type u32, reserved u32} x n
 *   0x8000  command line, NUL-terminated, < 4 KiB
 *   0x100000 and up: the kernel (its PT_LOAD p_paddr)
 *   top of RAM, 4 KiB aligned: the initrd, if any (Linux takes module 0 as its initramfs)
 */
#ifndef KAL_VMM_BOOT_H
#define KAL_VMM_BOOT_H

#include <stdint.h>

#include "mem.h"

struct kal_err;

#define VMM_BOOT_GDT	     0x500ull
#define VMM_BOOT_START_INFO  0x7000ull
#define VMM_BOOT_MODLIST     0x7080ull
#define VMM_BOOT_MEMMAP	     0x7100ull
#define VMM_BOOT_CMDLINE     0x8000ull
#define VMM_BOOT_CMDLINE_MAX 4096
#define VMM_BOOT_KERNEL_MIN  0x100000ull /* segments may not overlap the boot data */

#define VMM_PVH_MAGIC		     0x336ec578
#define VMM_PVH_MEMMAP_RAM	     1
#define VMM_PVH_MEMMAP_RESERVED	     2
#define VMM_XEN_ELFNOTE_PHYS32_ENTRY 18

struct vmm_pvh_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct vmm_pvh_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
};

struct vmm_pvh_memmap_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};

/*
 * Load the ELF at path into guest RAM; *entry is its 32-bit PVH entry point.
 * The file is hostile input too: every offset and size is checked.
 */
int vmm_boot_load_elf(const struct guest_mem *m, const char *path, uint64_t *entry, uint64_t *end,
		      struct kal_err **err);
/* Load an initrd at the top of RAM, above kernel_end; *gpa and *size say where. */
int vmm_boot_load_initrd(const struct guest_mem *m, uint64_t ram_size, uint64_t kernel_end,
			 const char *path, uint64_t *gpa, uint64_t *size, struct kal_err **err);
/*
 * Write GDT, start_info, memmap ([0, 640K) and [1M, ram_size) as RAM), the
 * cmdline and, when initrd_size > 0, the module entry for the initrd.
 */
int vmm_boot_setup_pvh(const struct guest_mem *m, uint64_t ram_size, const char *cmdline,
		       uint64_t initrd_gpa, uint64_t initrd_size, struct kal_err **err);
/*
 * After vmm_boot_setup_pvh(): append a reserved range (not RAM) to the memory
 * map, e.g. the agent channel's region, so nothing in the guest claims it.
 */
#define VMM_BOOT_MEMMAP_MAX 16
int vmm_boot_memmap_reserve(const struct guest_mem *m, uint64_t gpa, uint64_t size,
			    struct kal_err **err);

#endif
