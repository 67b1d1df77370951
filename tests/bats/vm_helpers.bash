# SPDX-License-Identifier: GPL-2.0-or-later
# Helpers for the VM lifecycle suites (20-run ... 35-lifecycle): one KAL_HOME per
# file with the busybox fixture loaded once, VM bookkeeping, and the checks that a
# stopped VM left no process, socket or file behind.  Load after `helpers`.

# vm_setup_file: call from setup_file
vm_setup_file() {
	export KAL_HOME=$BATS_FILE_TMPDIR/home
	export XDG_RUNTIME_DIR=$BATS_FILE_TMPDIR/run
	mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
	if ! "$KAL" doctor >"$BATS_FILE_TMPDIR/doctor" 2>&1 || grep -q '^kernel   no guest kernel' "$BATS_FILE_TMPDIR/doctor"; then
		export VM_SKIP="no guest kernel (run make kernel)"
		return 0
	fi
	# the suite runs on whichever engine KAL_ENGINE names (auto: qemu on nested KVM)
	if [ "${KAL_ENGINE:-auto}" != kvm ] && ! command -v qemu-system-x86_64 >/dev/null; then
		export VM_SKIP="host lacks qemu-system-x86_64"
		return 0
	fi
	"$KAL" load -q --name busybox "$(fixture_build busybox)" >/dev/null
}

# vm_setup: call from setup (keeps the file's home instead of a per-test one)
vm_setup() {
	[ -z "${VM_SKIP:-}" ] || skip "$VM_SKIP"
}

# vm_teardown_file: remove every VM the file left, by name
vm_teardown_file() {
	local vm
	[ -d "$KAL_HOME/vms" ] || return 0
	for vm in $("$KAL" ps -a -q 2>/dev/null); do
		"$KAL" rm -f "$vm" >/dev/null 2>&1 || true
	done
}

# vm_pid NAME: the supervisor's pid
vm_pid() {
	cat "$KAL_HOME/vms/$1/supervisor.pid"
}

# vm_engine_pid NAME: the supervisor's child that runs the VM (QEMU, or kal __vmm)
vm_engine_pid() {
	pgrep -P "$(vm_pid "$1")"
}

# proc_alive PID: running (a zombie waiting for its reaper counts as gone)
proc_alive() {
	local st
	st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "$st" != Z ]
}

# assert_vm_gone NAME SUPERVISOR_PID ENGINE_PID: no process, socket, pid file left
assert_vm_gone() {
	local name=$1 spid=$2 qpid=$3
	for _ in $(seq 50); do
		proc_alive "$spid" || proc_alive "$qpid" || break
		sleep 0.1
	done
	if proc_alive "$spid"; then
		echo "supervisor $spid still running" >&2
		return 1
	fi
	if proc_alive "$qpid"; then
		echo "engine process $qpid still running" >&2
		return 1
	fi
	if [ -e "$XDG_RUNTIME_DIR/kal/$name.sock" ]; then
		echo "socket left behind" >&2
		return 1
	fi
	if [ -e "$KAL_HOME/vms/$name/supervisor.pid" ]; then
		echo "pid file left behind" >&2
		return 1
	fi
}

# rss_kib PID: resident set size from /proc
rss_kib() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}
