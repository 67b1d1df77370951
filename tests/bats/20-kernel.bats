#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-or-later
# The guest kernel (make kernel) boots the way the qemu engine will run it: QEMU microvm
# without ACPI on TCG, PVH entry of the uncompressed vmlinux, an uncompressed cpio with a
# static test /init, virtio-mmio devices announced on the command line. The test init
# (tests/kernel/test-init.c) reports what it sees on the serial console.

load helpers

ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)

setup_file() {
	VMLINUX=${KAL_KERNEL:-$(dirname "$KAL")/vmlinux}
	export VMLINUX
	FIX=$BATS_FILE_TMPDIR/fix
	export FIX
	command -v qemu-system-x86_64 >/dev/null || return 0
	command -v musl-gcc >/dev/null || return 0
	command -v mkfs.erofs >/dev/null || return 0
	mkdir -p "$FIX/root" "$FIX/layer/sub"
	musl-gcc -static -Os -Wall -Wextra -Werror -o "$FIX/root/init" "$ROOT/tests/kernel/test-init.c"
	(cd "$FIX/root" && echo init | cpio -o -H newc -R 0:0 --quiet >"$FIX/initrd.cpio")
	echo "hello from erofs" >"$FIX/layer/hello.txt"
	echo "deep" >"$FIX/layer/sub/deep.txt"
	mkfs.erofs --quiet "$FIX/layer.erofs" "$FIX/layer"
}

need_tools() {
	command -v qemu-system-x86_64 >/dev/null || skip_host_lacks qemu-system-x86_64
	command -v musl-gcc >/dev/null || skip_host_lacks "musl-gcc (musl-tools)"
	command -v mkfs.erofs >/dev/null || skip_host_lacks "mkfs.erofs (erofs-utils)"
	[ -f "$VMLINUX" ] || fail "no guest kernel at $VMLINUX: run \`make kernel\`"
}

# boot EXTRA_CMDLINE: boots the test init with a layer disk, a virtio-serial port named
# kal.agent (written to $BATS_TEST_TMPDIR/agent.out), virtio-rng and virtio-net; the
# console goes to $output
boot() {
	run timeout 120 qemu-system-x86_64 -M microvm,acpi=off -m 256 -nodefaults \
		-no-user-config -nographic -no-reboot -serial stdio \
		-kernel "$VMLINUX" -initrd "$FIX/initrd.cpio" \
		-append "console=ttyS0 reboot=t panic=-1 quiet $1" \
		-drive id=layer0,file="$FIX/layer.erofs",format=raw,if=none,readonly=on \
		-device virtio-blk-device,drive=layer0,serial=kal-layer0 \
		-device virtio-serial-device \
		-chardev file,id=agent,path="$BATS_TEST_TMPDIR/agent.out" \
		-device virtserialport,chardev=agent,name=kal.agent \
		-device virtio-rng-device \
		-netdev user,id=net0 -device virtio-net-device,netdev=net0
	# the serial console ends lines with CR LF
	output=${output//$'\r'/}
	mapfile -t lines <<<"$output"
	echo "$output" | sed 's/^/# /' >&3
}

@test "vmlinux is an uncompressed x86-64 ELF with a PVH entry note" {
	need_tools
	run file -L "$VMLINUX"
	assert_output --partial 'ELF 64-bit LSB executable, x86-64'
	run readelf -n "$VMLINUX"
	# XEN_ELFNOTE_PHYS32_ENTRY (type 0x12) is what PVH loaders look for
	assert_output --regexp 'Xen[[:space:]]+0x[0-9a-f]+[[:space:]]+Unknown note type: \(0x00000012\)'
}

@test "the kernel boots on QEMU microvm (TCG), mounts the EROFS disk and sees every virtio device" {
	need_tools
	boot ""
	assert_success
	assert_line --regexp '^T: init running, uptime [0-9.]+ '
	refute_line --partial 'T: FAIL'
	# virtio ids: 1 net, 2 blk, 3 console, 4 rng
	for id in 0x0001 0x0002 0x0003 0x0004; do
		assert_line --regexp "^T: virtio virtio[0-9]+ device=$id\$"
	done
	assert_line 'T: disk vda serial=kal-layer0'
	assert_line 'T: mounted /dev/vda (kal-layer0) on /layer'
	assert_line 'T: layer hello.txt: hello from erofs'
	assert_line 'T: layer sub/deep.txt: deep'
	assert_line --regexp '^T: port vport[0-9]+p[0-9]+ name=kal.agent$'
	assert_line 'T: net eth0 present'
	assert_line --regexp '^T: done, uptime '
	run cat "$BATS_TEST_TMPDIR/agent.out"
	assert_output 'hello from the guest'
}

@test "kal.nested_quirks=1 is accepted and the guest still boots on TCG" {
	need_tools
	boot "kal.nested_quirks=1"
	assert_success
	assert_line --regexp '^T: cmdline .*kal.nested_quirks=1'
	assert_line 'T: layer hello.txt: hello from erofs'
	assert_line --regexp '^T: done, uptime '
	refute_line --partial 'Malformed early option'
}

@test "the config check names every requested option that did not get its value" {
	# build.sh --check is the guard that runs on every build; feed it kal.config itself
	# (all satisfied) and then a .config where dependencies dropped two options
	local cfg=$BATS_TEST_TMPDIR/config
	run -0 "$ROOT/kernel/build.sh" --check "$ROOT/kernel/kal.config"
	sed -e '/^CONFIG_EROFS_FS=y$/d' -e 's/^# CONFIG_MODULES is not set$/CONFIG_MODULES=y/' \
		"$ROOT/kernel/kal.config" >"$cfg"
	run -1 --separate-stderr "$ROOT/kernel/build.sh" --check "$cfg"
	assert_output $'  CONFIG_MODULES: want n, got y\n  CONFIG_EROFS_FS: want y, got n'
	assert_equal "$stderr" "$(grep -cE '^(CONFIG_|# CONFIG_.* is not set$)' "$ROOT/kernel/kal.config") options requested, 2 wrong"
}
