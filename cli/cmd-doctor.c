// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kal doctor: what kal found on this host and what it will do with it —
 * /dev/kvm and how fast it really is, QEMU, the guest kernel, the embedded
 * agent, the cache, and which engine `auto` picks and why.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "../lib/xalloc.h"
#include "../vmm/machine.h"
#include "cmd.h"
#include "util.h"
#if __has_include("../vmm/initrd.h")
#include "../vmm/initrd.h"
#define HAVE_INITRD 1
#endif

static void row(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void row(const char *what, const char *fmt, ...)
{
	va_list ap;

	printf("%-8s ", what);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static void doctor_kvm(void)
{
	struct kal_err *err = NULL;
	struct stat st;
	bool pvm = access("/sys/module/kvm_pvm", F_OK) == 0;
	double ns;

	if (stat("/dev/kvm", &st) < 0) {
		row("kvm", "/dev/kvm: %s", strerror(errno));
		return;
	}
	if (access("/dev/kvm", R_OK | W_OK) < 0) {
		row("kvm", "/dev/kvm: permission denied (add yourself to the `kvm` group)");
		return;
	}
	ns = machine_kvm_probe_ns(&err);
	if (ns < 0) {
		row("kvm", "/dev/kvm present but unusable: %s", err->msg);
		kal_err_free(err);
		return;
	}
	if (ns > MACHINE_KVM_FAST_NS)
		row("kvm",
		    "/dev/kvm usable, but kernel mode is emulated: %.0f ns per guest kernel-mode "
		    "instruction "
		    "(hardware: < %.0f)%s",
		    ns, MACHINE_KVM_FAST_NS, pvm ? "; nested kvm_pvm module loaded" : "");
	else
		row("kvm",
		    "/dev/kvm usable at hardware speed (%.1f ns per guest kernel-mode instruction)",
		    ns);
}

static void doctor_kernel(void)
{
	struct kal_err *err = NULL;
	_cleanup_free_ char *k = machine_kernel_find(&err);
	struct stat st;
	char size[32];

	if (!k) {
		row("kernel", "%s", err->msg);
		kal_err_free(err);
		return;
	}
	if (stat(k, &st) < 0) {
		row("kernel", "%s: %s", k, strerror(errno));
		return;
	}
	kal_format_size((uint64_t)st.st_size, size, sizeof(size));
	row("kernel", "%s (%s)", k, size);
}

static void doctor_agent(void)
{
#ifdef HAVE_INITRD
	struct kal_err *err = NULL;
	int fd = memfd_create("kal-initrd", MFD_CLOEXEC);
	struct stat st;
	char size[32];

	if (fd < 0 || vmm_initrd_write(fd, &err) < 0 || fstat(fd, &st) < 0) {
		row("agent", "embedded agent unusable: %s", err ? err->msg : strerror(errno));
		kal_err_free(err);
	} else {
		size_t alen = 0;
		char asize[32];

		vmm_initrd_agent(&alen);
		kal_format_size((uint64_t)alen, asize, sizeof(asize));
		kal_format_size((uint64_t)st.st_size, size, sizeof(size));
		row("agent", "kal-init embedded (%s static binary, %s uncompressed initramfs)",
		    asize, size);
	}
	if (fd >= 0)
		close(fd);
#else
	row("agent", "not embedded in this build");
#endif
}

/* Why auto did not take kal's own VMM, in a user's words. */
static const char *doctor_why_not_kvm(void)
{
	static char buf[200];
	char reason[256];

	switch (machine_kvm_ops.available(reason, sizeof(reason))) {
	case MACHINE_AVAIL_NO:
		snprintf(buf, sizeof(buf), "kal's own kvm engine cannot run here");
		break;
	case MACHINE_AVAIL_CRAWL:
		snprintf(
		    buf, sizeof(buf),
		    "this KVM emulates guest kernel code, so a Linux boot on kal's own VMM takes "
		    "minutes; QEMU's TCG is faster (--engine kvm still works)");
		break;
	default:
		snprintf(buf, sizeof(buf), "kvm engine skipped");
		break;
	}
	return buf;
}

static int doctor_exec(struct kal_ctx *ctx, int argc, char **argv, struct kal_err **err)
{
	char why[1024];
	const struct machine_ops *ops;

	if (argc > 1)
		return kal_cmd_usage_error(&kal_cmd_doctor, err, "takes no arguments");
	doctor_kvm();
	for (size_t i = 0; machine_engines[i]; i++) {
		char reason[256];
		enum machine_avail a = machine_engines[i]->available(reason, sizeof(reason));

		if (a != MACHINE_AVAIL_NO && machine_engines[i]->describe)
			machine_engines[i]->describe(reason, sizeof(reason));

		printf("%-8s %s: %s%s\n", "engine", machine_engines[i]->name,
		       a == MACHINE_AVAIL_NO ? "not available: " : "", reason);
	}
	doctor_kernel();
	doctor_agent();
	row("cache", "%s", ctx->home);
	ops = machine_engine_select(NULL, why, sizeof(why), err);
	if (!ops)
		return -1;
	{
		const char *env = getenv("KAL_ENGINE");

		if (env && *env && strcmp(env, "auto"))
			row("choice", "%s (KAL_ENGINE=%s)", ops->name, env);
		else if (ops == &machine_kvm_ops)
			row("choice", "auto picks kvm: guest kernel code runs at hardware speed");
		else
			row("choice", "auto picks %s: %s", ops->name, doctor_why_not_kvm());
	}
	return 0;
}

const struct kal_cmd kal_cmd_doctor = {
	.name = "doctor",
	.summary = "check this host for running VMs",
	.usage = "",
	.description = "Report /dev/kvm (present, permitted, hardware speed or emulated), the "
		       "engines and their versions, the guest kernel and agent kal will boot, the "
		       "cache directory, and which engine `auto` picks and why.",
	.exec = doctor_exec,
};
