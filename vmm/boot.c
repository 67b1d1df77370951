// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * PVH direct boot: ELF loader with the Xen PHYS32 entry note, and the
 * start_info block the entry code reads from %ebx.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "../lib/fsutil.h"
#include "boot.h"

#define BOOT_ELF_MAX (512ull << 20) /* larger than any vmlinux kal builds */

/* Find the PVH entry in one PT_NOTE segment's bytes; 0 when absent. */
static uint64_t pvh_note_entry(const uint8_t *p, size_t len)
{
	size_t off = 0;

	while (len - off >= sizeof(Elf64_Nhdr)) {
		Elf64_Nhdr nh;
		size_t name_sz, desc_sz;

		memcpy(&nh, p + off, sizeof(nh));
		off += sizeof(nh);
		name_sz = ((size_t)nh.n_namesz + 3) & ~(size_t)3;
		desc_sz = ((size_t)nh.n_descsz + 3) & ~(size_t)3;
		if (name_sz > len - off || desc_sz > len - off - name_sz)
			return 0;
		if (nh.n_type == VMM_XEN_ELFNOTE_PHYS32_ENTRY && nh.n_namesz == 4 &&
		    !memcmp(p + off, "Xen", 4)) {
			const uint8_t *d = p + off + name_sz;

			if (nh.n_descsz == 4) {
				uint32_t e;

				memcpy(&e, d, 4);
				return e;
			}
			if (nh.n_descsz == 8) {
				uint64_t e;

				memcpy(&e, d, 8);
				return e;
			}
			return 0;
		}
		off += name_sz + desc_sz;
	}
	return 0;
}

int vmm_boot_load_elf(const struct guest_mem *m, const char *path, uint64_t *entry, uint64_t *end,
		      struct kal_err **err)
{
	_cleanup_free_ char *buf = NULL;
	const uint8_t *img;
	Elf64_Ehdr eh;
	size_t len;
	uint64_t phoff_end;

	*entry = 0;
	*end = 0;
	if (kal_read_file(path, BOOT_ELF_MAX, &buf, &len, err) < 0)
		return kal_err_wrap(err, "kernel `%s`", path);
	img = (const uint8_t *)buf;
	if (len < sizeof(eh))
		return kal_err_set(err, ENOEXEC, "kernel `%s`: not an ELF file", path);
	memcpy(&eh, img, sizeof(eh));
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG))
		return kal_err_set(err, ENOEXEC,
				   "kernel `%s`: not an ELF file (a bzImage? boot the vmlinux)",
				   path);
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_machine != EM_X86_64 ||
	    eh.e_phentsize != sizeof(Elf64_Phdr))
		return kal_err_set(err, ENOEXEC, "kernel `%s`: not an x86-64 ELF", path);
	if (__builtin_mul_overflow((uint64_t)eh.e_phnum, sizeof(Elf64_Phdr), &phoff_end) ||
	    __builtin_add_overflow(phoff_end, eh.e_phoff, &phoff_end) || phoff_end > len)
		return kal_err_set(err, ENOEXEC, "kernel `%s`: program headers out of file", path);

	for (unsigned int i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		uint64_t fend;
		uint8_t *dst;

		memcpy(&ph, img + eh.e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD && ph.p_type != PT_NOTE)
			continue;
		if (__builtin_add_overflow(ph.p_offset, ph.p_filesz, &fend) || fend > len)
			return kal_err_set(err, ENOEXEC, "kernel `%s`: segment %u out of file",
					   path, i);
		if (ph.p_type == PT_NOTE) {
			uint64_t e = pvh_note_entry(img + ph.p_offset, ph.p_filesz);

			if (e)
				*entry = e;
			continue;
		}
		if (ph.p_filesz > ph.p_memsz)
			return kal_err_set(err, ENOEXEC,
					   "kernel `%s`: segment %u file size > memory size", path,
					   i);
		if (ph.p_paddr < VMM_BOOT_KERNEL_MIN)
			return kal_err_set(err, ENOEXEC,
					   "kernel `%s`: segment %u at 0x%llx is below 1 MiB", path,
					   i, (unsigned long long)ph.p_paddr);
		dst = guest_mem_ptr(m, ph.p_paddr, ph.p_memsz, true);
		if (!dst)
			return kal_err_set(
			    err, ENOMEM,
			    "kernel `%s`: segment %u [0x%llx, +0x%llx) does not fit in guest RAM",
			    path, i, (unsigned long long)ph.p_paddr,
			    (unsigned long long)ph.p_memsz);
		memcpy(dst, img + ph.p_offset, ph.p_filesz);
		if (ph.p_paddr + ph.p_memsz > *end) /* no overflow: guest_mem_ptr checked it */
			*end = ph.p_paddr + ph.p_memsz;
		memset(dst + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);
	}
	if (!*entry)
		return kal_err_set(err, ENOEXEC,
				   "kernel `%s`: no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); "
				   "build it with CONFIG_PVH=y",
				   path);
	if (*entry >= (1ull << 32))
		return kal_err_set(err, ENOEXEC, "kernel `%s`: PVH entry 0x%llx above 4 GiB", path,
				   (unsigned long long)*entry);
	return 0;
}

int vmm_boot_load_initrd(const struct guest_mem *m, uint64_t ram_size, uint64_t kernel_end,
			 const char *path, uint64_t *gpa, uint64_t *size, struct kal_err **err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	uint8_t *dst;
	uint64_t at;

	if (fd < 0)
		return kal_err_sys(err, errno, "initrd `%s`", path);
	if (fstat(fd, &st) < 0)
		return kal_err_sys(err, errno, "initrd `%s`: stat", path);
	if (!S_ISREG(st.st_mode) || st.st_size <= 0)
		return kal_err_set(err, EINVAL, "initrd `%s`: not a non-empty regular file", path);
	*size = (uint64_t)st.st_size;
	at = (ram_size - *size) & ~0xfffull;
	if (*size > ram_size || at < kernel_end)
		return kal_err_set(
		    err, ENOMEM, "initrd `%s`: %llu bytes do not fit in guest RAM above the kernel",
		    path, (unsigned long long)*size);
	dst = guest_mem_ptr(m, at, *size, true);
	if (!dst)
		return kal_err_set(err, ENOMEM, "initrd `%s`: outside guest RAM", path);
	if (kal_read_all(fd, dst, *size, err) != (ssize_t)*size)
		return kal_err_wrap(err, "initrd `%s`", path);
	*gpa = at;
	return 0;
}

int vmm_boot_setup_pvh(const struct guest_mem *m, uint64_t ram_size, const char *cmdline,
		       uint64_t initrd_gpa, uint64_t initrd_size, struct kal_err **err)
{
	/* flat 4 GiB segments: code 0x10 (exec/read), data 0x18 (read/write), tss 0x20 */
	static const uint64_t gdt[5] = {
		0, 0, 0x00cf9b000000ffffull, 0x00cf93000000ffffull, 0x00008b0000000067ull,
	};
	struct vmm_pvh_memmap_entry map[2] = {
		/* the last KiB of base memory holds the MP tables (mptable.h) */
		{ .addr = 0, .size = 0x9fc00, .type = VMM_PVH_MEMMAP_RAM },
		{ .addr = VMM_BOOT_KERNEL_MIN,
		  .size = ram_size - VMM_BOOT_KERNEL_MIN,
		  .type = VMM_PVH_MEMMAP_RAM },
	};
	struct vmm_pvh_start_info si = {
		.magic = VMM_PVH_MAGIC,
		.version = 1,
		.cmdline_paddr = VMM_BOOT_CMDLINE,
		.memmap_paddr = VMM_BOOT_MEMMAP,
		.memmap_entries = 2,
	};
	size_t n = strlen(cmdline) + 1;
	void *p;

	if (ram_size <= VMM_BOOT_KERNEL_MIN)
		return kal_err_set(err, EINVAL, "guest RAM of %llu bytes is too small",
				   (unsigned long long)ram_size);
	if (n > VMM_BOOT_CMDLINE_MAX)
		return kal_err_set(err, E2BIG, "kernel command line is %zu bytes (max %d)", n - 1,
				   VMM_BOOT_CMDLINE_MAX - 1);
	if (!(p = guest_mem_ptr(m, VMM_BOOT_GDT, sizeof(gdt), true)))
		goto nomem;
	memcpy(p, gdt, sizeof(gdt));
	if (initrd_size) {
		struct vmm_pvh_modlist_entry mod = { .paddr = initrd_gpa, .size = initrd_size };

		si.nr_modules = 1;
		si.modlist_paddr = VMM_BOOT_MODLIST;
		if (!(p = guest_mem_ptr(m, VMM_BOOT_MODLIST, sizeof(mod), true)))
			goto nomem;
		memcpy(p, &mod, sizeof(mod));
	}
	if (!(p = guest_mem_ptr(m, VMM_BOOT_START_INFO, sizeof(si), true)))
		goto nomem;
	memcpy(p, &si, sizeof(si));
	if (!(p = guest_mem_ptr(m, VMM_BOOT_MEMMAP, sizeof(map), true)))
		goto nomem;
	memcpy(p, map, sizeof(map));
	if (!(p = guest_mem_ptr(m, VMM_BOOT_CMDLINE, n, true)))
		goto nomem;
	memcpy(p, cmdline, n);
	return 0;
nomem:
	return kal_err_set(err, EINVAL, "boot data does not fit in guest RAM");
}

int vmm_boot_memmap_reserve(const struct guest_mem *m, uint64_t gpa, uint64_t size,
			    struct kal_err **err)
{
	struct vmm_pvh_memmap_entry e = { .addr = gpa,
					  .size = size,
					  .type = VMM_PVH_MEMMAP_RESERVED };
	struct vmm_pvh_start_info *si = guest_mem_ptr(m, VMM_BOOT_START_INFO, sizeof(*si), true);
	void *p;

	if (!si || si->magic != VMM_PVH_MAGIC)
		return kal_err_set(err, EINVAL, "memory map: start_info not written yet");
	if (si->memmap_entries >= VMM_BOOT_MEMMAP_MAX)
		return kal_err_set(err, E2BIG, "memory map: more than %d entries",
				   VMM_BOOT_MEMMAP_MAX);
	p = guest_mem_ptr(m, VMM_BOOT_MEMMAP + (uint64_t)si->memmap_entries * sizeof(e), sizeof(e),
			  true);
	if (!p)
		return kal_err_set(err, EINVAL, "boot data does not fit in guest RAM");
	memcpy(p, &e, sizeof(e));
	si->memmap_entries++;
	return 0;
}
