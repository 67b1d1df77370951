#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-or-later
# The guest agent and the exec client without a VM: `kal __agent-test` runs
# the embedded kal-init as a host process on a socketpair (no mounts) and
# drives it with the same session client as `kal exec`.  agent_client.py
# speaks the protocol independently for multi-session and hostile cases.

load helpers

AGENT_CLIENT=$BATS_TEST_DIRNAME/agent_client.py

agent() { run_kal "$@"; }

@test "agent: exit status, stdout and stderr stay separate" {
	agent 3 __agent-test sh -c 'echo out; echo err >&2; exit 3'
	assert_equal "$output" out
	assert_equal "$stderr" err
	agent 0 __agent-test true
	agent 255 __agent-test sh -c 'exit 255'
}

@test "agent: a command killed by a signal exits 128+N" {
	agent 143 __agent-test sh -c 'kill -TERM $$'
	agent 137 __agent-test sh -c 'kill -KILL $$'
}

@test "agent: command not found is 127 with the reason" {
	agent 127 __agent-test nope-not-here
	assert_equal "$stderr" 'kal: exec `nope-not-here`: No such file or directory'
	assert_equal "$output" ''
}

@test "agent: a file that is not executable is 126" {
	touch "$BATS_TEST_TMPDIR/plain"
	agent 126 __agent-test "$BATS_TEST_TMPDIR/plain"
	assert_equal "$stderr" "kal: exec \`$BATS_TEST_TMPDIR/plain\`: Permission denied"
}

@test "agent: a missing working directory is 126" {
	agent 126 __agent-test -w /nonexistent pwd
	assert_equal "$stderr" 'kal: chdir `/nonexistent`: No such file or directory'
	agent 0 __agent-test -w /tmp pwd
	assert_equal "$output" /tmp
}

@test "agent: environment from -e, PATH default, -e NAME takes the caller's value" {
	agent 0 __agent-test -e FOO=bar -e 'SP=a b' sh -c 'echo "$FOO|$SP|$PATH"'
	assert_equal "$output" 'bar|a b|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
	FROMHOST=yes agent 0 __agent-test -e FROMHOST -e UNSET_HERE sh -c 'echo "$FROMHOST ${UNSET_HERE-unset}"'
	assert_equal "$output" 'yes unset'
	agent 125 __agent-test -e =x true
	assert_equal "$stderr" 'kal: __agent-test: bad environment variable `=x` (usage: kal __agent-test [-i] [-t] [-e K=V]... [-w DIR] [-u USER] [--] CMD [ARG...])'
}

@test "agent: 1 MiB of binary data round-trips through stdin and stdout" {
	head -c 1048576 /dev/urandom >"$BATS_TEST_TMPDIR/in"
	"$KAL" __agent-test -i cat <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out"
	cmp "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out"
	# and every byte value on stderr too
	"$KAL" __agent-test -i sh -c 'cat >&2' <"$BATS_TEST_TMPDIR/in" 2>"$BATS_TEST_TMPDIR/err"
	cmp "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/err"
}

@test "agent: stdin is streamed line by line and EOF reaches the command" {
	run --separate-stderr bash -c "{ echo one; sleep 0.3; echo two; } | '$KAL' __agent-test -i sh -c 'while read l; do echo \"<\$l>\"; done; echo eof'"
	assert_success
	assert_output $'<one>\n<two>\neof'
}

@test "agent: without -i the command's stdin is empty" {
	run --separate-stderr bash -c "echo secret | '$KAL' __agent-test cat"
	assert_success
	assert_output ''
}

@test "agent: a flood of output arrives complete (50 MiB)" {
	run --separate-stderr bash -c "'$KAL' __agent-test head -c 52428800 /dev/zero | wc -c"
	assert_success
	assert_output 52428800
}

@test "agent: a command that closes stdout early still reports stderr and status" {
	agent 4 __agent-test sh -c 'exec >&-; sleep 0.2; echo late >&2; exit 4'
	assert_equal "$stderr" late
}

@test "agent: output to a closed pipe ends the command with SIGPIPE" {
	run --separate-stderr bash -c "'$KAL' __agent-test yes | head -n 2; echo \"\${PIPESTATUS[0]}\""
	assert_output $'y\ny\n141'
}

@test "agent: SIGTERM to kal reaches the command's process group" {
	"$KAL" __agent-test sh -c 'sleep 30 & sleep 30; wait' &
	local pid=$!
	sleep 0.5
	kill -TERM "$pid"
	local rc=0
	wait "$pid" || rc=$?
	assert_equal "$rc" 143
}

@test "agent: -t gives a pty, stderr merged, TERM passed" {
	TERM=xterm-kal agent 0 __agent-test -t sh -c 'tty; echo "$TERM"; echo err >&2'
	assert_line --index 0 --regexp '^/dev/pts/[0-9]+'
	assert_line --index 1 $'xterm-kal\r'
	assert_line --index 2 $'err\r'
	assert_equal "$stderr" ''
}

@test "agent: the pty has the host window size and follows a resize" {
	command -v script >/dev/null || skip_host_lacks script
	run script -qec "stty rows 30 cols 100; '$KAL' __agent-test -t stty size" /dev/null
	assert_output --partial '30 100'
	run script -qec "stty rows 30 cols 100; (sleep 0.7; stty rows 41 cols 121 </dev/tty) & '$KAL' __agent-test -t sh -c 'sleep 1.5; stty size'" /dev/null
	assert_output --partial '41 121'
}

@test "agent: Ctrl-C typed into a -it session interrupts the guest command" {
	command -v script >/dev/null || skip_host_lacks script
	run bash -c "(sleep 1; printf '\\003') | script -qec \"'$KAL' __agent-test -it sleep 20; echo rc=\\\$?\" /dev/null"
	assert_output --partial 'rc=130'
}

@test "agent: the terminal is restored after a -it session" {
	command -v script >/dev/null || skip_host_lacks script
	run script -qec "stty -a | grep -o ' -\\?icanon'; '$KAL' __agent-test -it true; stty -a | grep -o ' -\\?icanon'" /dev/null
	assert_line --index 0 --partial ' icanon'
	assert_line --index 1 --partial ' icanon'
}

@test "agent: 100 concurrent sessions on one agent" {
	run python3 "$AGENT_CLIENT" drive "$(dirname "$KAL")/guest/kal-init" many
	assert_output --partial ok
}

@test "agent: a stalled host keeps the agent's memory bounded under an output flood" {
	run python3 "$AGENT_CLIENT" drive "$(dirname "$KAL")/guest/kal-init" flood
	assert_output --partial ok
}

@test "agent: a login shell sees -NAME as its argv[0]" {
	run python3 "$AGENT_CLIENT" drive "$(dirname "$KAL")/guest/kal-init" login
	assert_output --partial ok
}

@test "agent: orphans are reaped (no zombies)" {
	run python3 "$AGENT_CLIENT" drive "$(dirname "$KAL")/guest/kal-init" orphans
	assert_output --partial ok
}

@test "agent: the session cap refuses the 257th and LIST shows 256" {
	run python3 "$AGENT_CLIENT" drive "$(dirname "$KAL")/guest/kal-init" cap
	assert_output --partial ok
}

@test "agent: malformed host frames fail only their session" {
	run python3 "$AGENT_CLIENT" drive "$(dirname "$KAL")/guest/kal-init" malformed
	assert_output --partial ok
}

@test "agent: a detached session keeps its last output, bounded" {
	run python3 "$AGENT_CLIENT" drive "$(dirname "$KAL")/guest/kal-init" detach
	assert_output --partial ok
}

@test "agent: FILE_WRITE and FILE_READ round-trip with mode" {
	run python3 "$AGENT_CLIENT" drive "$(dirname "$KAL")/guest/kal-init" files
	assert_output --partial ok
}

@test "agent: a protocol version mismatch is a clear error" {
	KAL_TEST_AGENT=$AGENT_CLIENT FAKE_AGENT_MODE=version2 agent 125 __agent-test true
	assert_equal "$stderr" "kal: VM \`agent-test\`: agent protocol version 2, kal speaks 1: rebuild the VM's agent (recreate the VM with this kal)"
}

@test "agent: a silent agent is detected by the liveness timeout" {
	KAL_AGENT_TIMEOUT=1 KAL_TEST_AGENT=$AGENT_CLIENT FAKE_AGENT_MODE=silent agent 125 __agent-test true
	assert_equal "$stderr" 'kal: VM `agent-test`: the guest agent is not responding (no answer in 1 s)'
}

@test "agent: an agent that dies mid-session is reported" {
	KAL_TEST_AGENT=$AGENT_CLIENT FAKE_AGENT_MODE=die agent 125 __agent-test true
	assert_equal "$stderr" 'kal: VM `agent-test`: connection to the guest agent lost (did the VM stop?)'
}

@test "agent: an oversized frame from the agent is rejected before allocating" {
	KAL_TEST_AGENT=$AGENT_CLIENT FAKE_AGENT_MODE=oversize agent 125 __agent-test true
	assert_equal "$stderr" 'kal: VM `agent-test`: the guest agent sent a frame over the 65536 byte limit'
}

@test "agent: a malformed EXIT frame is rejected" {
	KAL_TEST_AGENT=$AGENT_CLIENT FAKE_AGENT_MODE=badexit agent 125 __agent-test true
	assert_equal "$stderr" 'kal: VM `agent-test`: the guest agent sent a malformed EXIT frame'
}

@test "agent: kal-init refuses to run as a normal process without --serve-fd" {
	run "$(dirname "$KAL")/guest/kal-init"
	assert_failure 2
	assert_line --index 0 --partial 'usage: kal-init'
	run "$(dirname "$KAL")/guest/kal-init" --serve-fd 99
	assert_failure 2
	assert_output 'kal-init: --serve-fd: `99` is not an open fd'
}

@test "agent: a large paste into a pty is delivered in full (backpressure on the master)" {
	head -c 300000 /dev/urandom | base64 >"$BATS_TEST_TMPDIR/paste"
	local want
	want=$(wc -l <"$BATS_TEST_TMPDIR/paste")
	run --separate-stderr bash -c "{ sleep 0.5; cat '$BATS_TEST_TMPDIR/paste'; } | '$KAL' __agent-test -it sh -c 'stty -echo; wc -l'"
	assert_success
	assert_output --regexp "^$want"
}

@test "agent: a command line over the frame limit is refused before sending" {
	local big
	big=$(head -c 70000 /dev/zero | tr '\0' a)
	run --separate-stderr "$KAL" __agent-test echo "$big"
	assert_failure 125
	assert_equal "$stderr" 'kal: exec: the command and environment exceed the 65536 byte frame limit'
}

@test "agent: SIGTERM to kal in a -it session restores the terminal" {
	command -v script >/dev/null || skip_host_lacks script
	run script -qec "'$KAL' __agent-test -it sleep 20 </dev/tty & sleep 1; stty -a </dev/tty | grep -o ' -\\?icanon'; kill -TERM \$!; wait; stty -a | grep -o ' -\\?icanon'" /dev/null
	assert_line --index 0 --partial ' -icanon'
	assert_line --index 1 --partial ' icanon'
}
