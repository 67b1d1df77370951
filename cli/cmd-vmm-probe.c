// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * kal __vmm-probe: time guest kernel-mode instructions on this host's KVM
 * (vmm_kvm_probe_speed) and say whether it runs them at hardware speed.
 * Hidden; `kal doctor` and `--engine auto` use the same function.
 */
#include <stdio.h>

#include "../lib/err.h"
#include "../vmm/kvm.h"
#include "cmd.h"

static int vmm_probe_exec(struct kal_ctx *ctx, int argc, char **argv, struct kal_err **err)
{
	double ns;

	(void)ctx;
	if (argc > 1)
		return kal_cmd_usage_error(&kal_cmd_vmm_probe, err, "unexpected argument `%s`",
					   argv[1]);
	if (vmm_kvm_probe_speed(&ns, err) < 0)
		return -1;
	printf("kvm: %.2f ns per guest kernel-mode instruction: %s\n", ns,
	       ns > VMM_KVM_SLOW_NS_PER_INSN ? "emulated (nested), prefer the qemu engine"
					     : "hardware speed");
	return 0;
}

const struct kal_cmd kal_cmd_vmm_probe = {
	.name = "__vmm-probe",
	.summary = "time guest kernel-mode code on this host's KVM (test hook)",
	.usage = "",
	.flags = KAL_CMD_HIDDEN,
	.exec = vmm_probe_exec,
};
