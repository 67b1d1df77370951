#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-or-later
# The agent channel's rings from a Linux guest's user space, the way kal-init
# will use them: kal's kernel on kal's own VMM (`__vmm-test-guest --agent
# ring`, host side looped back) with a static test /init
# (tests/kernel/test-chan-init.c) that maps the region and the doorbell page
# through /dev/mem, round-trips frames over the rings, and sleeps in poll() on
# the `kal.agent` port for the bell.  One boot, about 35 s on the nested build
# machines (guest kernel code is emulated there).
# bats test_tags=kvm

load helpers

ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
NESTED_CMDLINE="kal.nested_quirks=1 clearcpuid=cx16,xsave,popcnt,smap,erms,fsrm noreplace-smp"

setup() {
	kal_setup_home
	[ -r /dev/kvm ] && [ -w /dev/kvm ] || skip_host_lacks "read-write /dev/kvm"
	command -v musl-gcc >/dev/null || skip_host_lacks "musl-gcc (musl-tools)"
	VMLINUX=${KAL_KERNEL:-$(dirname "$(readlink -f "$KAL")")/vmlinux}
	[ -f "$VMLINUX" ] || fail "no guest kernel at $VMLINUX: run \`make kernel\`"
	mkdir -p "$BATS_TEST_TMPDIR/root"
	musl-gcc -static -O2 -Wall -Wextra -Werror -I"$ROOT" -o "$BATS_TEST_TMPDIR/root/init" \
		"$ROOT/tests/kernel/test-chan-init.c"
	(cd "$BATS_TEST_TMPDIR/root" && echo init | cpio -o -H newc -R 0:0 --quiet >"$BATS_TEST_TMPDIR/initrd.cpio")
}

@test "linux guest: user space round-trips frames over the shared-memory rings" {
	run --separate-stderr timeout -k 10 300 "$KAL" __vmm-test-guest "$VMLINUX" --mem 256 \
		--initrd "$BATS_TEST_TMPDIR/initrd.cpio" --agent ring \
		--cmdline "console=ttyS0 quiet panic=-1 reboot=k kal.channel=port $NESTED_CMDLINE" </dev/null
	printf '%s\n' "$output" "$stderr" | grep -a -e '^T: ' -e 'vmm:' | sed 's/^/# /' >&3
	refute_output --partial "T: FAIL"
	# the VMM's kal.channel=ring@ comes after the engine's kal.channel=port: the last one wins
	# (console lines end in \r\n)
	assert_line --regexp '^T: chan: mapped 0xcf000000, header ok[[:space:]]*$'
	assert_line --regexp '^T: chan: rings: 200 round trips of 32 bytes, [0-9.]+ us each, 0 wrong, [0-9]+ kicks, '
	assert_line --regexp '^T: chan: rings, sleeping in poll\(\): 10 round trips, 0 wrong, 10 sleeps, 10 bell bytes[[:space:]]*$'
	[[ $stderr == *"vmm: guest reset the machine (i8042) after "* ]]
}
