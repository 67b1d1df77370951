#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-or-later
# The kvm engine end to end: kal's own VMM boots kal's kernel and agent on the
# Debian image (layers on read-only virtio-pmem mounted as EROFS with DAX, the agent stream on the
# shared-memory rings with the `kal.agent` port as their doorbell), and `kal
# exec` runs commands in it.  On the nested build
# machines guest kernel code is emulated (~1 µs per instruction), so this is
# one VM and a few commands, not a suite: boot to the agent takes minutes.
# bats test_tags=kvm

load helpers
load vm_helpers

setup_file() {
	vm_setup_file
	[ -z "${VM_SKIP:-}" ] || return 0
	if ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then
		export VM_SKIP="host lacks read-write /dev/kvm"
		return 0
	fi
	"$KAL" load -q --name debian "$(fixture_build debian)" >/dev/null
	# emulated kernel mode: allow the boot its minutes
	export KAL_BOOT_TIMEOUT=480 KAL_AGENT_TIMEOUT=300
	"$KAL" run -d --engine kvm --net none --name k debian >"$BATS_FILE_TMPDIR/run.out" 2>&1 ||
		export KVM_RUN_FAILED=1
}
teardown_file() { vm_teardown_file; }

setup() {
	vm_setup
	if [ -n "${KVM_RUN_FAILED:-}" ]; then
		sed 's/^/# run: /' "$BATS_FILE_TMPDIR/run.out" >&3
		sed 's/^/# console: /' "$KAL_HOME/vms/k/console.log" >&3 2>/dev/null || true
		sed 's/^/# vmm: /' "$KAL_HOME/vms/k/vmm.log" >&3 2>/dev/null || true
		fail "kal run --engine kvm failed"
	fi
}

@test "kvm engine: kal exec runs a command in Debian on kal's own VMM" {
	run_kal 0 exec k cat /etc/debian_version
	assert_output --regexp '^12\.'
	run_kal 3 exec k sh -c 'echo out; echo err >&2; exit 3'
	assert_equal "$output" out
	assert_equal "$stderr" err
}

@test "kvm engine: layers are EROFS on virtio-pmem, mounted with DAX under an overlay; the agent has its own port" {
	local sizes n
	# the layers' EROFS images as the host stores them, bottom first
	sizes=$("$KAL" inspect debian | jq -r '.layers[].erofs.size')
	n=$(grep -c . <<<"$sizes")
	run_kal 0 exec k cat /proc/cmdline
	assert_output --partial "kal.layers=$n kal.layerdev=pmem "
	# /dev/pmemN is layer N, byte for byte its size; the only virtio-blk disk is the upper one
	run_kal 0 exec k sh -c 'for d in /sys/block/pmem*; do echo $(($(cat $d/size) * 512)); done; ls -d /sys/block/vd*; cat /sys/block/vda/serial'
	assert_output "$sizes"$'\n/sys/block/vda\nkal-upper'
	# each layer is mounted by the agent with -o dax (the overlay's lowerdirs are outside the
	# new root, so /proc/mounts shows only the overlay; the kernel log has the mounts)
	run_kal 0 exec k sh -c 'grep -c "^overlay / overlay .*lowerdir=/kal/layers/0," /proc/mounts; dmesg | grep -c "erofs: (device pmem[0-9]*): mounted"; dmesg | grep -c "erofs: DAX enabled"; dmesg | grep -c "DAX unsupported" || true'
	assert_output "1"$'\n'"$n"$'\n'"$n"$'\n0'
	run_kal 0 exec k cat /sys/class/virtio-ports/vport0p0/name
	assert_output kal.agent
}

@test "kvm engine: reading a layer file does not fill the guest's page cache (DAX)" {
	# with DAX the reads copy straight from the host-mapped pmem window: the guest's page cache
	# (Cached in /proc/meminfo) stays put, where a virtio-blk layer would grow it by the file
	run_kal 0 exec k sh -c 'f=$(ls -S /usr/bin/* | head -1); sz=$(stat -c %s "$f")
		before=$(awk "/^Cached:/ { print \$2 }" /proc/meminfo); cat "$f" >/dev/null
		after=$(awk "/^Cached:/ { print \$2 }" /proc/meminfo)
		echo "$f $sz bytes, Cached +$((after - before)) KiB" >&2
		[ "$sz" -gt 1048576 ] && [ $(((after - before) * 1024)) -lt $((sz / 4)) ]'
}

@test "kvm engine: the agent stream runs on the shared-memory rings; 256 KiB of stdin arrive intact" {
	run_kal 0 exec k cat /proc/cmdline
	assert_output --partial 'kal.channel=ring@0xcf000000'
	head -c 262144 /dev/urandom >"$BATS_TEST_TMPDIR/blob"
	want=$(sha256sum <"$BATS_TEST_TMPDIR/blob" | cut -d' ' -f1)
	run_kal 0 exec -i k sha256sum <"$BATS_TEST_TMPDIR/blob"
	assert_output "$want  -"
}

@test "kvm engine: what it cannot do yet is a clear error, not a VM" {
	run_kal 125 run -d --engine kvm --name knet debian
	assert_equal "$stderr" "kal: engine \`kvm\`: --net user is not built yet (virtio-net with libslirp); use --net none, or --engine qemu"
	run_kal 0 ps -a -q
	refute_output --partial knet
}

@test "kvm engine: ps names the engine, stop ends the VMM" {
	local spid vpid
	run_kal 0 ps
	assert_output --regexp 'k +.*kvm'
	spid=$(vm_pid k)
	vpid=$(vm_engine_pid k)
	grep -q __vmm "/proc/$vpid/cmdline"
	run_kal 0 stop k
	assert_vm_gone k "$spid" "$vpid"
}
