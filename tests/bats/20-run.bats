#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-or-later
# kal run: boot a VM from an image, run a command, propagate its status and
# output; option errors; two VMs at once.  Engine: whatever `auto` picks (qemu here).

load helpers
load vm_helpers

setup_file() { vm_setup_file; }
teardown_file() { vm_teardown_file; }
teardown() { hugepages_restore; }

setup() { vm_setup; }

@test "run: command output and exit status 0" {
	run_kal run --rm busybox echo hello from the guest
	assert_output "hello from the guest"
}

@test "run: the guest command's exit status is kal's" {
	run_kal 3 run --rm busybox sh -c 'exit 3'
}

@test "run: a missing command exits 127, a non-executable one 126" {
	run_kal 127 run --rm busybox /no/such/thing
	assert_output ""
	run_kal 126 run --rm busybox /etc/passwd
}

@test "run: stdout and stderr stay separate" {
	run_kal run --rm busybox sh -c 'echo to-out; echo to-err >&2'
	assert_output "to-out"
	[ "$stderr" = "to-err" ]
}

@test "run: -e and the image Env reach the command, -w sets the directory" {
	run_kal run --rm -e FOO=bar -w /tmp busybox sh -c 'echo "$FOO $(pwd) $PATH"'
	assert_output --regexp '^bar /tmp .*/bin'
}

@test "run: -i feeds stdin; 1 MiB of binary survives the round trip" {
	head -c 1048576 /dev/urandom >"$BATS_TEST_TMPDIR/in"
	want=$(sha256sum <"$BATS_TEST_TMPDIR/in" | cut -d' ' -f1)
	run --separate-stderr bash -c "'$KAL' run --rm -i busybox cat <'$BATS_TEST_TMPDIR/in' | sha256sum"
	[ "$status" -eq 0 ]
	[ "${output%% *}" = "$want" ]
}

@test "run: the guest hostname is the VM name" {
	run_kal run --rm --name hosty busybox hostname
	assert_output "hosty"
}

@test "run: without --rm the stopped VM stays in ps -a; --rm leaves nothing" {
	run_kal run --name keep busybox true
	run_kal ps -a
	assert_output --regexp 'keep +busybox +exited +qemu'
	run_kal rm keep
	run_kal run --rm --name gone busybox true
	[ ! -e "$KAL_HOME/vms/gone" ]
}

@test "run -d: prints the name, the VM runs until stopped; two VMs at once" {
	run_kal run -d --name one busybox
	assert_output "one"
	run_kal run -d --name two busybox
	run_kal ps
	assert_output --regexp 'one +busybox +running +qemu'
	assert_output --regexp 'two +busybox +running +qemu'
	run_kal exec one hostname
	assert_output "one"
	run_kal exec two hostname
	assert_output "two"
	run_kal stop one two
	run_kal rm one two
}

@test "run: a name that is taken is refused" {
	run_kal run -d --name dup busybox
	run_kal 125 run --name dup busybox true
	[ "$stderr" = "kal: a VM named \`dup\` already exists" ]
	run_kal rm -f dup
}

@test "run: bad VM name" {
	run_kal 125 run --name Bad! busybox true
	[ "$stderr" = "kal: invalid VM name \`Bad!\` (use 1-63 of a-z 0-9 _ . -, starting with a letter or digit)" ]
}

@test "run: bad --memory" {
	run_kal 125 run --memory lots busybox true
	# the usage that follows is the command's own (kal help run), checked in 90-docs.bats
	[[ "$stderr" == "kal: run: bad --memory \`lots\` (64M to 1024G, e.g. 512M, 2G) (usage: kal run [--name N] "*" IMAGE [CMD...])" ]]
}

@test "run: unknown engine and an engine that cannot run" {
	run_kal 125 run --engine vbox busybox true
	assert_equal "$stderr" "kal: unknown engine \`vbox\` (choose kvm, qemu or auto)"
	if ! [ -w /dev/kvm ]; then
		run_kal 125 run --engine kvm busybox true
		assert_output --partial 'kal: engine `kvm` is not available: '
	fi
}

@test "run: KAL_ENGINE=qemu is honoured and recorded" {
	KAL_ENGINE=qemu run_kal run -d --name eng busybox
	run jq -r .engine "$KAL_HOME/vms/eng/config.json"
	assert_output qemu
	run_kal rm -f eng
}

@test "run: --net user gives the guest eth0 10.0.2.15, --net none only lo" {
	run_kal run --rm --net user busybox ip -4 addr show eth0
	assert_output --partial "10.0.2.15/24"
	run_kal run --rm --net none busybox ls /sys/class/net
	assert_output "lo"
}

@test "run: a guest that dies before its agent is ready is reported with its console" {
	KAL_CMDLINE_EXTRA=rdinit=/nonexistent run_kal 125 run --rm --name early busybox true
	assert_output ""
	[[ "$stderr" == "kal: VM \`early\` stopped before its agent was ready (qemu exited with status 0); console: "* ]]
	[[ "$stderr" == *"Kernel panic"* ]]
	[ ! -e "$KAL_HOME/vms/early" ]
}

@test "run --hugepages: guest memory on reserved 2 MiB pages; a shortage is refused up front" {
	with_hugepages 0
	run_kal 125 run --rm --memory 128M --hugepages busybox true
	assert_equal "$stderr" "kal: --hugepages: 128 MiB of guest memory need 64 free 2 MiB huge pages, the host has 0 (reserve more: echo N > /proc/sys/vm/nr_hugepages)"
	with_hugepages 80
	[ "$(cat /proc/sys/vm/nr_hugepages)" -ge 64 ] || skip "the host could not reserve 64 huge pages"
	run_kal 0 run -d --name hp --memory 128M --hugepages busybox
	# taken = faulted in + reserved for later faults: all 128 MiB of guest RAM
	taken=$(awk '/^HugePages_Total/ { t = $2 } /^HugePages_Free/ { f = $2 } /^HugePages_Rsvd/ { r = $2 } END { print t - f + r }' /proc/meminfo)
	run_kal 0 rm -f hp
	[ "$taken" -ge 64 ]
}

@test "run -p: a published port reaches the guest; bad specs and --net none are refused" {
	run_kal 125 run --rm -p 99999:80 busybox true
	assert_equal "$stderr" "kal: bad published port \`99999:80\` (want [IP:]HOST:GUEST[/tcp|/udp], e.g. 8080:80)"
	run_kal 125 run --rm -p 1.2.3:80:80/sctp busybox true
	assert_equal "$stderr" "kal: bad published port \`1.2.3:80:80/sctp\` (want [IP:]HOST:GUEST[/tcp|/udp], e.g. 8080:80)"
	run_kal 125 run --rm --net none -p 8080:80 busybox true
	assert_equal "$stderr" "kal: -p/--publish needs --net user"
	port=$(_registry_free_port)
	run_kal 0 run -d --name pub -p "$port:8000" busybox
	run jq -r '.publish[0]' "$KAL_HOME/vms/pub/config.json"
	assert_output "127.0.0.1:$port:8000/tcp"
	run_kal 0 exec pub sh -c 'mkdir -p /www && echo hello-from-pub >/www/index.html && httpd -p 8000 -h /www'
	got=$(curl -fsS --max-time 20 "http://127.0.0.1:$port/index.html" || true)
	run_kal 0 rm -f pub
	assert_equal "$got" hello-from-pub
}

# frozen_qemu: KAL_QEMU that starts QEMU with its vCPUs stopped (-S): QMP answers,
# the guest never runs, so the agent never comes (however fast the host boots)
frozen_qemu() {
	printf '#!/bin/sh\nexec qemu-system-x86_64 "$@" -S\n' >"$BATS_TEST_TMPDIR/qemu-frozen"
	chmod +x "$BATS_TEST_TMPDIR/qemu-frozen"
	echo "$BATS_TEST_TMPDIR/qemu-frozen"
}

@test "run: a guest that stays silent hits the boot timeout" {
	KAL_QEMU=$(frozen_qemu) KAL_BOOT_TIMEOUT=1 run_kal 125 run --rm --name slow --engine qemu busybox true
	[[ "$stderr" == "kal: guest agent not ready after 1 s (console: "* ]]
}

@test "run: Ctrl-C while the VM boots stops it instead of leaving it behind" {
	KAL_QEMU=$(frozen_qemu) "$KAL" run --rm --name intr --engine qemu busybox true 2>"$BATS_TEST_TMPDIR/err" 3>&- &
	pid=$!
	sleep 0.7
	kill -INT "$pid"
	rc=0
	wait "$pid" || rc=$?
	[ "$rc" -eq 130 ]
	run cat "$BATS_TEST_TMPDIR/err"
	assert_output "kal: start VM \`intr\`: interrupted (the VM was stopped)"
	for _ in $(seq 100); do [ -e "$KAL_HOME/vms/intr" ] || break; sleep 0.1; done
	[ ! -e "$KAL_HOME/vms/intr" ]
	! pgrep -f -- "--home $KAL_HOME __supervise --ready-fd 3 intr"
}
