#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-or-later
# kal pull against a real registry on loopback (Debian's docker-registry, fixtures pushed
# byte-exact): layers become 2 MiB aligned EROFS files, re-pulls cost one request,
# shared layers are stored once, and every kind of bad input ends in one exact error line.

load helpers

setup_file() {
	registry_start
	local f
	for f in busybox busybox-docker zstd plain multiarch shared features debian; do
		fixture_push "$f" >/dev/null
	done
	export REG=$KAL_TEST_REGISTRY
}

teardown_file() {
	registry_stop
}

# count_erofs: number of published layer images in the test's KAL_HOME
count_erofs() {
	find "$KAL_HOME/layers/sha256" -name '*.erofs' | wc -l
}

@test "pull busybox: one stdout line, a 2 MiB aligned EROFS file per layer" {
	local digest
	digest=$(fixture_digest busybox)
	run_kal pull "$REG/busybox"
	assert_output --regexp "^$REG/busybox:latest: pulled $digest \(1 layer, [0-9.]+ MB\)\$"
	assert_equal "$stderr" ""

	run_kal inspect "$REG/busybox"
	assert_equal "$(jq -r .name <<<"$output")" "$REG/busybox:latest"
	assert_equal "$(jq -r .digest <<<"$output")" "$digest"
	assert_equal "$(jq -r .platform <<<"$output")" "linux/amd64"
	assert_equal "$(jq -r '.layers | length' <<<"$output")" 1
	assert_equal "$(jq -r '.config.rootfs.diff_ids | length' <<<"$output")" 1
	local path size sha
	path=$(jq -r '.layers[0].erofs.path' <<<"$output")
	size=$(jq -r '.layers[0].erofs.size' <<<"$output")
	sha=$(jq -r '.layers[0].erofs.sha256' <<<"$output")
	[ -f "$path" ]
	assert_equal "$(stat -c %s "$path")" "$size"
	assert_equal "$((size % 2097152))" 0
	assert_equal "sha256:$(sha256sum "$path" | cut -d' ' -f1)" "$sha"
	assert_equal "$(stat -c %a "$path")" 444
	assert_equal "$(basename "$path")" "$(jq -r '.layers[0].diffId | sub("sha256:"; "")' <<<"$output").erofs"
	fsck.erofs "$path" >/dev/null
	# the compressed layer blob is not kept, manifests and configs are
	[ ! -e "$KAL_HOME/blobs/sha256/$(jq -r '.layers[0].digest | sub("sha256:"; "")' <<<"$output")" ]
	[ -f "$KAL_HOME/blobs/sha256/${digest#sha256:}" ]
	# nothing left behind
	assert_equal "$(find "$KAL_HOME" -name '.tmp-*' | wc -l)" 0
}

@test "progress on a terminal: per-layer lines redrawn in place, nothing with -q" {
	command -v script >/dev/null || skip_host_lacks script
	script -qec "'$KAL' pull '$REG/shared:a'" /dev/null >"$BATS_TEST_TMPDIR/tty" </dev/null
	local out
	out=$(tr -d '\r' <"$BATS_TEST_TMPDIR/tty")
	# one line per layer (12 hex digits of its digest, a state, bytes) and a total line
	assert_regex "$out" $'\e\\[2K[0-9a-f]{12}  done +[0-9.]+ [kM]?B / [0-9.]+ [kM]?B'
	assert_regex "$out" $'\e\\[2Ktotal +[0-9.]+ [kM]?B / [0-9.]+ [kM]?B +[0-9.]+ [kM]?B/s'
	assert_regex "$out" $'\e\\[3A' # cursor back up over 2 layers + total: redrawn in place
	assert_regex "$out" "$REG/shared:a: pulled sha256:[0-9a-f]{64} \\(2 layers, "
	script -qec "'$KAL' pull -q '$REG/shared:b'" /dev/null >"$BATS_TEST_TMPDIR/tty" </dev/null
	assert_equal "$(wc -c <"$BATS_TEST_TMPDIR/tty")" 0
}

@test "images lists the pulled image; -q prints canonical names" {
	local digest
	digest=$(fixture_digest busybox)
	run_kal pull -q "$REG/busybox"
	assert_output ""
	run_kal images
	assert_line --index 0 --regexp '^REPOSITORY +TAG +DIGEST +LAYERS +SIZE$'
	assert_line --index 1 --regexp "^$REG/busybox +latest +${digest:7:12} +1 +[0-9.]+ MB\$"
	run_kal images -q
	assert_output "$REG/busybox:latest"
	run_kal images --format json
	assert_equal "$(jq -r '.[0].digest' <<<"$output")" "$digest"
	assert_equal "$(jq -r '.[0].layers' <<<"$output")" 1
}

@test "a re-pull of an unchanged image is one manifest request and nothing else" {
	run_kal pull "$REG/busybox"
	local before
	before=$(find "$KAL_HOME/layers" -name '*.erofs' -printf '%T@ %p\n')
	registry_log_mark
	run_kal pull "$REG/busybox"
	assert_output --regexp "^$REG/busybox:latest: up to date sha256:[0-9a-f]{64} \(1 layer, "
	assert_equal "$(registry_requests "GET /v2/busybox/manifests/")" 1
	assert_equal "$(registry_requests "GET /v2/busybox/blobs/")" 0
	assert_equal "$(registry_requests "HEAD ")" 0
	assert_equal "$(find "$KAL_HOME/layers" -name '*.erofs' -printf '%T@ %p\n')" "$before"
}

@test "a re-pull through an index is one request too" {
	run_kal pull "$REG/multiarch"
	registry_log_mark
	run_kal pull "$REG/multiarch"
	assert_output --regexp ": up to date "
	assert_equal "$(registry_requests "GET /v2/multiarch/")" 1
}

@test "pull by digest: listed as <none>, a cached digest needs no request at all" {
	local digest
	digest=$(fixture_digest busybox)
	run_kal pull "$REG/busybox@$digest"
	assert_output --regexp "^$REG/busybox@$digest: pulled $digest \(1 layer, "
	run_kal images
	assert_line --index 1 --regexp "^$REG/busybox +<none> +${digest:7:12} +1 +"
	registry_log_mark
	run_kal pull "$REG/busybox@$digest"
	assert_output --regexp ": up to date $digest "
	assert_equal "$(registry_requests "GET ")" 0
}

@test "--offline uses the cache and makes no request" {
	run_kal 125 pull --offline "$REG/busybox"
	assert_equal "$stderr" "kal: pull \`$REG/busybox\`: \`$REG/busybox:latest\` is not in the cache (--offline)"
	run_kal pull "$REG/busybox"
	registry_log_mark
	run_kal pull --offline "$REG/busybox"
	assert_output --regexp "^$REG/busybox:latest: up to date "
	assert_equal "$(registry_requests "GET ")" 0
}

@test "two images sharing a layer store it once" {
	run_kal pull "$REG/shared:a"
	assert_output --regexp ": pulled .* \(2 layers, "
	assert_equal "$(count_erofs)" 2
	registry_log_mark
	run_kal pull "$REG/shared:b"
	assert_equal "$(count_erofs)" 3
	# only the layer b does not share was fetched
	assert_equal "$(registry_requests "GET /v2/shared/blobs/")" 2 # config + 1 layer
	local a b
	a=$(KAL_HOME=$KAL_HOME "$KAL" inspect "$REG/shared:a" | jq -r '.layers[0].erofs.path')
	b=$(KAL_HOME=$KAL_HOME "$KAL" inspect "$REG/shared:b" | jq -r '.layers[0].erofs.path')
	assert_equal "$a" "$b"
}

@test "multi-arch index: linux/amd64 by default, --platform picks another" {
	run_kal pull "$REG/multiarch"
	run_kal inspect "$REG/multiarch"
	assert_equal "$(jq -r .platform <<<"$output")" "linux/amd64"
	[ "$(jq -r .index <<<"$output")" = "$(fixture_digest multiarch)" ]
	run_kal pull --platform linux/arm64/v8 "$REG/multiarch"
	assert_output --regexp ": pulled "
	run_kal inspect "$REG/multiarch"
	assert_equal "$(jq -r .platform <<<"$output")" "linux/arm64/v8"
}

@test "zstd, plain-tar and docker schema2 images pull" {
	run_kal pull "$REG/zstd"
	run_kal inspect "$REG/zstd"
	assert_equal "$(jq -r '.layers[0].mediaType' <<<"$output")" "application/vnd.oci.image.layer.v1.tar+zstd"
	run_kal pull "$REG/plain"
	run_kal inspect "$REG/plain"
	assert_equal "$(jq -r '.layers[0].mediaType' <<<"$output")" "application/vnd.oci.image.layer.v1.tar"
	run_kal pull "$REG/busybox-docker"
	run_kal inspect "$REG/busybox-docker"
	assert_equal "$(jq -r .mediaType <<<"$output")" "application/vnd.docker.distribution.manifest.v2+json"
	# the same busybox layer, three compressions: one EROFS file per distinct diff_id
	assert_equal "$(count_erofs)" "$(find "$KAL_HOME/layers/sha256" -name '*.json' | wc -l)"
}

@test "multi-layer image: layers bottom first, each with its own EROFS file" {
	run_kal pull "$REG/features"
	assert_output --regexp ": pulled .* \(3 layers, "
	run_kal inspect "$REG/features"
	assert_equal "$(jq -r '[.layers[].diffId] == .config.rootfs.diff_ids' <<<"$output")" true
	assert_equal "$(count_erofs)" 3
}

@test "pull the Debian minbase image: one big layer, 2 MiB aligned, fsck-clean" {
	run_kal pull "$REG/debian"
	assert_output --regexp "^$REG/debian:latest: pulled sha256:[0-9a-f]{64} \(1 layer, [0-9]+ MB\)\$"
	run_kal inspect "$REG/debian"
	local path
	path=$(jq -r '.layers[0].erofs.path' <<<"$output")
	assert_equal "$(($(stat -c %s "$path") % 2097152))" 0
	assert_equal "$(jq -r '.config.config.Cmd[0]' <<<"$output")" bash
	fsck.erofs "$path" >/dev/null
	run_kal cache verify
	assert_output "cache ok"
}

# --- errors: one line each, exact text ------------------------------------------------

@test "error: missing tag" {
	run_kal 125 pull "$REG/busybox:nope"
	assert_equal "$stderr" "kal: pull \`$REG/busybox:nope\`: manifest unknown: \`busybox:nope\`"
	assert_equal "$(find "$KAL_HOME/images" -type f | wc -l)" 0
}

@test "error: unknown platform in an index" {
	run_kal 125 pull --platform linux/s390x "$REG/multiarch"
	assert_equal "$stderr" "kal: pull \`$REG/multiarch\`: no manifest for platform linux/s390x in index (available: linux/amd64, linux/arm64/v8)"
}

@test "error: registry down" {
	local port
	port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	run_kal 125 pull "127.0.0.1:$port/busybox"
	assert_equal "$stderr" "kal: pull \`127.0.0.1:$port/busybox\`: registry \`127.0.0.1:$port\`: connect: Connection refused"
}

@test "error: bad digest string in the reference, before any request" {
	registry_log_mark
	run_kal 125 pull "$REG/busybox@sha256:ABCD"
	assert_equal "$stderr" "kal: pull \`$REG/busybox@sha256:ABCD\`: invalid reference \`$REG/busybox@sha256:ABCD\`: invalid digest \`sha256:ABCD\`: want 64 lowercase hex characters"
	assert_equal "$(registry_requests "GET ")" 0
}

# regproxy_start ARGS...: the registry helper's hostile proxy in front of the registry;
# sets PROXY (host:port) and PROXY_LOG
regproxy_start() {
	PROXY_LOG=$BATS_TEST_TMPDIR/proxy.log
	coproc PROXYPROC { exec python3 "$BATS_TEST_DIRNAME/../fixtures/regproxy.py" --upstream "http://$REG" --log "$PROXY_LOG" "$@" 3>&-; }
	read -r port <&"${PROXYPROC[0]}"
	PROXY=127.0.0.1:$port
	PROXY_PID=$PROXYPROC_PID
}

teardown() {
	[ -z "${PROXY_PID:-}" ] || kill "$PROXY_PID" 2>/dev/null || true
}

# layer_digest FIXTURE: the first layer blob of a single-image fixture
layer_digest() {
	jq -r '.layers[0].digest' "$(fixture_blob "$1" "$(fixture_digest "$1")")"
}

@test "error: tampered layer blob is refused, nothing published" {
	local layer
	layer=$(layer_digest busybox)
	regproxy_start --tamper-blob "$layer"
	run_kal 125 pull "$PROXY/busybox"
	assert_equal "$stderr" "$(printf 'kal: pull `%s/busybox`: layer 1: digest mismatch (want %s, got ' "$PROXY" "$layer")$(sed -n 's/.*got \(sha256:[0-9a-f]*\))$/\1/p' <<<"$stderr"))"
	assert_equal "$(count_erofs)" 0
	assert_equal "$(find "$KAL_HOME/images" -type f | wc -l)" 0
	assert_equal "$(find "$KAL_HOME" -name '.tmp-*' | wc -l)" 0
}

@test "error: layer blob longer than its descriptor" {
	local layer size
	layer=$(layer_digest busybox)
	size=$(stat -c %s "$(fixture_blob busybox "$layer")")
	regproxy_start --long-blob "$layer"
	run_kal 125 pull "$PROXY/busybox"
	assert_equal "$stderr" "kal: pull \`$PROXY/busybox\`: layer 1: blob larger than its descriptor size (Content-Length $((size + 1024)), want $size bytes)"
	assert_equal "$(count_erofs)" 0
}

# push_manifest REPO:TAG FILE MEDIATYPE: PUT a hand-made manifest into the registry
push_manifest() {
	curl --noproxy '*' -sSf -o /dev/null -X PUT -H "Content-Type: $3" --data-binary "@$2" \
		"http://$REG/v2/${1%%:*}/manifests/${1#*:}"
}

@test "error: unknown layer media type, before any layer is downloaded" {
	local m
	m=$(fixture_blob busybox "$(fixture_digest busybox)")
	jq -c '.layers[0].mediaType = "application/vnd.example.unknown"' "$m" >"$BATS_TEST_TMPDIR/m.json"
	push_manifest busybox:weird "$BATS_TEST_TMPDIR/m.json" application/vnd.oci.image.manifest.v1+json
	registry_log_mark
	run_kal 125 pull "$REG/busybox:weird"
	assert_equal "$stderr" "kal: pull \`$REG/busybox:weird\`: manifest: layers[0]: unsupported layer media type \`application/vnd.example.unknown\`"
	assert_equal "$(registry_requests "GET /v2/busybox/blobs/")" 0
}

@test "error: config whose diff_id does not match the layer" {
	local m cfg newcfg hex size
	m=$(fixture_blob busybox "$(fixture_digest busybox)")
	cfg=$(fixture_blob busybox "$(jq -r .config.digest "$m")")
	newcfg=$BATS_TEST_TMPDIR/cfg.json
	jq -c '.rootfs.diff_ids[0] = "sha256:'"$(printf 0%.0s {1..64})"'"' "$cfg" >"$newcfg"
	hex=$(sha256sum "$newcfg" | cut -d' ' -f1)
	size=$(stat -c %s "$newcfg")
	# upload the config blob, then a manifest pointing at it
	local loc
	loc=$(curl --noproxy '*' -sS -o /dev/null -D - -X POST "http://$REG/v2/busybox/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
	case $loc in /*) loc=http://$REG$loc ;; esac
	curl --noproxy '*' -sSf -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$newcfg" "$loc&digest=sha256:$hex"
	jq -c ".config.digest = \"sha256:$hex\" | .config.size = $size" "$m" >"$BATS_TEST_TMPDIR/m.json"
	push_manifest busybox:baddiff "$BATS_TEST_TMPDIR/m.json" application/vnd.oci.image.manifest.v1+json
	run_kal 125 pull "$REG/busybox:baddiff"
	local real
	real=$(jq -r '.rootfs.diff_ids[0]' "$cfg")
	assert_equal "$stderr" "kal: pull \`$REG/busybox:baddiff\`: layer 1: diff_id mismatch (want sha256:$(printf 0%.0s {1..64}), got $real)"
	assert_equal "$(count_erofs)" 0
	assert_equal "$(find "$KAL_HOME" -name '.tmp-*' | wc -l)" 0
}
