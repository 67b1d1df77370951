#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-or-later
# kal's own KVM VMM driven by the freestanding test guest (tests/guest-bare/):
# PVH boot, virtio-mmio console/blk/pmem/rng, and hostile virtqueue chains
# that must be refused (NEEDS_RESET) while the VMM keeps serving; the agent
# channel on shared-memory rings (--agent ring, looped back on the host).
# bats test_tags=kvm

load helpers

setup() {
	kal_setup_home
	[ -r /dev/kvm ] && [ -w /dev/kvm ] || skip_host_lacks "read-write /dev/kvm"
	GUEST=$(dirname "$(readlink -f "$KAL")")/guest-bare.elf
	[ -f "$GUEST" ] || fail "test guest $GUEST not built (make guest-bare)"
	DISK=$BATS_TEST_TMPDIR/disk.img
	PMEM=$BATS_TEST_TMPDIR/pmem.img
	python3 - "$DISK" "$PMEM" <<'PY'
import sys
d = bytearray(2048 * 512); d[0:8] = b'KALDISK0'
open(sys.argv[1], 'wb').write(d)
p = bytearray(2 << 20); p[0:8] = b'KALPMEM0'
open(sys.argv[2], 'wb').write(p)
PY
}

run_guest() {
	echo "# \$ kal __vmm-test-guest $*" >&3
	run --separate-stderr timeout -k 10 120 "$KAL" __vmm-test-guest "$@" < <(printf 'ping\n')
	printf '%s\n' "$output" "$stderr" | sed 's/^/# /' >&3
}

@test "bare guest: every device check passes on the kvm VMM" {
	pmem_before=$(sha256sum <"$PMEM")
	run_guest "$GUEST" --blk "$DISK" --pmem "$PMEM"
	assert_success
	refute_output --partial "not ok"
	assert_line "hello from the bare guest"
	assert_line --regexp '^ok [0-9]+ - console: received `ping` from the host$'
	assert_line --regexp '^ok [0-9]+ - blk: serial `kal-test-disk`$'
	assert_line --regexp '^ok [0-9]+ - blk: sector 1 reads back$'
	assert_line --regexp '^ok [0-9]+ - pmem: guest stores are dropped$'
	assert_line --regexp '^ok [0-9]+ - rng: 64 bytes of entropy$'
	assert_line "1..73"
	assert_line "serial: hello from COM1"
	[[ $stderr == *"vmm: guest exited with code 0 after "* ]]
	# the guest's stores to pmem never reach the image
	[ "$(sha256sum <"$PMEM")" = "$pmem_before" ]
	[[ $stderr == *"guest write of 1 bytes to read-only pmem at 0x100000000 dropped"* ]]
	# the blk write landed in the file
	run dd if="$DISK" bs=512 skip=1 count=1 status=none
	assert_output --partial "written by the bare guest"
}

@test "bare guest: hostile chains are refused and the VMM keeps serving" {
	run_guest "$GUEST" --blk "$DISK" --pmem "$PMEM"
	assert_success
	for what in "descriptor loop 0->1->0" "chain longer than the queue" \
		"head index out of range" "next index out of range" "buffer outside guest RAM" \
		"buffer in the MMIO window" "address + length overflows u64" \
		"readable buffer for a device that writes" "readable descriptor after a writable one" \
		"indirect descriptor never negotiated" "available index jumps past the queue size" \
		"writable buffer in the pmem window" "queue size 3 refused" \
		"misaligned descriptor ring refused" "FEATURES_OK without VERSION_1 refused" \
		"DRIVER_OK before FEATURES_OK refused"; do
		assert_line --regexp "^ok [0-9]+ - hostile: ${what//+/\\+}\$"
	done
	assert_line "console still works after the hostile chains"
	[[ $stderr == *"virtio-rng@0xd0003000: queue 0: chain from head 0 is longer than the queue (8); device needs reset"* ]]
}

@test "bare guest: device interrupts arrive through irqfd and the in-kernel IOAPIC" {
	run_guest "$GUEST" --blk "$DISK" --pmem "$PMEM"
	assert_success
	assert_line --regexp '^ok [0-9]+ - irq: device interrupt delivered through the IOAPIC, status acked by the handler$'
	assert_line --regexp '^ok [0-9]+ - irq: a halted vCPU is woken by the device interrupt$'
	assert_line --regexp '^ok [0-9]+ - irq: console interrupt on its own line$'
	assert_line --regexp '^ok [0-9]+ - irq: COM1 transmitter-empty interrupt on IRQ 4$'
}

@test "bare guest: device state survives save, scribble and restore mid-run" {
	run_guest "$GUEST" --blk "$DISK" --pmem "$PMEM"
	assert_success
	assert_line --regexp '^ok [0-9]+ - snapshot: every device saved and restored$'
	assert_line --regexp '^ok [0-9]+ - snapshot: blk status restored$'
	# the blk checks run twice, the second time on the restored queues
	run grep -c -- '- blk: sector 1 reads back$' <<<"$output"
	assert_output 2
}

@test "bare guest: runs without optional devices" {
	run_guest "$GUEST"
	assert_success
	refute_output --partial "not ok"
}

@test "bare guest: a second vCPU waiting for SIPI does not keep the VM from stopping" {
	run_guest "$GUEST" --cpus 2
	assert_success
	refute_output --partial "not ok"
	[[ $stderr == *"vmm: guest exited with code 0 after "* ]]
}

@test "bare guest: agent frames round-trip over the shared-memory rings and doorbells" {
	run_guest "$GUEST" --blk "$DISK" --agent ring
	assert_success
	refute_output --partial "not ok"
	for what in "chan: kal.channel=ring@0xcf000000 and the agent port" \
		"chan: header magic, version 1, 16 KiB rings" \
		"chan: region and doorbell page reserved in the memory map" \
		"chan: frame round trip guest->host->guest over the rings" \
		"chan: guest->host doorbell rung (the host was waiting)" \
		"chan: host->guest doorbell byte on the agent port, then the echo" \
		"chan: 8 more round trips" \
		"chan: state saved and restored with a frame in flight" \
		"chan: the in-flight frame arrives after the restore" \
		"chan: round trip after the restore"; do
		sed 's/^ok [0-9]* - /ok - /' <<<"$output" | grep -qxF "ok - $what" ||
			fail "missing: ok - $what"
	done
	# nothing of the stream leaks onto the main console
	refute_output --partial "ping over the rings"
}

@test "bare guest: hostile ring indices stop only the agent channel" {
	run_guest "$GUEST" --agent ring
	assert_success
	refute_output --partial "not ok"
	assert_line --regexp '^ok [0-9]+ - chan hostile: head far past tail stops the channel$'
	assert_line --regexp '^ok [0-9]+ - chan hostile: the VMM and rng keep serving$'
	assert_line --regexp '^ok [0-9]+ - chan: works again after a reset$'
	assert_line --regexp '^ok [0-9]+ - chan hostile: tail beyond head stops the channel$'
	assert_line --regexp '^ok [0-9]+ - chan: works again after a second reset$'
	# later checks on other devices still pass
	assert_line --regexp '^ok [0-9]+ - irq: a halted vCPU is woken by the device interrupt$'
	[[ $stderr == *"vmm: agent channel: ring 0 (guest to host): guest head 0x80000180 is 2147483648 bytes past tail 0x180 (the ring holds 16384); channel stopped until the guest resets it"* ]]
	[[ $stderr == *"vmm: agent channel: ring 1 (host to guest): guest tail 0x84 is not within the 16384 bytes before head 0x20; channel stopped until the guest resets it"* ]]
	[[ $stderr == *"vmm: guest exited with code 0 after "* ]]
}

@test "bare guest: agent stream over the agent port (the qemu-engine shape)" {
	run_guest "$GUEST" --agent console
	assert_success
	refute_output --partial "not ok"
	assert_line --regexp '^ok [0-9]+ - agent port: frame echoed over the console stream$'
}

@test "__vmm-test-guest: --agent takes ring or console" {
	run_kal 125 __vmm-test-guest "$GUEST" --agent vsock
	assert_equal "$stderr" "kal: __vmm-test-guest: --agent: \`vsock\` is neither \`ring\` nor \`console\` (usage: kal __vmm-test-guest ELF [--blk FILE] [--pmem FILE] [--mem MIB] [--cpus N] [--cmdline STR] [--initrd FILE] [--agent ring|console] [--net user] [--hugepages])"
}

@test "__vmm-test-guest: --net takes only user" {
	run_kal 125 __vmm-test-guest "$GUEST" --net tap
	assert_equal "$stderr" "kal: __vmm-test-guest: --net: \`tap\` is not \`user\` (usage: kal __vmm-test-guest ELF [--blk FILE] [--pmem FILE] [--mem MIB] [--cpus N] [--cmdline STR] [--initrd FILE] [--agent ring|console] [--net user] [--hugepages])"
}

@test "bare guest: virtio-net on libslirp answers an ARP request for the gateway" {
	run_guest "$GUEST" --net user --blk "$DISK"
	assert_success
	refute_output --partial "not ok"
	assert_line "# device id 1 at 0xd0003000 irq 8"
	assert_line --regexp '^ok [0-9]+ - net: ARP request for 10\.0\.2\.2 transmitted$'
	assert_line --regexp '^ok [0-9]+ - net: slirp answers the ARP request \(reply from 10\.0\.2\.2 to our MAC\)$'
	# the card is in the save/restore round trip too
	assert_line --regexp '^ok [0-9]+ - snapshot: every device saved and restored$'
}

@test "__vmm-test-guest: missing kernel" {
	run_kal 125 __vmm-test-guest "$BATS_TEST_TMPDIR/none.elf"
	assert_equal "$stderr" "kal: vmm: kernel \`$BATS_TEST_TMPDIR/none.elf\`: open \`$BATS_TEST_TMPDIR/none.elf\`: No such file or directory"
}

@test "__vmm-test-guest: not an ELF" {
	run_kal 125 __vmm-test-guest "$PMEM"
	assert_equal "$stderr" "kal: vmm: kernel \`$PMEM\`: not an ELF file (a bzImage? boot the vmlinux)"
}

@test "__vmm-test-guest: ELF without a PVH note" {
	objcopy --remove-section .note.Xen "$GUEST" "$BATS_TEST_TMPDIR/nonote.elf"
	run_kal 125 __vmm-test-guest "$BATS_TEST_TMPDIR/nonote.elf"
	assert_equal "$stderr" "kal: vmm: kernel \`$BATS_TEST_TMPDIR/nonote.elf\`: no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); build it with CONFIG_PVH=y"
}

@test "__vmm-test-guest: pmem image not a 2 MiB multiple" {
	head -c 4096 "$PMEM" >"$BATS_TEST_TMPDIR/small.img"
	run_kal 125 __vmm-test-guest "$GUEST" --pmem "$BATS_TEST_TMPDIR/small.img"
	assert_equal "$stderr" "kal: vmm: pmem \`$BATS_TEST_TMPDIR/small.img\`: size 4096 is not a non-zero multiple of 2 MiB"
}

@test "__vmm-probe: classifies this host's KVM speed" {
	run_kal __vmm-probe
	assert_output --regexp '^kvm: [0-9]+\.[0-9]{2} ns per guest kernel-mode instruction: (hardware speed|emulated \(nested\), prefer the qemu engine)$'
	# the build hosts' nested kvm_pvm emulates kernel-mode code
	if [ -d /sys/module/kvm_pvm ]; then
		assert_output --partial "emulated (nested)"
	fi
}

# Start the VMM with the test hold: every thread installs its filter, then the
# vCPUs stay out of the guest so /proc can be read while the VM is up.
# Extra arguments go to the VMM.  Sets HELD_PID; the caller stops it.
start_held_vmm() {
	KAL_VMM_TEST_HOLD=1 "$KAL" __vmm-test-guest "$GUEST" --cpus 2 --blk "$DISK" --pmem "$PMEM" "$@" \
		</dev/null >/dev/null 2>"$BATS_TEST_TMPDIR/hold.err" 3>&- &
	HELD_PID=$!
	for _ in $(seq 150); do
		grep -q "test hold" "$BATS_TEST_TMPDIR/hold.err" && return 0
		kill -0 "$HELD_PID" 2>/dev/null || break
		sleep 0.2
	done
	cat "$BATS_TEST_TMPDIR/hold.err" >&3
	fail "the VMM never reached the test hold"
}

stop_held_vmm() {
	kill "$HELD_PID"
	wait "$HELD_PID" || true
}

@test "seccomp: every VMM thread (control, I/O, 2 vCPUs) runs under a filter" {
	start_held_vmm
	run cat "$BATS_TEST_TMPDIR/hold.err"
	assert_output "kal: warning: vmm: test hold: 4 threads ready, seccomp on"
	run grep -h -E '^(Seccomp|NoNewPrivs):' /proc/"$HELD_PID"/task/*/status
	# guest memory never lands in a core file
	core=$(awk '/^Max core file size/ { print $5 "/" $6 }' /proc/"$HELD_PID"/limits)
	stop_held_vmm
	assert_equal "$core" "0/0"
	printf '# %s\n' "${lines[@]}" >&3
	[ "${#lines[@]}" -eq 8 ]
	[ "$(grep -c $'^Seccomp:\t2$' <<<"$output")" -eq 4 ]
	[ "$(grep -c $'^NoNewPrivs:\t1$' <<<"$output")" -eq 4 ]
}

@test "seccomp: with --net user the slirp thread runs under a filter too" {
	start_held_vmm --net user
	run cat "$BATS_TEST_TMPDIR/hold.err"
	assert_output "kal: warning: vmm: test hold: 5 threads ready, seccomp on"
	run grep -h '^Seccomp:' /proc/"$HELD_PID"/task/*/status
	stop_held_vmm
	[ "${#lines[@]}" -eq 5 ]
	[ "$(grep -c $'^Seccomp:\t2$' <<<"$output")" -eq 5 ]
}

@test "seccomp: KAL_VMM_SECCOMP=0 leaves the threads unfiltered" {
	KAL_VMM_SECCOMP=0 start_held_vmm
	run grep -h '^Seccomp:' /proc/"$HELD_PID"/task/*/status
	stop_held_vmm
	[ "${#lines[@]}" -eq 4 ]
	[ "$(grep -c $'^Seccomp:\t0$' <<<"$output")" -eq 4 ]
}

@test "seccomp: a forbidden syscall on the device thread kills the VMM with SIGSYS" {
	ulimit -c 0
	KAL_VMM_SECCOMP_SELFTEST=1 run_guest "$GUEST" --blk "$DISK"
	# 128 + SIGSYS (31): the kernel killed the process, the guest never finished
	assert_failure 159
	refute_output --partial "1..73"
	[[ $stderr != *"openat was allowed"* ]]
}

@test "seccomp: the selftest's forbidden call goes through with KAL_VMM_SECCOMP=0" {
	KAL_VMM_SECCOMP=0 KAL_VMM_SECCOMP_SELFTEST=1 run_guest "$GUEST"
	assert_failure 125
	[[ $stderr == *"kal: vmm: seccomp selftest: openat was allowed (fd "*"); is KAL_VMM_SECCOMP=0?"* ]]
}

teardown() { hugepages_restore; }

@test "hugepages: guest RAM sits on 2 MiB pages, and a shortage is a clear error" {
	with_hugepages 0
	run_guest --hugepages "$GUEST"
	assert_failure 125
	assert_equal "$stderr" "kal: vmm: guest RAM: not enough free 2 MiB huge pages for 64 MiB (reserve more: echo N > /proc/sys/vm/nr_hugepages)"
	with_hugepages 40
	[ "$(cat /proc/sys/vm/nr_hugepages)" -ge 32 ] || skip "the host could not reserve 32 huge pages"
	KAL_VMM_TEST_HOLD=1 "$KAL" __vmm-test-guest "$GUEST" --hugepages </dev/null >/dev/null 2>"$BATS_TEST_TMPDIR/hold.err" 3>&- &
	HELD_PID=$!
	for _ in $(seq 150); do
		grep -q "test hold" "$BATS_TEST_TMPDIR/hold.err" && break
		sleep 0.2
	done
	page=$(grep -A 20 'kal-guest-ram' /proc/"$HELD_PID"/smaps | awk '/^KernelPageSize:/ { print $2; exit }')
	stop_held_vmm
	assert_equal "$page" 2048
}
