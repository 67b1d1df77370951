// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Builds the guest initramfs (newc cpio, uncompressed: the kernel unpacks it
 * without a decompressor and kal's kernel config has none) around the agent
 * binary that mk/guest.mk embedded into kal.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "../lib/err.h"
#include "../lib/fsutil.h"
#include "initrd.h"

extern const unsigned char kal_agent_start[], kal_agent_end[];

const unsigned char *vmm_initrd_agent(size_t *len)
{
	*len = (size_t)(kal_agent_end - kal_agent_start);
	return kal_agent_start;
}

static int put_entry(int fd, unsigned int ino, const char *name, unsigned int mode,
		     unsigned int rmaj, unsigned int rmin, const void *data, size_t size,
		     struct kal_err **err)
{
	static const char zeros[4];
	char hdr[111];
	size_t namesize = strlen(name) + 1;
	int n;

	n = snprintf(hdr, sizeof(hdr),
		     "070701%08X%08X%08X%08X%08X%08X%08zX%08X%08X%08X%08X%08zX%08X", ino, mode, 0,
		     0, (mode & S_IFMT) == S_IFDIR ? 2 : 1, 0, size, 0, 0, rmaj, rmin, namesize, 0);
	if (n != 110)
		return kal_err_set(err, EINVAL, "initramfs: bad header for `%s`", name);
	if (kal_write_all(fd, hdr, 110, err) < 0 || kal_write_all(fd, name, namesize, err) < 0 ||
	    kal_write_all(fd, zeros, (4 - (110 + namesize) % 4) % 4, err) < 0)
		return -1;
	if (size && (kal_write_all(fd, data, size, err) < 0 ||
		     kal_write_all(fd, zeros, (4 - size % 4) % 4, err) < 0))
		return -1;
	return 0;
}

int vmm_initrd_write(int fd, struct kal_err **err)
{
	static const char *const dirs[] = { "dev", "proc", "sys", "kal", "newroot" };
	unsigned int ino = 1;
	size_t len;
	const unsigned char *agent = vmm_initrd_agent(&len);

	if (len < 64 || memcmp(agent, "\177ELF", 4))
		return kal_err_set(err, ENOEXEC, "initramfs: the embedded guest agent is missing");
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		if (put_entry(fd, ino++, dirs[i], S_IFDIR | 0755, 0, 0, NULL, 0, err) < 0)
			goto fail;
	/* the kernel opens /dev/console for init before anything is mounted */
	if (put_entry(fd, ino++, "dev/console", S_IFCHR | 0600, 5, 1, NULL, 0, err) < 0 ||
	    put_entry(fd, ino++, "init", S_IFREG | 0755, 0, 0, agent, len, err) < 0 ||
	    put_entry(fd, 0, "TRAILER!!!", 0, 0, 0, NULL, 0, err) < 0)
		goto fail;
	return 0;
fail:
	return kal_err_wrap(err, "write the initramfs");
}
