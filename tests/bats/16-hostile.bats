#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-or-later
# Hostile images (reliability.md C3, C4, and docker-save names): a real registry on
# loopback serving hand-made manifests, regproxy lying about Content-Type, and
# docker-save tarballs whose manifest.json points outside the tarball. Each case ends in
# one exact error line, before anything is downloaded or published where it can be.

load helpers

setup_file() {
	registry_start
	fixture_push busybox >/dev/null
	fixture_push multiarch >/dev/null
	export REG=$KAL_TEST_REGISTRY
}

teardown_file() {
	registry_stop
}

teardown() {
	[ -z "${PROXY_PID:-}" ] || kill "$PROXY_PID" 2>/dev/null || true
}

OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json
OCI_INDEX=application/vnd.oci.image.index.v1+json
DOCKER_MANIFEST=application/vnd.docker.distribution.manifest.v2+json

# busybox_manifest: path of the busybox fixture's manifest
busybox_manifest() {
	fixture_blob busybox "$(fixture_digest busybox)"
}

# push_manifest REPO:TAG FILE MEDIATYPE: PUT a hand-made manifest into the registry
push_manifest() {
	curl --noproxy '*' -sSf -o /dev/null -X PUT -H "Content-Type: $3" --data-binary "@$2" \
		"http://$REG/v2/${1%%:*}/manifests/${1#*:}"
}

# push_blob REPO FILE: upload FILE as a blob, print its digest
push_blob() {
	local hex loc
	hex=$(sha256sum "$2" | cut -d' ' -f1)
	loc=$(curl --noproxy '*' -sS -o /dev/null -D - -X POST "http://$REG/v2/$1/blobs/uploads/" |
		tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
	case $loc in /*) loc=http://$REG$loc ;; esac
	curl --noproxy '*' -sSf -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' \
		--data-binary "@$2" "$loc&digest=sha256:$hex"
	echo "sha256:$hex"
}

# regproxy_start ARGS...: the hostile proxy in front of the registry; sets PROXY
regproxy_start() {
	coproc PROXYPROC { exec python3 "$BATS_TEST_DIRNAME/../fixtures/regproxy.py" --upstream "http://$REG" "$@" 3>&-; }
	read -r port <&"${PROXYPROC[0]}"
	PROXY=127.0.0.1:$port
	PROXY_PID=$PROXYPROC_PID
}

# --- registry: limits and counts -------------------------------------------------------

@test "hostile: a config declared over the 20 MiB cap is refused before any blob request" {
	jq -c '.config.size = 20971521' "$(busybox_manifest)" >"$BATS_TEST_TMPDIR/m.json"
	push_manifest busybox:bigcfg "$BATS_TEST_TMPDIR/m.json" "$OCI_MANIFEST"
	registry_log_mark
	run_kal 125 pull "$REG/busybox:bigcfg"
	assert_equal "$stderr" "kal: pull \`$REG/busybox:bigcfg\`: manifest: config size 20971521 is over the limit of 20971520 bytes"
	assert_equal "$(registry_requests "GET /v2/busybox/blobs/")" 0
}

@test "hostile: a config blob longer than its descriptor is cut off and refused" {
	local cfg
	cfg=$(jq -r .config.digest "$(busybox_manifest)")
	regproxy_start --long-blob "$cfg"
	run_kal 125 pull "$PROXY/busybox"
	assert_equal "$stderr" "kal: pull \`$PROXY/busybox\`: config: blob larger than its descriptor size (Content-Length $((378 + 1024)), want 378 bytes)"
	# the manifest is stored only after its config: nothing at all
	assert_equal "$(find "$KAL_HOME" -type f -path '*blobs*' | wc -l)" 0
}

@test "hostile: a tampered config blob is refused and not stored" {
	local cfg
	cfg=$(jq -r .config.digest "$(busybox_manifest)")
	regproxy_start --tamper-blob "$cfg"
	run_kal 125 pull "$PROXY/busybox"
	assert_regex "$stderr" "^kal: pull \`$PROXY/busybox\`: config: digest mismatch \\(want $cfg, got sha256:[0-9a-f]{64}\\)\$"
	[ ! -e "$KAL_HOME/blobs/sha256/${cfg#sha256:}" ]
}

@test "hostile: a manifest with 300 layers is refused before any blob request" {
	jq -c '.layers = [range(300) as $i | .layers[0]]' "$(busybox_manifest)" >"$BATS_TEST_TMPDIR/m.json"
	push_manifest busybox:many "$BATS_TEST_TMPDIR/m.json" "$OCI_MANIFEST"
	registry_log_mark
	run_kal 125 pull "$REG/busybox:many"
	assert_equal "$stderr" "kal: pull \`$REG/busybox:many\`: manifest: 300 layers, more than the limit of 256"
	assert_equal "$(registry_requests "GET /v2/busybox/blobs/")" 0
}

@test "hostile: more layers than diff_ids is refused before any layer is downloaded" {
	jq -c '.layers = [.layers[0], .layers[0]]' "$(busybox_manifest)" >"$BATS_TEST_TMPDIR/m.json"
	push_manifest busybox:twolayers "$BATS_TEST_TMPDIR/m.json" "$OCI_MANIFEST"
	registry_log_mark
	run_kal 125 pull "$REG/busybox:twolayers"
	assert_equal "$stderr" "kal: pull \`$REG/busybox:twolayers\`: config lists 1 diff_id but the manifest has 2 layers"
	assert_equal "$(registry_requests "GET /v2/busybox/blobs/")" 1 # the config
	assert_equal "$(find "$KAL_HOME/layers" -name '*.erofs' 2>/dev/null | wc -l)" 0
	assert_equal "$(find "$KAL_HOME/images" -type f 2>/dev/null | wc -l)" 0
}

@test "hostile: fewer layers than diff_ids is refused too" {
	local m cfg newcfg d
	m=$(busybox_manifest)
	cfg=$(fixture_blob busybox "$(jq -r .config.digest "$m")")
	newcfg=$BATS_TEST_TMPDIR/cfg.json
	jq -c '.rootfs.diff_ids += .rootfs.diff_ids' "$cfg" >"$newcfg"
	d=$(push_blob busybox "$newcfg")
	jq -c ".config.digest = \"$d\" | .config.size = $(stat -c %s "$newcfg")" "$m" >"$BATS_TEST_TMPDIR/m.json"
	push_manifest busybox:twodiffs "$BATS_TEST_TMPDIR/m.json" "$OCI_MANIFEST"
	run_kal 125 pull "$REG/busybox:twodiffs"
	assert_equal "$stderr" "kal: pull \`$REG/busybox:twodiffs\`: config lists 2 diff_ids but the manifest has 1 layer"
}

@test "hostile: the same layer twice (two equal diff_ids) pulls, converted and stored once" {
	local m cfg newcfg d
	m=$(busybox_manifest)
	cfg=$(fixture_blob busybox "$(jq -r .config.digest "$m")")
	newcfg=$BATS_TEST_TMPDIR/cfg.json
	jq -c '.rootfs.diff_ids += .rootfs.diff_ids' "$cfg" >"$newcfg"
	d=$(push_blob busybox "$newcfg")
	jq -c ".config.digest = \"$d\" | .config.size = $(stat -c %s "$newcfg") | .layers += .layers" "$m" >"$BATS_TEST_TMPDIR/m.json"
	push_manifest busybox:twice "$BATS_TEST_TMPDIR/m.json" "$OCI_MANIFEST"
	run_kal pull "$REG/busybox:twice"
	assert_output --regexp ": pulled sha256:[0-9a-f]{64} \(2 layers, "
	assert_equal "$(find "$KAL_HOME/layers" -name '*.erofs' | wc -l)" 1
	run_kal inspect "$REG/busybox:twice"
	assert_equal "$(jq -r '.layers[0].erofs.path == .layers[1].erofs.path' <<<"$output")" true
}

# --- registry: media types (C4, CVE-2021-41190) ---------------------------------------

@test "hostile: a manifest served with an index Content-Type is refused" {
	regproxy_start --wrong-content-type
	run_kal 125 pull "$PROXY/busybox"
	assert_equal "$stderr" "kal: pull \`$PROXY/busybox\`: manifest: media type mismatch: Content-Type \`$OCI_INDEX\` but document says \`$OCI_MANIFEST\`"
	assert_equal "$(find "$KAL_HOME/images" -type f 2>/dev/null | wc -l)" 0
}

@test "hostile: an index served with a manifest Content-Type is refused" {
	regproxy_start --wrong-content-type
	run_kal 125 pull "$PROXY/multiarch"
	assert_equal "$stderr" "kal: pull \`$PROXY/multiarch\`: manifest: media type mismatch: Content-Type \`$DOCKER_MANIFEST\` but document says \`$OCI_INDEX\`"
}

@test "hostile: an index entry that is another index is never followed (no nesting)" {
	local inner size
	inner=$(fixture_digest multiarch)
	size=$(stat -c %s "$(fixture_manifest multiarch)")
	jq -nc --arg d "$inner" --argjson s "$size" --arg mt "$OCI_INDEX" \
		'{schemaVersion: 2, mediaType: $mt, manifests: [{mediaType: $mt, digest: $d, size: $s,
		  platform: {os: "linux", architecture: "amd64"}}]}' >"$BATS_TEST_TMPDIR/i.json"
	push_manifest multiarch:nested "$BATS_TEST_TMPDIR/i.json" "$OCI_INDEX"
	registry_log_mark
	run_kal 125 pull "$REG/multiarch:nested"
	# index entries that are indexes are skipped when picking a platform
	assert_equal "$stderr" "kal: pull \`$REG/multiarch:nested\`: no manifest for platform linux/amd64 in index (available: none)"
	assert_equal "$(registry_requests "GET /v2/multiarch/")" 1
}

# --- kal load: docker-save tarballs whose names leave the tarball ----------------------

# save_tree DIR: unpack the docker-save fixture into DIR
save_tree() {
	mkdir -p "$1"
	tar -C "$1" -xf "$(fixture_build docker-save)"
}

@test "hostile load: a Layers path with .. is refused, even when the tarball has that member" {
	local t=$BATS_TEST_TMPDIR/save layer
	save_tree "$t"
	layer=$(jq -r '.[0].Layers[0]' "$t/manifest.json")
	cp "$t/$layer" "$BATS_TEST_TMPDIR/layer.tar"
	jq -c '.[0].Layers[0] = "../layer.tar"' "$t/manifest.json" >"$t/m" && mv "$t/m" "$t/manifest.json"
	# a member literally named ../layer.tar: tar(1) would strip the .., python keeps it
	python3 - "$t" "$BATS_TEST_TMPDIR/bad.tar" "$BATS_TEST_TMPDIR/layer.tar" <<-'PY'
		import os, sys, tarfile
		src, out, layer = sys.argv[1:]
		with tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as tf:
		    for name in sorted(os.listdir(src)):
		        tf.add(os.path.join(src, name), arcname=name)
		    tf.add(layer, arcname="../layer.tar")
	PY
	tar -tf "$BATS_TEST_TMPDIR/bad.tar" | grep -qx '../layer.tar'
	run_kal 125 load "$BATS_TEST_TMPDIR/bad.tar"
	assert_equal "$stderr" "kal: load \`$BATS_TEST_TMPDIR/bad.tar\`: manifest.json: image 1: layer 1 \`../layer.tar\` is not a path inside the tarball"
	assert_equal "$(find "$KAL_HOME" -name '*.erofs' 2>/dev/null | wc -l)" 0
}

@test "hostile load: an absolute Config path is refused and the host file never read" {
	local t=$BATS_TEST_TMPDIR/save cfg
	save_tree "$t"
	cfg=$(jq -r '.[0].Config' "$t/manifest.json")
	cp "$t/$cfg" "$BATS_TEST_TMPDIR/outside.json"
	jq -c --arg p "$BATS_TEST_TMPDIR/outside.json" '.[0].Config = $p' "$t/manifest.json" >"$t/m" &&
		mv "$t/m" "$t/manifest.json"
	tar -C "$t" -cf "$BATS_TEST_TMPDIR/bad.tar" .
	run_kal 125 load "$BATS_TEST_TMPDIR/bad.tar"
	assert_equal "$stderr" "kal: load \`$BATS_TEST_TMPDIR/bad.tar\`: manifest.json: image 1: Config \`$BATS_TEST_TMPDIR/outside.json\` is not a path inside the tarball"
}

@test "hostile load: a Config path that climbs out through a subdirectory is refused" {
	local t=$BATS_TEST_TMPDIR/save
	save_tree "$t"
	jq -c '.[0].Config = "blobs/../../etc/passwd"' "$t/manifest.json" >"$t/m" && mv "$t/m" "$t/manifest.json"
	tar -C "$t" -cf "$BATS_TEST_TMPDIR/bad.tar" .
	run_kal 125 load "$BATS_TEST_TMPDIR/bad.tar"
	assert_equal "$stderr" "kal: load \`$BATS_TEST_TMPDIR/bad.tar\`: manifest.json: image 1: Config \`blobs/../../etc/passwd\` is not a path inside the tarball"
}

@test "hostile load: a Config that is a symlink member to a host file is not followed" {
	local t=$BATS_TEST_TMPDIR/save cfg
	save_tree "$t"
	cfg=$(jq -r '.[0].Config' "$t/manifest.json")
	cp "$t/$cfg" "$BATS_TEST_TMPDIR/outside.json"
	rm "$t/$cfg"
	ln -s "$BATS_TEST_TMPDIR/outside.json" "$t/$cfg"
	tar -C "$t" -cf "$BATS_TEST_TMPDIR/bad.tar" .
	run_kal 125 load "$BATS_TEST_TMPDIR/bad.tar"
	assert_equal "$stderr" "kal: load \`$BATS_TEST_TMPDIR/bad.tar\`: config \`$cfg\` is missing from the tarball"
}

@test "hostile load: traversal member names the manifest does not use are ignored, nothing written outside" {
	local t=$BATS_TEST_TMPDIR/save
	save_tree "$t"
	mkdir "$BATS_TEST_TMPDIR/deep"
	python3 - "$t" "$BATS_TEST_TMPDIR/deep/evil.tar" <<-'PY'
		import io, os, sys, tarfile
		src, out = sys.argv[1:]
		with tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as tf:
		    for name in ("../escaped", "/abs-escaped"):
		        data = b"pwned\n"
		        ti = tarfile.TarInfo(name)
		        ti.size = len(data)
		        tf.addfile(ti, io.BytesIO(data))
		    ti = tarfile.TarInfo("../link-escaped")
		    ti.type = tarfile.SYMTYPE
		    ti.linkname = "/etc/passwd"
		    tf.addfile(ti)
		    for name in sorted(os.listdir(src)):
		        tf.add(os.path.join(src, name), arcname=name)
	PY
	cd "$BATS_TEST_TMPDIR/deep"
	run_kal load "$BATS_TEST_TMPDIR/deep/evil.tar"
	assert_output --regexp '^docker.io/library/busybox:latest: loaded sha256:[0-9a-f]{64} '
	[ ! -e "$BATS_TEST_TMPDIR/escaped" ]
	[ ! -e /abs-escaped ]
	[ ! -L "$BATS_TEST_TMPDIR/link-escaped" ]
}

# --- kal load: OCI layouts with blobs that are not files --------------------------------

# layout_copy NAME: a writable copy of the busybox layout in $BATS_TEST_TMPDIR/NAME; sets M
# (its manifest file)
layout_copy() {
	cp -r "$(fixture_build busybox)" "$BATS_TEST_TMPDIR/$1"
	chmod -R u+w "$BATS_TEST_TMPDIR/$1"
	M=$BATS_TEST_TMPDIR/$1/blobs/sha256/$(fixture_digest busybox | cut -d: -f2)
}

@test "hostile load: a layout layer blob symlinked to /dev/zero is refused, not read forever" {
	local layer f
	layout_copy lz
	layer=$(jq -r '.layers[0].digest' "$M")
	f=$BATS_TEST_TMPDIR/lz/blobs/sha256/${layer#sha256:}
	rm "$f"
	ln -s /dev/zero "$f"
	KAL_TEST_TIMEOUT=20 run_kal 125 load "$BATS_TEST_TMPDIR/lz"
	assert_equal "$stderr" "kal: load \`$BATS_TEST_TMPDIR/lz\`: \`docker.io/library/lz:latest\`: layer 1: \`$f\` is not a regular file"
}

@test "hostile load: a layout config blob that is a FIFO is refused, not waited on" {
	local cfg f
	layout_copy lf
	cfg=$(jq -r '.config.digest' "$M")
	f=$BATS_TEST_TMPDIR/lf/blobs/sha256/${cfg#sha256:}
	rm "$f"
	mkfifo "$f"
	KAL_TEST_TIMEOUT=20 run_kal 125 load "$BATS_TEST_TMPDIR/lf"
	assert_equal "$stderr" "kal: load \`$BATS_TEST_TMPDIR/lf\`: \`docker.io/library/lf:latest\`: config: blob $cfg: \`$f\` is not a regular file"
}

@test "hostile load: a layout layer blob larger than its descriptor is refused before hashing" {
	local layer f size
	layout_copy lb
	layer=$(jq -r '.layers[0].digest' "$M")
	f=$BATS_TEST_TMPDIR/lb/blobs/sha256/${layer#sha256:}
	size=$(stat -c %s "$f")
	truncate -s 10G "$f"
	KAL_TEST_TIMEOUT=20 run_kal 125 load "$BATS_TEST_TMPDIR/lb"
	assert_equal "$stderr" "kal: load \`$BATS_TEST_TMPDIR/lb\`: \`docker.io/library/lb:latest\`: layer 1: size mismatch (want $size, got 10737418240)"
}

@test "hostile load: 1024 images x 256 layer names and 20000 tar entries load in seconds, not minutes" {
	# each tar entry used to be compared with every Layers name: 5 * 10^9 comparisons here
	python3 - "$BATS_TEST_TMPDIR/quad.tar" <<-'PY'
		import io, json, sys, tarfile
		def add(tf, name, data):
		    ti = tarfile.TarInfo(name)
		    ti.size = len(data)
		    tf.addfile(ti, io.BytesIO(data))
		man = [{"Config": "c.json", "RepoTags": ["x:%d" % i],
		        "Layers": ["L%04d/%03d" % (i, k) for k in range(256)]} for i in range(1024)]
		cfg = {"os": "linux", "architecture": "amd64",
		       "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64] * 256}}
		with tarfile.open(sys.argv[1], "w", format=tarfile.USTAR_FORMAT) as tf:
		    add(tf, "manifest.json", json.dumps(man).encode())
		    add(tf, "c.json", json.dumps(cfg).encode())
		    for j in range(20000):
		        add(tf, "f%06d" % j, b"")
	PY
	KAL_TEST_TIMEOUT=30 run_kal 125 load "$BATS_TEST_TMPDIR/quad.tar"
	assert_equal "$stderr" "kal: load \`$BATS_TEST_TMPDIR/quad.tar\`: layer \`L0000/000\` is missing from the tarball"
}

# --- kal load under fault injection (G2, G5): the pull path's checks, for load -----------

# load_injected INJECT: kal load of the docker-save fixture under strace fault injection;
# must fail with one line, leave nothing behind, and a clean load afterwards must work.
# (LeakSanitizer cannot run under ptrace: with a SAN build set ASAN_OPTIONS=detect_leaks=0.)
load_injected() {
	command -v strace >/dev/null || skip_host_lacks strace
	local ds
	ds=$(fixture_build docker-save)
	run --separate-stderr strace -f -o /dev/null -e "inject=$1" "$KAL" load "$ds"
	echo "# $stderr" >&3
	assert_equal "$status" 125
	assert_regex "$stderr" "^kal: load \`$ds\`: $2\$"
	assert_equal "$(find "$KAL_HOME" -name '.tmp-*' | wc -l)" 0
	assert_equal "$(find "$KAL_HOME/images" -type f 2>/dev/null | wc -l)" 0
	run_kal load -q "$ds"
	run_kal cache verify
	assert_output "cache ok"
}

@test "hostile load: ENOSPC while copying a layer out of the tarball" {
	load_injected write:error=ENOSPC:when=2 '`[0-9a-f]{64}/layer.tar`: write: No space left on device'
}

@test "hostile load: fsync EIO of the converted layer is fatal" {
	load_injected fsync:error=EIO:when=1 'layer 1 \(`[0-9a-f]{64}/layer.tar`\): fsync `[^`]*/\.tmp-[0-9a-f]{64}\.erofs-[A-Za-z0-9]{6}`: Input/output error'
}
