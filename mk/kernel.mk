# SPDX-License-Identifier: GPL-2.0-or-later
# Guest kernel: `make kernel` builds (or takes from the cache outside the repo) the vmlinux
# that kal boots and installs it as $(BUILD)/vmlinux, next to the kal binary, where kal
# looks for it at runtime. kernel/build.sh does the work and the caching.

KERNEL_INPUTS = kernel/build.sh kernel/kal.config $(wildcard kernel/patches/*.patch)

.PHONY: kernel
kernel:
	$(Q)kernel/build.sh $(BUILD)

$(BUILD)/vmlinux: $(KERNEL_INPUTS)
	$(Q)kernel/build.sh $(BUILD)

# the bats suite boots guests (tests/bats/20-kernel.bats and the engine tests)
check check-bats: $(BUILD)/vmlinux
