#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-or-later
# VM lifecycle: stop/rm leave no process, socket or file behind; rm refuses a
# running VM; logs escapes guest bytes; a console flood and a client that
# does not read keep the supervisor's memory bounded; hostile guest commands
# (killing everything, fork storms) do not hang kal exec.

load helpers
load vm_helpers

setup_file() { vm_setup_file; }
teardown_file() { vm_teardown_file; }
setup() { vm_setup; }

@test "stop: no supervisor, engine process, socket or pid file remains; ps -a shows it exited" {
	run_kal run -d --name st busybox
	spid=$(vm_pid st)
	qpid=$(vm_engine_pid st)
	[ -S "$XDG_RUNTIME_DIR/kal/st.sock" ]
	run_kal stop st
	assert_output "st"
	assert_vm_gone st "$spid" "$qpid"
	run_kal ps
	refute_output --partial "st "
	run_kal ps -a
	assert_output --regexp 'st +busybox +exited'
	run cat "$KAL_HOME/vms/st/exit"
	assert_output "stopped"
	run_kal rm st
	[ ! -e "$KAL_HOME/vms/st" ]
}

@test "rm: refuses a running VM without -f; -f stops and removes it" {
	run_kal run -d --name busy busybox
	spid=$(vm_pid busy)
	qpid=$(vm_engine_pid busy)
	run_kal 125 rm busy
	assert_equal "$stderr" "kal: VM \`busy\` is running (stop it first, or use \`kal rm -f\`)"
	run_kal rm -f busy
	assert_vm_gone busy "$spid" "$qpid"
	[ ! -e "$KAL_HOME/vms/busy" ]
}

@test "stop/rm/logs: unknown VM" {
	run_kal 125 stop nope
	assert_equal "$stderr" "kal: no such VM \`nope\`"
	run_kal 125 rm nope
	assert_equal "$stderr" "kal: no such VM \`nope\`"
	run_kal 125 logs nope
	assert_equal "$stderr" "kal: no such VM \`nope\`"
	run_kal 125 exec nope true
}

@test "a supervisor killed hard takes the engine process with it; stop cleans up the socket" {
	run_kal run -d --name hard busybox
	spid=$(vm_pid hard)
	qpid=$(vm_engine_pid hard)
	kill -9 "$spid"
	for _ in $(seq 50); do proc_alive "$qpid" || break; sleep 0.1; done
	run_kal ps -a
	assert_output --regexp 'hard +busybox +exited'
	run_kal stop hard
	[ ! -e "$XDG_RUNTIME_DIR/kal/hard.sock" ]
	! proc_alive "$qpid"
	run_kal rm hard
}

@test "logs: console output, with terminal escapes from the guest escaped" {
	run_kal run -d --name lg busybox
	run_kal exec lg sh -c "echo console-marker >/dev/console; printf '\\033]0;PWNED\\007\\033[2J\\n' >/dev/console"
	sleep 0.5
	run_kal logs lg
	assert_output --partial "console-marker"
	assert_output --partial '\x1b]0;PWNED\x07\x1b[2J'
	run bash -c "'$KAL' logs lg | grep -c $'\\e'"
	assert_output 0
	run_kal rm -f lg
}

@test "console flood: supervisor RSS stays bounded, console.log stays capped" {
	run_kal run -d --name flood busybox
	spid=$(vm_pid flood)
	base=$(rss_kib "$spid")
	run_kal exec flood sh -c 'yes kal-console-flood-kal-console-flood >/dev/console & sleep 8; kill $!'
	max=0
	for _ in $(seq 10); do
		r=$(rss_kib "$spid")
		[ "$r" -gt "$max" ] && max=$r
		sleep 0.2
	done
	echo "# supervisor RSS: base ${base} KiB, max ${max} KiB" >&3
	[ "$max" -lt $((base + 4096)) ]
	size=$(stat -c %s "$KAL_HOME/vms/flood/console.log")
	echo "# console.log: $size bytes" >&3
	[ "$size" -le 1048576 ]
	run_kal logs flood
	assert_output --partial "kal-console-flood"
	run_kal exec flood echo still-alive
	assert_output "still-alive"
	run_kal rm -f flood
}

@test "output flood to a client that does not read: supervisor RSS bounded, VM still answers" {
	run_kal run -d --name stall busybox
	spid=$(vm_pid stall)
	base=$(rss_kib "$spid")
	# kal exec writes into a pipe nobody reads: it blocks, the supervisor must not buffer
	mkfifo "$BATS_TEST_TMPDIR/fifo"
	"$KAL" exec stall yes stalled-output >"$BATS_TEST_TMPDIR/fifo" 3>&- &
	client=$!
	exec 4<>"$BATS_TEST_TMPDIR/fifo"
	sleep 6
	r=$(rss_kib "$spid")
	echo "# supervisor RSS with a stalled client: ${r} KiB (base ${base} KiB)" >&3
	[ "$r" -lt $((base + 4096)) ]
	# the client vanishes (kill -9): the supervisor hangs up its session
	kill -9 "$client"
	wait "$client" || true
	exec 4<&-
	run_kal exec stall echo answered
	assert_output "answered"
	run_kal rm -f stall
}

@test "a guest command that kills every process or forks a lot does not hang exec" {
	run_kal run -d --name rough busybox
	run_kal exec rough sh -c 'for i in $(seq 100); do (sleep 30 &); done; echo forked'
	assert_output "forked"
	run_kal exec rough sh -c 'kill -9 -1; echo survived'
	run_kal exec rough sh -c 'i=0; while [ $i -lt 300 ]; do /bin/true & i=$((i+1)); done; wait; echo many'
	assert_output "many"
	run_kal exec rough echo still-here
	assert_output "still-here"
	run_kal rm -f rough
}

@test "hostile clients on the VM socket are cut off; the supervisor and the VM carry on" {
	run_kal run -d --name sock busybox
	spid=$(vm_pid sock)
	sock=$XDG_RUNTIME_DIR/kal/sock.sock
	# an oversized frame header, a frame before HELLO, and a control type after HELLO
	run python3 - "$sock" <<'PY'
import socket, struct, sys
def conn():
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(10); return s
def hello():
    sw = b"test\0"
    p = struct.pack("<II", 1, 65536) + struct.pack("<I", len(sw)) + sw
    return struct.pack("<IHHI", len(p), 1, 0, 0) + p
def drain(s):
    out = b""
    while True:
        d = s.recv(65536)
        if not d: return out
        out += d
s = conn(); s.sendall(struct.pack("<IHHI", 0x7fffffff, 0x10, 0, 1)); print("oversized", len(drain(s)) > 0)
s = conn(); s.sendall(struct.pack("<IHHI", 0, 0x1a, 0, 1)); print("no-hello", len(drain(s)) > 0)
s = conn(); s.sendall(hello() + struct.pack("<IHHI", 0, 0xfe, 0, 7)); s.settimeout(3)
d = s.recv(65536)
while len(d) < 12 + 26 + 12: d += s.recv(65536)
print("unknown-ctl-type", struct.unpack("<IHHI", d[38:50])[1] == 0x04)
PY
	assert_output $'oversized True\nno-hello True\nunknown-ctl-type True'
	proc_alive "$spid"
	run_kal exec sock echo fine
	assert_output "fine"
	run_kal rm -f sock
}

@test "logs -f follows the console and ends when the VM stops" {
	run_kal run -d --name follow busybox
	"$KAL" logs -f follow >"$BATS_TEST_TMPDIR/follow.out" 3>&- &
	pid=$!
	run_kal exec follow sh -c 'echo followed-line >/dev/console'
	for _ in $(seq 50); do grep -q followed-line "$BATS_TEST_TMPDIR/follow.out" && break; sleep 0.1; done
	run_kal stop follow
	for _ in $(seq 50); do proc_alive "$pid" || break; sleep 0.1; done
	! proc_alive "$pid"
	run grep -c followed-line "$BATS_TEST_TMPDIR/follow.out"
	assert_output 1
	run_kal rm follow
}
