#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-or-later
# kal exec against a real VM (KAL_ENGINE, qemu on nested KVM; busybox fixture): exit codes,
# separate streams, binary data, stdin, pty, signals, users, zombies, and the
# guest the agent set up (PID 1, hostname, network files).

load helpers
load vm_helpers

setup_file() {
	vm_setup_file
	[ -z "${VM_SKIP:-}" ] || return 0
	if ! "$KAL" help run >/dev/null 2>&1; then
		export VM_SKIP="kal run is not built in"
		return 0
	fi
	"$KAL" run -d --name ex busybox >/dev/null
}
teardown_file() { vm_teardown_file; }
setup() { vm_setup; }

@test "exec: exit status and separate stdout/stderr" {
	run_kal 3 exec ex sh -c 'echo out; echo err >&2; exit 3'
	assert_equal "$output" out
	assert_equal "$stderr" err
	run_kal 0 exec ex true
	run_kal 1 exec ex false
}

@test "exec: a command killed by a signal exits 128+N" {
	run_kal 137 exec ex sh -c 'kill -KILL $$'
}

@test "exec: not found is 127, not executable is 126, with the reason" {
	run_kal 127 exec ex nope-not-here
	assert_equal "$stderr" 'kal: exec `nope-not-here`: No such file or directory'
	run_kal 126 exec ex /etc/passwd
	assert_equal "$stderr" 'kal: exec `/etc/passwd`: Permission denied'
}

@test "exec: -w, -e and -u" {
	run_kal 0 exec -w /etc ex pwd
	assert_equal "$output" /etc
	run_kal 0 exec -e FOO=bar ex sh -c 'echo $FOO'
	assert_equal "$output" bar
	run_kal 0 exec -u 1000:1000 ex id
	assert_output --regexp '^uid=1000.* gid=1000'
	run_kal 126 exec -u nosuchuser ex id
	assert_equal "$stderr" "kal: user \`nosuchuser\`: no such user in the guest's /etc/passwd"
	run_kal 126 exec -w /nonexistent ex pwd
	assert_equal "$stderr" 'kal: chdir `/nonexistent`: No such file or directory'
}

@test "exec: the guest runs kal-init as PID 1 with the VM's hostname" {
	run_kal 0 exec ex cat /proc/1/cmdline
	assert_output /init
	run_kal 0 exec ex hostname
	assert_output ex
	run_kal 0 exec ex grep -c '[[:space:]]ex$' /etc/hosts
	assert_output 1
}

@test "exec: 1 MiB of binary data through stdin and stdout" {
	head -c 1048576 /dev/urandom >"$BATS_TEST_TMPDIR/in"
	"$KAL" exec -i ex cat <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out"
	cmp "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out"
}

@test "exec: stdin streams and EOF reaches the command" {
	run --separate-stderr bash -c "{ echo one; sleep 0.5; echo two; } | '$KAL' exec -i ex sh -c 'while read l; do echo \"<\$l>\"; done; echo eof'"
	assert_success
	assert_output $'<one>\n<two>\neof'
}

@test "exec: -t gives a pty with the host's window size" {
	command -v script >/dev/null || skip_host_lacks script
	run script -qec "stty rows 33 cols 101; '$KAL' exec -t ex sh -c 'tty; stty size'" /dev/null
	assert_output --regexp '/dev/pts/[0-9]+'
	assert_output --partial '33 101'
}

@test "exec: SIGTERM to kal reaches the guest command" {
	"$KAL" exec ex sleep 60 &
	local pid=$! rc=0
	sleep 2
	kill -TERM "$pid"
	wait "$pid" || rc=$?
	assert_equal "$rc" 143
}

@test "exec: SIGTERM ends kal exec even while nobody reads its stdout" {
	mkfifo "$BATS_TEST_TMPDIR/fifo"
	"$KAL" exec ex yes stuck >"$BATS_TEST_TMPDIR/fifo" 3>&- &
	local pid=$! rc=0 i
	# hold the fifo open without reading: kal's writes block
	exec 4<>"$BATS_TEST_TMPDIR/fifo"
	sleep 2
	kill -TERM "$pid"
	for i in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.2
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -9 "$pid"
		exec 4<&-
		fail "kal exec ignored SIGTERM while its stdout was blocked"
	fi
	wait "$pid" || rc=$?
	exec 4<&-
	assert_equal "$rc" 143
}

@test "exec: orphans are reaped by the agent (no zombies)" {
	run_kal 0 exec ex sh -c 'for i in 1 2 3 4 5; do (sleep 0.2 &); done'
	sleep 2
	run_kal 0 exec ex sh -c 'cat /proc/[0-9]*/stat 2>/dev/null | awk "\$3 == \"Z\"" | wc -l'
	assert_output 0
}

@test "exec: ten concurrent sessions share the VM" {
	local i pids=()
	for i in $(seq 10); do
		"$KAL" exec ex sh -c "echo s$i; exit $i" >"$BATS_TEST_TMPDIR/o$i" &
		pids+=($!)
	done
	for i in $(seq 10); do
		local rc=0
		wait "${pids[$((i - 1))]}" || rc=$?
		assert_equal "$rc" "$i"
		assert_equal "$(cat "$BATS_TEST_TMPDIR/o$i")" "s$i"
	done
}

@test "exec: a VM that does not exist" {
	run_kal 125 exec nope true
	assert_equal "$stderr" 'kal: exec: no such VM `nope`'
}

@test "exec: a stopped VM is not running" {
	"$KAL" run -d --name ex-stopped busybox >/dev/null
	"$KAL" stop ex-stopped >/dev/null
	run_kal 125 exec ex-stopped true
	assert_equal "$stderr" 'kal: exec: VM `ex-stopped` is not running'
}

@test "exec: a VM that dies under a running command is reported, not a hang" {
	"$KAL" run -d --name ex-die busybox >/dev/null
	"$KAL" exec ex-die sleep 60 2>"$BATS_TEST_TMPDIR/err" &
	local pid=$! rc=0
	sleep 2
	kill -9 "$(vm_engine_pid ex-die)"
	wait "$pid" || rc=$?
	assert_equal "$rc" 125
	run cat "$BATS_TEST_TMPDIR/err"
	# qemu engine: "qemu killed by signal 9"; kvm: "vmm killed by signal 9 (<its last log line>)"
	assert_output --regexp '^kal: exec: VM `ex-die` ended \((qemu|vmm) killed by signal 9( \(.*\))?\)$'
}
