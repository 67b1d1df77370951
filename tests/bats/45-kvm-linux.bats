#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-or-later
# The kvm engine end to end: kal's own VMM boots kal's kernel and agent on the
# Debian image (layers on read-only virtio-pmem mounted as EROFS with DAX, the agent stream on the
# shared-memory rings with the `kal.agent` port as their doorbell), and `kal
# exec` runs commands in it; user networking is virtio-net on libslirp with the
# host's loopback out of reach.  On the nested build
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
	KPORT=$(_registry_free_port)
	export KPORT
	"$KAL" run -d --engine kvm --net user -p "$KPORT:8000" --name k debian >"$BATS_FILE_TMPDIR/run.out" 2>&1 ||
		export KVM_RUN_FAILED=1
}
teardown_file() { vm_teardown_file; }

teardown() {
	local pid
	[ -f "$BATS_TEST_TMPDIR/http.pids" ] || return 0
	while read -r pid; do kill "$pid" 2>/dev/null || true; done <"$BATS_TEST_TMPDIR/http.pids"
}

# http_serve ADDR: serve $BATS_TEST_TMPDIR/www over HTTP on ADDR, a free port; prints the port.
# Requests are logged to $BATS_TEST_TMPDIR/http.ADDR.log.
http_serve() {
	local portfile=$BATS_TEST_TMPDIR/port.$1
	python3 - "$1" "$BATS_TEST_TMPDIR/www" "$portfile" >"$BATS_TEST_TMPDIR/http.$1.log" 2>&1 3>&- <<'PY' &
import functools, http.server, os, sys
addr, root, portfile = sys.argv[1:]
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=root)
srv = http.server.HTTPServer((addr, 0), handler)
with open(portfile + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(portfile + ".tmp", portfile)
srv.serve_forever()
PY
	echo $! >>"$BATS_TEST_TMPDIR/http.pids"
	for _ in $(seq 50); do
		[ -s "$portfile" ] && break
		sleep 0.1
	done
	cat "$portfile"
}

# host_ipv4: the host's first global IPv4 address
host_ipv4() {
	ip -4 -o addr show scope global 2>/dev/null | awk '{ sub("/.*", "", $4); print $4; exit }'
}

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

@test "kvm engine: --net user reaches a host service on the host's address" {
	local ip port
	ip=$(host_ipv4)
	[ -n "$ip" ] || skip_host_lacks "a global IPv4 address"
	mkdir -p "$BATS_TEST_TMPDIR/www"
	echo "hello from the host" >"$BATS_TEST_TMPDIR/www/hello.txt"
	port=$(http_serve "$ip")
	[ -n "$port" ]
	run_kal 0 exec k bash -c "exec 3<>/dev/tcp/$ip/$port && printf 'GET /hello.txt HTTP/1.0\r\n\r\n' >&3 && cat <&3"
	assert_line --regexp $'^HTTP/1.0 200 OK\r$'
	assert_line "hello from the host"
	grep -q '"GET /hello.txt HTTP/1.0" 200' "$BATS_TEST_TMPDIR/http.$ip.log"
}

@test "kvm engine: 10.0.2.2 is not the host's loopback; a DNS datagram leaves the VMM alive" {
	local lport
	mkdir -p "$BATS_TEST_TMPDIR/www"
	lport=$(http_serve 127.0.0.1)
	[ -n "$lport" ]
	# slirp forwards 10.0.2.3 to the host's nameserver: it reads /etc/resolv.conf on the
	# filtered net thread (seccomp: read-only openat), so a wrong list would kill the VMM here
	run_kal 0 exec k bash -c 'echo probe >/dev/udp/10.0.2.3/53'
	run_kal 1 exec k bash -c "timeout 30 bash -c 'exec 3<>/dev/tcp/10.0.2.2/$lport'"
	[[ $stderr == *"connect: Network is unreachable"* ]]
	run grep -c GET "$BATS_TEST_TMPDIR/http.127.0.0.1.log"
	assert_output 0
}

@test "kvm engine: -p publishes a guest port on the host's 127.0.0.1" {
	# a one-shot TCP server in the guest (perl-base is in every Debian image)
	run_kal 0 exec k sh -c 'perl -MIO::Socket::INET -e '\''$s = IO::Socket::INET->new(LocalPort => 8000, Listen => 1, ReuseAddr => 1) or die "listen: $!"; $c = $s->accept; print $c "hello from the guest\n"; close $c'\'' </dev/null >/dev/null 2>&1 &'
	for _ in $(seq 100); do
		run curl -s --max-time 20 "telnet://127.0.0.1:$KPORT" </dev/null
		[ "$output" != "hello from the guest" ] || break
		sleep 1
	done
	assert_output "hello from the guest"
}

@test "kvm engine: what it cannot do is a clear error, not a VM" {
	run_kal 125 run -d --engine kvm --memory 4G --name kbig debian
	assert_equal "$stderr" "kal: engine \`kvm\`: 4096 MiB of memory: must be 64 MiB to 3 GiB in 2 MiB steps"
	run_kal 0 ps -a -q
	refute_output --partial kbig
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
