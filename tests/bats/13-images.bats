#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-or-later
# images / inspect / rmi / prune on images loaded from fixtures (no registry needed).

load helpers

load_fixture() {
	cp -r "$(fixture_build "$1")" "$BATS_TEST_TMPDIR/$1"
	run_kal load -q "$BATS_TEST_TMPDIR/$1"
}

@test "images on an empty cache prints only the header" {
	run_kal images
	assert_output --regexp '^REPOSITORY +TAG +DIGEST +LAYERS +SIZE$'
	run_kal images --format json
	assert_equal "$(jq length <<<"$output")" 0
	run_kal 125 images --format yaml
	assert_equal "$stderr" 'kal: images: unknown format `yaml` (usage: kal images [-q] [--format json])'
}

@test "images lists every name, sorted, with size = sum of EROFS files" {
	load_fixture shared
	load_fixture busybox
	run_kal images
	assert_line --index 1 --regexp '^busybox +latest +[0-9a-f]{12} +1 +[0-9.]+ MB$'
	assert_line --index 2 --regexp '^shared +a +[0-9a-f]{12} +2 +[0-9.]+ MB$'
	assert_line --index 3 --regexp '^shared +b +[0-9a-f]{12} +2 +[0-9.]+ MB$'
	run_kal images --format json
	local sum
	sum=$(KAL_HOME=$KAL_HOME "$KAL" inspect shared:a | jq '[.layers[].erofs.size] | add')
	assert_equal "$(jq -r '.[] | select(.name == "docker.io/library/shared:a") | .size' <<<"$output")" "$sum"
}

@test "inspect resolves short, canonical, digest and digest-prefix forms" {
	load_fixture busybox
	local digest
	digest=$(fixture_digest busybox)
	local form
	for form in busybox busybox:latest docker.io/library/busybox:latest "$digest" "${digest#sha256:}" "${digest:7:4}"; do
		run_kal inspect "$form"
		assert_equal "$(jq -r .name <<<"$output")" docker.io/library/busybox:latest
	done
	run_kal 125 inspect "${digest:7:3}"
	assert_equal "$stderr" "kal: image \`${digest:7:3}\` not found"
}

@test "inspect JSON carries config and per-layer EROFS details" {
	load_fixture busybox
	run_kal inspect busybox
	assert_equal "$(jq -r '.mediaType' <<<"$output")" application/vnd.oci.image.manifest.v1+json
	assert_equal "$(jq -r '.config.os' <<<"$output")" linux
	assert_equal "$(jq -r '.layers[0] | keys | join(",")' <<<"$output")" diffId,digest,erofs,mediaType,size
	assert_equal "$(jq -r '.layers[0].erofs.present' <<<"$output")" true
	run_kal inspect busybox busybox
	assert_equal "$(jq -r 'length' <<<"$output")" 2
}

@test "rmi removes the name only; prune then frees unreferenced objects" {
	load_fixture shared
	run_kal rmi shared:a
	assert_output "untagged: docker.io/library/shared:a"
	run_kal images -q
	assert_output docker.io/library/shared:b
	# shared:b still works after prune: its layers stay, a's own layer and blobs go
	run_kal prune
	assert_line --regexp '^deleted: layers/sha256/[0-9a-f]{64}\.erofs \([0-9.]+ MB\)$'
	assert_line --regexp '^freed [0-9.]+ MB$'
	assert_equal "$(find "$KAL_HOME/layers/sha256" -name '*.erofs' | wc -l)" 2
	run_kal cache verify
	assert_output "cache ok"
	run_kal inspect shared:b
	[ -f "$(jq -r '.layers[1].erofs.path' <<<"$output")" ]
	run_kal rmi shared:b
	run_kal prune -q
	assert_output --regexp '^freed '
	assert_equal "$(find "$KAL_HOME/layers/sha256" "$KAL_HOME/blobs/sha256" -type f | wc -l)" 0
}

@test "error: rmi of a missing image" {
	run_kal 125 rmi nope
	assert_equal "$stderr" 'kal: image `nope` not found'
}

@test "prune on an empty cache frees nothing" {
	run_kal prune
	assert_output "freed 0 B"
}
