# SPDX-License-Identifier: GPL-2.0-or-later
# The freestanding test guest for kal's VMM (tests/guest-bare/): a PVH ELF
# with no libc, booted by `kal __vmm-test-guest` in tests/bats/40-vmm-bare.bats.
GUEST_BARE_SRCS := tests/guest-bare/entry.S tests/guest-bare/irq.S tests/guest-bare/guest.c
GUEST_BARE_CFLAGS := -std=gnu11 -O2 -ffreestanding -nostdlib -static -fno-pic -no-pie \
	-fno-stack-protector -fno-asynchronous-unwind-tables -fno-builtin -mno-red-zone \
	-mgeneral-regs-only -mno-sse -mno-mmx -Wall -Wextra -Werror -Wl,--build-id=none \
	-Wl,-T,tests/guest-bare/guest.ld -Wl,-z,noexecstack -Wl,--no-warn-rwx-segments

.PHONY: guest-bare
guest-bare: $(BUILD)/guest-bare.elf
all: $(BUILD)/guest-bare.elf

$(BUILD)/guest-bare.elf: $(GUEST_BARE_SRCS) tests/guest-bare/pvh-note.inc tests/guest-bare/guest.ld
	@mkdir -p $(dir $@)
	$(E) GUEST $@
	$(Q)$(CC) $(GUEST_BARE_CFLAGS) -o $@ $(GUEST_BARE_SRCS)

# tests/bats/40-vmm-bare.bats boots it
check-bats: $(BUILD)/guest-bare.elf

# bench/vmm's guests: tests/guest-bare/exit.S, 32-bit, no page tables, built
# as an exit-at-once ELF, an N-MMIO-loads ELF and a halt-forever ELF
BENCH_VMM_MMIO_LOOPS ?= 20000
BENCH_VMM_GUESTS := $(BUILD)/bench-exit.elf $(BUILD)/bench-mmio.elf $(BUILD)/bench-halt.elf
.PHONY: bench-vmm-guests
bench-vmm-guests: $(BENCH_VMM_GUESTS)
all: $(BENCH_VMM_GUESTS)

$(BUILD)/bench-exit.elf: GUEST_BENCH_DEFS := -DBENCH_LOOPS=0
$(BUILD)/bench-mmio.elf: GUEST_BENCH_DEFS := -DBENCH_LOOPS=$(BENCH_VMM_MMIO_LOOPS)
$(BUILD)/bench-halt.elf: GUEST_BENCH_DEFS := -DBENCH_HALT
$(BENCH_VMM_GUESTS): tests/guest-bare/exit.S tests/guest-bare/pvh-note.inc tests/guest-bare/guest.ld
	@mkdir -p $(dir $@)
	$(E) GUEST $@
	$(Q)$(CC) $(GUEST_BARE_CFLAGS) $(GUEST_BENCH_DEFS) -o $@ tests/guest-bare/exit.S
