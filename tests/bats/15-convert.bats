#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-or-later
# Layer conversion (kal __convert): every fixture image passes fsck.erofs, the
# EROFS layers stacked with overlayfs equal a docker-style extraction of the
# tars, output is deterministic, compressed and plain layers agree, and each
# hostile tar ends in its exact one-line error (tests/fixtures/mktars.py).

load helpers

FIXTURES=$BATS_TEST_DIRNAME/../fixtures

setup_file() {
	export FX=$BATS_FILE_TMPDIR/fx
	python3 "$FIXTURES/mktars.py" features "$FX/features"
	python3 "$FIXTURES/mktars.py" hostile "$FX/hostile"
}

# convert IN OUT [kal options...]: kal __convert, must succeed
convert() {
	local in=$1 out=$2
	shift 2
	run_kal __convert "$@" "$in" "$out"
}

field() { # field NAME: value of "NAME: value" in $output
	sed -n "s/^$1: //p" <<<"$output"
}

# an image must be non-empty, 2 MiB aligned and pass fsck.erofs including data extraction
check_image() {
	local img=$1 size
	size=$(stat -c %s "$img")
	[ "$size" -gt 0 ]
	[ $((size % (2 * 1024 * 1024))) -eq 0 ]
	run fsck.erofs "$img"
	assert_success
	rm -rf "$BATS_TEST_TMPDIR/x"
	run fsck.erofs --extract="$BATS_TEST_TMPDIR/x" "$img"
	assert_success
}

# hostile NAME: the tar gives exactly the error in NAME.expect, or converts and passes fsck
hostile() {
	local want
	want=$(cat "$FX/hostile/$1.expect")
	if [ "$want" = ok ]; then
		convert "$FX/hostile/$1.tar" "$BATS_TEST_TMPDIR/out.erofs"
		run fsck.erofs "$BATS_TEST_TMPDIR/out.erofs"
		assert_success
	else
		run_kal 125 __convert "$FX/hostile/$1.tar" "$BATS_TEST_TMPDIR/out.erofs"
		assert_equal "$stderr" "kal: $want"
		[ ! -e "$BATS_TEST_TMPDIR/out.erofs" ]
	fi
}

need_root_loop() {
	[ "$(id -u)" -eq 0 ] || skip_host_lacks "root (loop-mounting EROFS)"
	grep -qw erofs /proc/filesystems || modprobe erofs 2>/dev/null || skip_host_lacks "erofs"
	grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || skip_host_lacks "overlayfs"
	losetup -f >/dev/null 2>&1 || skip_host_lacks "loop devices"
}

@test "convert: feature layers convert, print their digests and pass fsck.erofs" {
	for ln in 1 2 3; do
		convert "$FX/features/layer$ln.tar" "$BATS_TEST_TMPDIR/l$ln.erofs"
		assert_equal "$(field diff_id)" "sha256:$(sha256sum <"$FX/features/layer$ln.tar" | cut -d' ' -f1)"
		assert_equal "$(field tar_bytes)" "$(stat -c %s "$FX/features/layer$ln.tar")"
		assert_equal "$(field image_bytes)" "$(stat -c %s "$BATS_TEST_TMPDIR/l$ln.erofs")"
		assert_equal "$(field erofs_digest)" "sha256:$(sha256sum <"$BATS_TEST_TMPDIR/l$ln.erofs" | cut -d' ' -f1)"
		check_image "$BATS_TEST_TMPDIR/l$ln.erofs"
	done
}

@test "convert: the image has block-aligned, non-inline data and the expected superblock" {
	convert "$FX/features/layer1.tar" "$BATS_TEST_TMPDIR/l1.erofs"
	run dump.erofs -s "$BATS_TEST_TMPDIR/l1.erofs"
	assert_success
	assert_line --regexp 'magic number: +0xE0F5E1E2'
	assert_line --regexp 'root nid: +1$'
	assert_line --regexp 'features: +sb_csum'
	# every regular file is FLAT_PLAIN (layout 0) or CHUNK_BASED (4), never inline (2)
	for p in /big /bin/tool /etc/hostname /sparse /empty; do
		run dump.erofs --path="$p" "$BATS_TEST_TMPDIR/l1.erofs"
		assert_success
		assert_output --regexp 'Layout: (0|4) '
	done
	run dump.erofs --path=/sparse "$BATS_TEST_TMPDIR/l1.erofs"
	assert_output --regexp 'Layout: 4 '
}

@test "convert: stacked layers under overlayfs equal a docker-style extraction" {
	need_root_loop
	local d=$BATS_TEST_TMPDIR ln
	for ln in 1 2 3; do
		convert "$FX/features/layer$ln.tar" "$d/l$ln.erofs"
		mkdir -p "$d/m$ln"
		mount -t erofs -o loop,ro "$d/l$ln.erofs" "$d/m$ln"
	done
	mkdir -p "$d/ov" "$d/ref"
	mount -t overlay overlay -o "ro,lowerdir=$d/m3:$d/m2:$d/m1" "$d/ov"
	python3 "$FIXTURES/treecmp.py" extract "$d/ref" "$FX"/features/layer{1,2,3}.tar
	run python3 "$FIXTURES/treecmp.py" compare "$d/ref" "$d/ov"
	umount "$d/ov"
	for ln in 1 2 3; do umount "$d/m$ln"; done
	echo "$output" | sed 's/^/# /' >&3
	assert_success
	assert_line --regexp '^[0-9]+ entries compared, 0 differences$'
	# spot checks of the semantics the comparison relies on
	run cat "$d/ref/opq/new"
	assert_output "only this"
	[ ! -e "$d/ref/opq/a" ]
	[ -e "$d/ref/forged/keep.txt" ]
	[ ! -e "$d/ref/etc/removeme" ]
	[ -e "$d/ref/.wh.etc/somefile" ]
}

@test "convert: the same layer twice gives byte-identical images, whatever the locale and time zone" {
	convert "$FX/features/layer1.tar" "$BATS_TEST_TMPDIR/a.erofs"
	LANG=C LC_ALL=C TZ=UTC convert "$FX/features/layer1.tar" "$BATS_TEST_TMPDIR/b.erofs"
	LC_ALL=C.UTF-8 TZ=Asia/Tokyo convert "$FX/features/layer1.tar" "$BATS_TEST_TMPDIR/c.erofs"
	cmp "$BATS_TEST_TMPDIR/a.erofs" "$BATS_TEST_TMPDIR/b.erofs"
	cmp "$BATS_TEST_TMPDIR/a.erofs" "$BATS_TEST_TMPDIR/c.erofs"
}

@test "convert: gzip (also multi-member) and zstd layers give the plain tar's diff_id and image" {
	local t=$FX/features/layer1.tar d=$BATS_TEST_TMPDIR plain
	convert "$t" "$d/plain.erofs"
	plain=$output
	gzip -n -c "$t" >"$d/l.tar.gz"
	zstd -q -c "$t" >"$d/l.tar.zst"
	head -c 100000 "$t" | gzip -n -c >"$d/multi.gz"
	tail -c +100001 "$t" | gzip -n -c >>"$d/multi.gz"
	for f in l.tar.gz multi.gz l.tar.zst; do
		convert "$d/$f" "$d/$f.erofs"
		assert_equal "$output" "$plain"
	done
	convert "$d/l.tar.gz" "$d/x.erofs" --gzip
	assert_equal "$output" "$plain"
	convert "$d/l.tar.zst" "$d/x.erofs" --zstd
	assert_equal "$output" "$plain"
}

@test "convert: the diff_id covers bytes after the end-of-archive blocks" {
	convert "$FX/hostile/trailing-garbage.tar" "$BATS_TEST_TMPDIR/o.erofs"
	assert_equal "$(field diff_id)" "sha256:$(sha256sum <"$FX/hostile/trailing-garbage.tar" | cut -d' ' -f1)"
}

@test "convert: an empty stream is an empty layer" {
	: >"$BATS_TEST_TMPDIR/empty.tar"
	convert "$BATS_TEST_TMPDIR/empty.tar" "$BATS_TEST_TMPDIR/o.erofs"
	assert_equal "$(field entries)" 0
	check_image "$BATS_TEST_TMPDIR/o.erofs"
}

@test "convert: a 1 TiB sparse file claim stays small and reads back" {
	convert "$FX/hostile/sparse-huge.tar" "$BATS_TEST_TMPDIR/o.erofs"
	[ "$(field image_bytes)" -le $((16 * 1024 * 1024)) ]
	run dump.erofs --path=/huge "$BATS_TEST_TMPDIR/o.erofs"
	assert_output --partial 'Size: 1099511627776 '
}

@test "convert: gzip with garbage after the last member is an error" {
	gzip -n -c "$FX/features/layer3.tar" >"$BATS_TEST_TMPDIR/l.gz"
	echo "not gzip" >>"$BATS_TEST_TMPDIR/l.gz"
	run_kal 125 __convert "$BATS_TEST_TMPDIR/l.gz" "$BATS_TEST_TMPDIR/o.erofs"
	assert_equal "$stderr" "kal: layer: gzip: incorrect header check"
}

@test "convert: a truncated gzip stream is an error" {
	gzip -n -c "$FX/features/layer1.tar" | head -c 20000 >"$BATS_TEST_TMPDIR/l.gz"
	run_kal 125 __convert "$BATS_TEST_TMPDIR/l.gz" "$BATS_TEST_TMPDIR/o.erofs"
	assert_equal "$stderr" "kal: layer: gzip: unexpected end of data"
}

@test "convert: a zstd frame asking for a 2 GiB window is refused" {
	# frame header: magic, descriptor 0, window descriptor exponent 21 (2^31), one empty last raw block
	printf '\x28\xb5\x2f\xfd\x00\xa8\x01\x00\x00' >"$BATS_TEST_TMPDIR/w.zst"
	run_kal 125 __convert "$BATS_TEST_TMPDIR/w.zst" "$BATS_TEST_TMPDIR/o.erofs"
	assert_equal "$stderr" "kal: layer: zstd: Frame requires too much memory for decoding"
}

@test "convert: decompressed size is capped on the output side (gzip bomb)" {
	head -c $((64 * 1024 * 1024)) /dev/zero | gzip -1 -n >"$BATS_TEST_TMPDIR/bomb.gz"
	KAL_MAX_LAYER_BYTES=10000000 run_kal 125 __convert "$BATS_TEST_TMPDIR/bomb.gz" "$BATS_TEST_TMPDIR/o.erofs"
	assert_equal "$stderr" "kal: layer: uncompressed size exceeds the limit of 10000000 bytes"
}

@test "convert: the entry count is capped" {
	KAL_MAX_LAYER_ENTRIES=10 run_kal 125 __convert "$FX/features/layer1.tar" "$BATS_TEST_TMPDIR/o.erofs"
	assert_equal "$stderr" "kal: layer: more than 10 entries"
}

@test "convert: a socket-free layer warns about nothing; forged overlay xattrs are dropped with a warning" {
	convert "$FX/features/layer1.tar" "$BATS_TEST_TMPDIR/o.erofs"
	assert_equal "$stderr" ""
	convert "$FX/hostile/forged-opaque.tar" "$BATS_TEST_TMPDIR/o.erofs"
	assert_equal "$stderr" 'kal: warning: layer: dropped 1 overlay xattr from the image (first on `d/`)'
}

@test "convert: no file syscall ever carries a name from the tar" {
	command -v strace >/dev/null || skip_host_lacks strace
	local t
	for t in features/layer1 features/layer2 hostile/traversal hostile/symlink-parent \
		hostile/hardlink-escape hostile/absolute; do
		rm -f "$BATS_TEST_TMPDIR/o.erofs"
		strace -f -qq -e trace=%file -o "$BATS_TEST_TMPDIR/trace" \
			"$KAL" __convert "$FX/$t.tar" "$BATS_TEST_TMPDIR/o.erofs" >/dev/null 2>&1 || true
		run grep -E '/escape|etc/passwd|etc/shadow|hostname|links/|GNUSparse|\.wh\.' "$BATS_TEST_TMPDIR/trace"
		assert_failure
	done
}

@test "convert: usage errors" {
	run_kal 125 __convert only-one
	assert_equal "$stderr" "kal: __convert: requires exactly 2 arguments (usage: kal __convert [--gzip|--zstd|--plain|--auto] IN.tar OUT.erofs)"
	run_kal 125 __convert "$BATS_TEST_TMPDIR/missing.tar" "$BATS_TEST_TMPDIR/o.erofs"
	assert_equal "$stderr" "kal: open \`$BATS_TEST_TMPDIR/missing.tar\`: No such file or directory"
}

@test "convert: __convert is hidden from help" {
	run_kal help
	refute_output --partial __convert
}

@test "hostile tar traversal: exact error" {
	hostile traversal
}

@test "hostile tar traversal-inner: exact error" {
	hostile traversal-inner
}

@test "hostile tar symlink-parent: exact error" {
	hostile symlink-parent
}

@test "hostile tar hardlink-escape: exact error" {
	hostile hardlink-escape
}

@test "hostile tar hardlink-dir: exact error" {
	hostile hardlink-dir
}

@test "hostile tar hardlink-later: exact error" {
	hostile hardlink-later
}

@test "hostile tar whiteout-empty: exact error" {
	hostile whiteout-empty
}

@test "hostile tar whiteout-dot: exact error" {
	hostile whiteout-dot
}

@test "hostile tar whiteout-dotdot: exact error" {
	hostile whiteout-dotdot
}

@test "hostile tar whiteout-nested-dot: exact error" {
	hostile whiteout-nested-dot
}

@test "hostile tar root-file: exact error" {
	hostile root-file
}

@test "hostile tar long-component: exact error" {
	hostile long-component
}

@test "hostile tar too-deep: exact error" {
	hostile too-deep
}

@test "hostile tar uid-range: exact error" {
	hostile uid-range
}

@test "hostile tar dev-range: exact error" {
	hostile dev-range
}

@test "hostile tar symlink-empty: exact error" {
	hostile symlink-empty
}

@test "hostile tar pax-bomb: exact error" {
	hostile pax-bomb
}

@test "hostile tar truncated: exact error" {
	hostile truncated
}

@test "hostile tar bad-checksum: exact error" {
	hostile bad-checksum
}

@test "hostile tar not-tar: exact error" {
	hostile not-tar
}

@test "hostile tar absolute: accepted safely" {
	hostile absolute
}

@test "hostile tar hardlink-clamped: accepted safely" {
	hostile hardlink-clamped
}

@test "hostile tar hardlink-symlink: accepted safely" {
	hostile hardlink-symlink
}

@test "hostile tar whiteout-dir-prefix: accepted safely" {
	hostile whiteout-dir-prefix
}

@test "hostile tar duplicate: accepted safely" {
	hostile duplicate
}

@test "hostile tar dir-over-file: accepted safely" {
	hostile dir-over-file
}

@test "hostile tar file-over-dir: accepted safely" {
	hostile file-over-dir
}

@test "hostile tar forged-opaque: accepted safely" {
	hostile forged-opaque
}

@test "hostile tar sparse-huge: accepted safely" {
	hostile sparse-huge
}

@test "hostile tar trailing-garbage: accepted safely" {
	hostile trailing-garbage
}
