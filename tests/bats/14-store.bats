#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-or-later
# Store integrity: cache verify finds flipped bytes, kill -9 during a pull leaves a cache
# the next pull repairs, concurrent pulls of overlapping images share layers.

load helpers

setup_file() {
	registry_start
	local f
	for f in busybox shared features zstd debian; do
		fixture_push "$f" >/dev/null
	done
	export REG=$KAL_TEST_REGISTRY
}

teardown_file() {
	registry_stop
}

flip_byte() {
	chmod u+w "$1"
	local b
	b=$(dd if="$1" bs=1 skip="$2" count=1 status=none | od -An -tu1 | tr -d ' ')
	printf "\\$(printf %03o $(((b + 1) % 256)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

@test "cache verify finds a flipped byte in an EROFS file and in a blob" {
	run_kal pull -q "$REG/busybox"
	run_kal cache verify
	assert_output "cache ok"
	local erofs blob want
	run_kal inspect "$REG/busybox"
	erofs=$(jq -r '.layers[0].erofs.path' <<<"$output")
	want=$(jq -r '.layers[0].erofs.sha256' <<<"$output")
	blob=$KAL_HOME/blobs/sha256/$(jq -r '.configDigest | sub("sha256:"; "")' <<<"$output")
	flip_byte "$erofs" 1024
	flip_byte "$blob" 10
	run_kal 1 cache verify
	assert_line "corrupt: layers/sha256/$(basename "$erofs") (want $want, got sha256:$(sha256sum "$erofs" | cut -d' ' -f1))"
	assert_line "corrupt: blobs/sha256/$(basename "$blob") (want sha256:$(basename "$blob"), got sha256:$(sha256sum "$blob" | cut -d' ' -f1))"
	assert_line "2 corrupt objects (run \`kal cache verify --delete\`, then pull again)"
	# the VM side refuses a corrupt layer too
	run_kal 1 cache verify
	run_kal cache verify --delete
	assert_line "deleted: layers/sha256/$(basename "$erofs")"
	assert_line "deleted: blobs/sha256/$(basename "$blob")"
	assert_line "incomplete: images/${REG}%2Fbusybox:latest (objects missing: pull \`$REG/busybox:latest\` again)"
	run_kal cache verify
	assert_line --index 0 --partial "incomplete: images/"
	assert_line --index 1 "cache ok"
	# the next pull restores what was deleted
	run_kal pull "$REG/busybox"
	assert_output --regexp ': pulled '
	run_kal cache verify
	assert_output "cache ok"
}

@test "kill -9 at random points of a pull: cache stays consistent, next pull repairs" {
	local i pid
	for i in $(seq 12); do
		rm -rf "$KAL_HOME"
		"$KAL" pull -q "$REG/features" >/dev/null 2>&1 &
		pid=$!
		sleep "0.0$((RANDOM % 10))$((RANDOM % 10))"
		kill -9 "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		run_kal cache verify
		refute_output --partial "corrupt"
		run_kal pull -q "$REG/features"
		run_kal cache verify
		assert_output "cache ok"
		assert_equal "$(find "$KAL_HOME" -name '.tmp-*' | wc -l)" 0
	done
	run_kal pull "$REG/features"
	assert_output --regexp ': up to date '
}

@test "kill -9 during a Debian pull (download or conversion): next pull repairs" {
	local i pid ref
	run_kal pull -q "$REG/debian"
	ref=$(KAL_HOME=$KAL_HOME "$KAL" inspect "$REG/debian" | jq -r '.layers[0].erofs.sha256')
	for i in $(seq 6); do
		rm -rf "$KAL_HOME"
		"$KAL" pull -q "$REG/debian" >/dev/null 2>&1 &
		pid=$!
		sleep "$((RANDOM % 4)).$((RANDOM % 10))"
		kill -9 "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		run_kal cache verify
		refute_output --partial "corrupt"
		run_kal pull -q "$REG/debian"
		run_kal inspect "$REG/debian"
		# the repaired layer is byte-identical to an uninterrupted pull's
		assert_equal "$(jq -r '.layers[0].erofs.sha256' <<<"$output")" "$ref"
	done
	run_kal cache verify
	assert_output "cache ok"
}

@test "stale temp files of a killed pull are removed by the next pull" {
	mkdir -p "$KAL_HOME/layers/sha256" "$KAL_HOME/blobs/sha256"
	printf 'partial' >"$KAL_HOME/layers/sha256/.tmp-dead.erofs-AbCdEf"
	printf 'partial' >"$KAL_HOME/blobs/sha256/.tmp-dead-AbCdEf"
	run_kal pull -q "$REG/busybox"
	assert_equal "$(find "$KAL_HOME" -name '.tmp-*' | wc -l)" 0
}

@test "two concurrent pulls of overlapping images both succeed and share layers" {
	local p1 p2 r1 r2
	"$KAL" pull -q "$REG/shared:a" >"$BATS_TEST_TMPDIR/a.out" 2>&1 &
	p1=$!
	"$KAL" pull -q "$REG/shared:b" >"$BATS_TEST_TMPDIR/b.out" 2>&1 &
	p2=$!
	wait "$p1" && r1=0 || r1=$?
	wait "$p2" && r2=0 || r2=$?
	cat "$BATS_TEST_TMPDIR/a.out" "$BATS_TEST_TMPDIR/b.out" >&3
	assert_equal "$r1 $r2" "0 0"
	assert_equal "$(find "$KAL_HOME/layers/sha256" -name '*.erofs' | wc -l)" 3
	run_kal cache verify
	assert_output "cache ok"
	local a b
	a=$("$KAL" inspect "$REG/shared:a" | jq -r '.layers[0].erofs.path')
	b=$("$KAL" inspect "$REG/shared:b" | jq -r '.layers[0].erofs.path')
	assert_equal "$a" "$b"
}

@test "four concurrent pulls of the same image: one copy of each object" {
	local pids=() p rc=0
	for _ in 1 2 3 4; do
		"$KAL" pull -q "$REG/features" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do
		wait "$p" || rc=1
	done
	assert_equal "$rc" 0
	assert_equal "$(find "$KAL_HOME/layers/sha256" -name '*.erofs' | wc -l)" 3
	run_kal cache verify
	assert_output "cache ok"
}

@test "prune waits for nothing and keeps what a pulled image needs" {
	run_kal pull -q "$REG/zstd"
	run_kal prune
	assert_output "freed 0 B"
	run_kal pull "$REG/zstd"
	assert_output --regexp ': up to date '
}

# pull_injected INJECT: a pull under strace fault injection; must fail cleanly
pull_injected() {
	command -v strace >/dev/null || skip_host_lacks strace
	echo "# \$ strace -e inject=$1 kal pull $REG/shared:a" >&3
	run --separate-stderr strace -f -o /dev/null -e "inject=$1" "$KAL" pull "$REG/shared:a"
	echo "# $stderr" >&3
	INJECTED_ERR=$stderr
	assert_equal "$status" 125
	# nothing half-written stays behind, nothing is published under the image's name
	assert_equal "$(find "$KAL_HOME" -name '.tmp-*' | wc -l)" 0
	assert_equal "$(find "$KAL_HOME/images" -type f | wc -l)" 0
	# and a clean run afterwards succeeds with a consistent cache
	run_kal pull -q "$REG/shared:a"
	run_kal cache verify
	assert_output "cache ok"
}

@test "fsync failing with EIO is fatal and names the operation (no retry)" {
	pull_injected fsync:error=EIO:when=1
	assert_regex "$INJECTED_ERR" "^kal: pull \`$REG/shared:a\`: config: fsync \`$KAL_HOME/blobs/sha256/\.tmp-[0-9a-f]{64}-[A-Za-z0-9]{6}\`: Input/output error\$"
}

@test "rename failing with ENOSPC leaves no object under its final name" {
	pull_injected rename:error=ENOSPC:when=2
	assert_regex "$INJECTED_ERR" "^kal: pull \`$REG/shared:a\`: manifest: rename to \`$KAL_HOME/blobs/sha256/[0-9a-f]{64}\`: No space left on device\$"
}

@test "fdatasync of a converted layer failing with EIO" {
	pull_injected fdatasync:error=EIO
	assert_regex "$INJECTED_ERR" "^kal: pull \`$REG/shared:a\`: layer [12]: fsync \`$KAL_HOME/layers/sha256/\.tmp-[0-9a-f]{64}\.erofs-[A-Za-z0-9]{6}\`: Input/output error\$"
}
