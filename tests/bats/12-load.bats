#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-or-later
# kal load: OCI image layouts and docker-save tarballs, verified like a pull.

load helpers

@test "load an OCI layout: names from ref.name annotations, same digest as the layout" {
	local layout digest
	layout=$(fixture_build busybox)
	digest=$(fixture_digest busybox)
	cp -r "$layout" "$BATS_TEST_TMPDIR/bb"
	run_kal load "$BATS_TEST_TMPDIR/bb"
	assert_output --regexp "^docker.io/library/bb:latest: loaded $digest \(1 layer, [0-9.]+ MB\)\$"
	run_kal inspect bb
	local path
	path=$(jq -r '.layers[0].erofs.path' <<<"$output")
	[ -f "$path" ]
	assert_equal "$(($(stat -c %s "$path") % 2097152))" 0
}

@test "load --name names a single-image layout" {
	run_kal load --name example.com/tools/bb:1 "$(fixture_build busybox)"
	assert_output --regexp '^example.com/tools/bb:1: loaded sha256:'
	run_kal images -q
	assert_output example.com/tools/bb:1
}

@test "load a layout with several tagged images loads each; shared layers once" {
	cp -r "$(fixture_build shared)" "$BATS_TEST_TMPDIR/shared"
	run_kal load "$BATS_TEST_TMPDIR/shared"
	assert_line --index 0 --regexp '^docker.io/library/shared:a: loaded sha256:[0-9a-f]{64} \(2 layers, '
	assert_line --index 1 --regexp '^docker.io/library/shared:b: loaded sha256:[0-9a-f]{64} \(2 layers, '
	assert_equal "$(find "$KAL_HOME/layers/sha256" -name '*.erofs' | wc -l)" 3
	run_kal 125 load --name x "$BATS_TEST_TMPDIR/shared"
	assert_equal "$stderr" "kal: load \`$BATS_TEST_TMPDIR/shared\`: \`$BATS_TEST_TMPDIR/shared\` holds 2 images: --name needs exactly one"
}

@test "load a multi-platform layout picks linux/amd64 or --platform" {
	cp -r "$(fixture_build multiarch)" "$BATS_TEST_TMPDIR/ma"
	run_kal load "$BATS_TEST_TMPDIR/ma"
	run_kal inspect ma
	assert_equal "$(jq -r .platform <<<"$output")" linux/amd64
	run_kal load --platform linux/arm64/v8 "$BATS_TEST_TMPDIR/ma"
	run_kal inspect ma
	assert_equal "$(jq -r .platform <<<"$output")" linux/arm64/v8
}

@test "load a docker-save tarball: RepoTags name it, layers verified against diff_ids" {
	run_kal load "$(fixture_build docker-save)"
	assert_output --regexp '^docker.io/library/busybox:latest: loaded sha256:[0-9a-f]{64} \(1 layer, [0-9.]+ MB\)$'
	run_kal inspect busybox
	assert_equal "$(jq -r '.layers[0].diffId' <<<"$output")" "$(jq -r '.config.rootfs.diff_ids[0]' <<<"$output")"
	# the same content loaded twice gives the same (synthesized) manifest digest
	local d1
	d1=$(jq -r .digest <<<"$output")
	run_kal load --name again "$(fixture_build docker-save)"
	assert_output --regexp "^docker.io/library/again:latest: loaded $d1 "
	run_kal cache verify
	assert_output "cache ok"
}

@test "load a gzip-compressed docker-save tarball" {
	gzip -c "$(fixture_build docker-save)" >"$BATS_TEST_TMPDIR/save.tar.gz"
	run_kal load "$BATS_TEST_TMPDIR/save.tar.gz"
	assert_output --regexp '^docker.io/library/busybox:latest: loaded '
}

@test "error: docker-save layer that does not match its diff_id" {
	local t=$BATS_TEST_TMPDIR/save
	mkdir "$t"
	tar -C "$t" -xf "$(fixture_build docker-save)"
	local cfg
	cfg=$(jq -r '.[0].Config' "$t/manifest.json")
	jq -c '.rootfs.diff_ids[0] = "sha256:'"$(printf 1%.0s {1..64})"'"' "$t/$cfg" >"$t/new.json"
	jq -c '.[0].Config = "new.json"' "$t/manifest.json" >"$t/m" && mv "$t/m" "$t/manifest.json"
	rm "$t/$cfg"
	tar -C "$t" -cf "$BATS_TEST_TMPDIR/bad.tar" .
	run_kal 125 load "$BATS_TEST_TMPDIR/bad.tar"
	local layer real
	layer=$(jq -r '.[0].Layers[0]' "$t/manifest.json")
	real=sha256:$(sha256sum "$t/$layer" | cut -d' ' -f1)
	assert_equal "$stderr" "kal: load \`$BATS_TEST_TMPDIR/bad.tar\`: layer 1 (\`$layer\`): diff_id mismatch (want sha256:$(printf 1%.0s {1..64}), got $real)"
	assert_equal "$(find "$KAL_HOME/layers" -name '*.erofs' | wc -l)" 0
	assert_equal "$(find "$KAL_HOME/images" -type f | wc -l)" 0
}

@test "error: OCI layout with a corrupted blob" {
	cp -r "$(fixture_build busybox)" "$BATS_TEST_TMPDIR/bb"
	local m layer f
	m=$BATS_TEST_TMPDIR/bb/blobs/sha256/$(fixture_digest busybox | cut -d: -f2)
	layer=$(jq -r '.layers[0].digest' "$m")
	f=$BATS_TEST_TMPDIR/bb/blobs/sha256/${layer#sha256:}
	chmod u+w "$f"
	printf 'X' | dd of="$f" bs=1 seek=100 conv=notrunc status=none
	run_kal 125 load "$BATS_TEST_TMPDIR/bb"
	assert_equal "$stderr" "$(printf 'kal: load `%s`: `docker.io/library/bb:latest`: layer 1: digest mismatch (want %s, got sha256:%s)' "$BATS_TEST_TMPDIR/bb" "$layer" "$(sha256sum "$f" | cut -d' ' -f1)")"
	assert_equal "$(find "$KAL_HOME/images" -type f | wc -l)" 0
}

@test "error: neither a layout nor a tarball" {
	printf 'hello' >"$BATS_TEST_TMPDIR/junk"
	run_kal 125 load "$BATS_TEST_TMPDIR/junk"
	assert_output ""
	assert_equal "$stderr" "kal: load \`$BATS_TEST_TMPDIR/junk\`: neither an OCI layout nor a docker-save tarball (Unrecognized archive format)"
	mkdir "$BATS_TEST_TMPDIR/dir"
	run_kal 125 load "$BATS_TEST_TMPDIR/dir"
	assert_equal "$stderr" "kal: load \`$BATS_TEST_TMPDIR/dir\`: \`$BATS_TEST_TMPDIR/dir\` is not an OCI image layout (no \`oci-layout\` file)"
	run_kal 125 load "$BATS_TEST_TMPDIR/missing"
	assert_equal "$stderr" "kal: load \`$BATS_TEST_TMPDIR/missing\`: \`$BATS_TEST_TMPDIR/missing\`: No such file or directory"
}
