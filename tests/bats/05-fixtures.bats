#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-or-later
# The test infrastructure itself: the fixture images are valid, deterministic OCI images,
# and the loopback registry serves what fixture_push put in, byte for byte, with a log
# precise enough to count requests and a blob store a test can corrupt.

load helpers

setup_file() {
	registry_start
	fixture_push busybox >/dev/null
}

teardown_file() {
	registry_stop
}

# blob_get REPO DIGEST OUT: download a blob from the test registry
blob_get() {
	curl --noproxy '*' -sSf -o "$3" "http://$KAL_TEST_REGISTRY/v2/$1/blobs/$2"
}

# manifest_get REPO REF OUT: download a manifest, accepting every kind fixtures use
manifest_get() {
	curl --noproxy '*' -sSf -o "$3" \
		-H 'Accept: application/vnd.oci.image.manifest.v1+json' \
		-H 'Accept: application/vnd.oci.image.index.v1+json' \
		-H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
		"http://$KAL_TEST_REGISTRY/v2/$1/manifests/$2"
}

sha() {
	local s
	s=$(sha256sum "$1")
	echo "sha256:${s%% *}"
}

# config_of LAYOUT MANIFEST_DIGEST: path of the image config blob
config_of() {
	echo "$1/blobs/sha256/$(jq -r .config.digest "$1/blobs/sha256/${2#sha256:}" | cut -d: -f2)"
}

@test "the registry answers /v2/ on loopback" {
	run curl --noproxy '*' -sS -D - "http://$KAL_TEST_REGISTRY/v2/"
	assert_success
	assert_line --partial 'HTTP/1.1 200 OK'
	assert_line --partial 'Docker-Distribution-Api-Version: registry/2.0'
	[[ $KAL_TEST_REGISTRY == 127.0.0.1:* ]]
	kill -0 "$KAL_TEST_REGISTRY_PID"
}

@test "a pushed fixture's manifest and blobs come back with verified digests" {
	local layout digest d
	layout=$(fixture_build busybox)
	digest=$(fixture_digest busybox latest)
	manifest_get busybox latest "$BATS_TEST_TMPDIR/m"
	assert_equal "$(sha "$BATS_TEST_TMPDIR/m")" "$digest"
	cmp "$BATS_TEST_TMPDIR/m" "$(fixture_blob busybox "$digest")"
	for d in $(jq -r '.config.digest, .layers[].digest' "$BATS_TEST_TMPDIR/m"); do
		blob_get busybox "$d" "$BATS_TEST_TMPDIR/b"
		assert_equal "$(sha "$BATS_TEST_TMPDIR/b")" "$d"
	done
	# by digest too
	manifest_get busybox "$digest" "$BATS_TEST_TMPDIR/m2"
	cmp "$BATS_TEST_TMPDIR/m" "$BATS_TEST_TMPDIR/m2"
}

@test "every fixture pushes and round-trips byte for byte" {
	local name digest cmt child out
	for name in busybox-docker zstd plain multiarch features shared; do
		out=$(fixture_push "$name")
		[ -n "$out" ]
		for digest in $out; do
			manifest_get "$name" "$digest" "$BATS_TEST_TMPDIR/m"
			cmp "$BATS_TEST_TMPDIR/m" "$(fixture_blob "$name" "$digest")"
		done
	done
	# the index's platform manifests are there by digest
	digest=$(fixture_digest multiarch)
	while read -r cmt child; do
		manifest_get multiarch "$child" "$BATS_TEST_TMPDIR/m"
		assert_equal "$(sha "$BATS_TEST_TMPDIR/m")" "$child"
	done < <(jq -r '.manifests[] | "\(.mediaType) \(.digest)"' "$(fixture_blob multiarch "$digest")")
	# tags: shared has a and b, an explicit tag renames a single image
	manifest_get shared a "$BATS_TEST_TMPDIR/a"
	manifest_get shared b "$BATS_TEST_TMPDIR/b"
	fixture_push plain other/plain:v1
	manifest_get other/plain v1 "$BATS_TEST_TMPDIR/p"
	assert_equal "$(sha "$BATS_TEST_TMPDIR/p")" "$(fixture_digest plain)"
}

@test "fixture_push refuses a tag for a layout holding several images" {
	run fixture_push shared x:y
	assert_failure
	assert_output '# fixture_push: shared holds 2 images; push it without a tag'
}

@test "a blob corrupted through registry_blob_path is served corrupted" {
	local digest layer path
	digest=$(fixture_digest busybox)
	layer=$(jq -r '.layers[0].digest' "$(fixture_blob busybox "$digest")")
	path=$(registry_blob_path "$layer")
	[ -f "$path" ]
	cmp "$path" "$(fixture_blob busybox "$layer")"
	cp "$path" "$BATS_TEST_TMPDIR/saved"
	# flip one byte in the middle, size unchanged: the registry does not re-verify
	printf 'X' | dd of="$path" bs=1 seek=1000 conv=notrunc status=none
	blob_get busybox "$layer" "$BATS_TEST_TMPDIR/got"
	cp "$BATS_TEST_TMPDIR/saved" "$path"
	run cmp -s "$BATS_TEST_TMPDIR/got" "$path"
	assert_failure
	[ "$(stat -c %s "$BATS_TEST_TMPDIR/got")" = "$(stat -c %s "$path")" ]
	[ "$(sha "$BATS_TEST_TMPDIR/got")" != "$layer" ]
	# restored: served intact again
	blob_get busybox "$layer" "$BATS_TEST_TMPDIR/again"
	assert_equal "$(sha "$BATS_TEST_TMPDIR/again")" "$layer"
}

@test "a blob truncated through registry_blob_path is served short" {
	local layer path
	layer=$(jq -r '.layers[0].digest' "$(fixture_blob busybox "$(fixture_digest busybox)")")
	path=$(registry_blob_path "$layer")
	cp "$path" "$BATS_TEST_TMPDIR/saved"
	truncate -s 100 "$path"
	run curl --noproxy '*' -sS -o "$BATS_TEST_TMPDIR/got" -w '%{http_code}' \
		"http://$KAL_TEST_REGISTRY/v2/busybox/blobs/$layer"
	cp "$BATS_TEST_TMPDIR/saved" "$path"
	assert_output 200
	[ "$(stat -c %s "$BATS_TEST_TMPDIR/got")" = 100 ]
}

@test "registry_requests counts requests by method and path since the mark" {
	local digest layer
	digest=$(fixture_digest busybox)
	layer=$(jq -r '.layers[0].digest' "$(fixture_blob busybox "$digest")")
	registry_log_mark
	assert_equal "$(registry_requests 'GET /v2/busybox/manifests')" 0
	manifest_get busybox latest /dev/null
	manifest_get busybox "$digest" /dev/null
	curl --noproxy '*' -sSfI -o /dev/null -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
		"http://$KAL_TEST_REGISTRY/v2/busybox/manifests/latest"
	blob_get busybox "$layer" /dev/null
	assert_equal "$(registry_requests 'GET /v2/busybox/manifests')" 2
	assert_equal "$(registry_requests 'GET /v2/busybox/manifests/latest')" 1
	assert_equal "$(registry_requests 'HEAD /v2/busybox/manifests/')" 1
	assert_equal "$(registry_requests 'GET /v2/busybox/blobs/')" 1
	assert_equal "$(registry_requests 'GET /v2/zstd/')" 0
	# the sync requests registry_requests itself makes are never counted
	assert_equal "$(registry_requests 'GET /v2/')" 3
	registry_log_mark
	assert_equal "$(registry_requests 'GET /v2/busybox/')" 0
	grep -qF '"GET /v2/busybox/manifests/latest HTTP/1.1" 200' "$(registry_log)"
}

@test "skopeo reads the fixture layouts and the pushed images" {
	local name
	# (skopeo's oci: transport only takes OCI manifests, so busybox-docker goes by registry)
	for name in busybox zstd plain multiarch features; do
		run skopeo inspect "oci:$(fixture_build "$name"):latest"
		assert_success
		assert_equal "$(jq -r .Architecture <<<"$output")" amd64
	done
	run skopeo inspect --tls-verify=false "docker://$KAL_TEST_REGISTRY/busybox:latest"
	assert_success
	assert_equal "$(jq -r .Digest <<<"$output")" "$(fixture_digest busybox)"
	fixture_push busybox-docker >/dev/null
	run skopeo inspect --tls-verify=false "docker://$KAL_TEST_REGISTRY/busybox-docker:latest"
	assert_success
	assert_equal "$(jq -r .Digest <<<"$output")" "$(fixture_digest busybox-docker)"
	fixture_push multiarch >/dev/null
	run skopeo inspect --tls-verify=false --override-arch arm64 --override-variant v8 \
		"docker://$KAL_TEST_REGISTRY/multiarch:latest"
	assert_success
	assert_equal "$(jq -r .Architecture <<<"$output")" arm64
}

@test "busybox: one gzip layer with busybox and its applets, Cmd sh" {
	local layout m config layer
	layout=$(fixture_build busybox)
	m=$(fixture_blob busybox "$(fixture_digest busybox)")
	assert_equal "$(jq -r .mediaType "$m")" application/vnd.oci.image.manifest.v1+json
	assert_equal "$(jq -r '.layers | length' "$m")" 1
	assert_equal "$(jq -r '.layers[0].mediaType' "$m")" application/vnd.oci.image.layer.v1.tar+gzip
	config=$(config_of "$layout" "$(fixture_digest busybox)")
	assert_equal "$(jq -c .config.Cmd "$config")" '["sh"]'
	assert_equal "$(jq -r '.config.Env[0]' "$config")" \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
	layer=$(fixture_blob busybox "$(jq -r '.layers[0].digest' "$m")")
	assert_equal "sha256:$(gzip -dc "$layer" | sha256sum | cut -d' ' -f1)" \
		"$(jq -r '.rootfs.diff_ids[0]' "$config")"
	run tar -tvzf "$layer"
	assert_line --regexp '^-rwxr-xr-x 0/0 +[0-9]+ 1970-01-01 00:00 bin/busybox$'
	assert_line --regexp '^lrwxrwxrwx 0/0 +0 1970-01-01 00:00 bin/sh -> /bin/busybox$'
	assert_line --regexp ' usr/bin/env -> /bin/busybox$'
	assert_line --regexp '^drwxrwxrwt 0/0 .* tmp/$'
}

@test "busybox: the unpacked layer runs its shell (chroot)" {
	[ "$(id -u)" = 0 ] || skip_host_lacks "root (for chroot)"
	local root=$BATS_TEST_TMPDIR/root m
	m=$(fixture_manifest busybox)
	mkdir "$root"
	tar -C "$root" -xzf "$(fixture_blob busybox "$(jq -r '.layers[0].digest' "$m")")"
	run chroot "$root" /bin/sh -c 'echo hello from $(readlink /usr/bin/env); ls /usr/sbin/chroot'
	assert_success
	assert_output $'hello from /bin/busybox\n/usr/sbin/chroot'
}

@test "busybox-docker: the same layer under Docker schema2 media types" {
	local m b
	m=$(fixture_blob busybox-docker "$(fixture_digest busybox-docker)")
	b=$(fixture_blob busybox "$(fixture_digest busybox)")
	assert_equal "$(jq -r .mediaType "$m")" application/vnd.docker.distribution.manifest.v2+json
	assert_equal "$(jq -r .config.mediaType "$m")" application/vnd.docker.container.image.v1+json
	assert_equal "$(jq -r '.layers[0].mediaType' "$m")" \
		application/vnd.docker.image.rootfs.diff.tar.gzip
	assert_equal "$(jq -r '.layers[0].digest' "$m")" "$(jq -r '.layers[0].digest' "$b")"
}

@test "zstd and plain: one zstd layer and one uncompressed layer" {
	local layout m config layer
	layout=$(fixture_build zstd)
	m=$(fixture_blob zstd "$(fixture_digest zstd)")
	assert_equal "$(jq -r '.layers[0].mediaType' "$m")" application/vnd.oci.image.layer.v1.tar+zstd
	layer=$(fixture_blob zstd "$(jq -r '.layers[0].digest' "$m")")
	config=$(config_of "$layout" "$(fixture_digest zstd)")
	assert_equal "sha256:$(zstd -dc "$layer" | sha256sum | cut -d' ' -f1)" \
		"$(jq -r '.rootfs.diff_ids[0]' "$config")"
	assert_equal "$(zstd -dc "$layer" | tar -xOf - etc/kal-fixture)" zstd

	layout=$(fixture_build plain)
	m=$(fixture_blob plain "$(fixture_digest plain)")
	assert_equal "$(jq -r '.layers[0].mediaType' "$m")" application/vnd.oci.image.layer.v1.tar
	config=$(config_of "$layout" "$(fixture_digest plain)")
	# uncompressed: the layer digest is the diff_id
	assert_equal "$(jq -r '.layers[0].digest' "$m")" "$(jq -r '.rootfs.diff_ids[0]' "$config")"
	layer=$(fixture_blob plain "$(jq -r '.layers[0].digest' "$m")")
	assert_equal "$(tar -xOf "$layer" etc/kal-fixture)" plain
}

@test "multiarch: an index of linux/amd64 busybox and a distinct linux/arm64/v8 image" {
	local idx arm
	idx=$(fixture_blob multiarch "$(fixture_digest multiarch)")
	assert_equal "$(jq -r .mediaType "$idx")" application/vnd.oci.image.index.v1+json
	assert_equal "$(jq -c '[.manifests[].platform]' "$idx")" \
		'[{"architecture":"amd64","os":"linux"},{"architecture":"arm64","os":"linux","variant":"v8"}]'
	assert_equal "$(jq -r '.manifests[0].digest' "$idx")" "$(fixture_digest busybox)"
	arm=$(jq -r '.manifests[1].digest' "$idx")
	config=$(config_of "$(fixture_build multiarch)" "$arm")
	assert_equal "$(jq -r '.architecture + "/" + .variant' "$config")" arm64/v8
}

@test "shared: two images on busybox's layer blob plus one layer each" {
	local a b base
	base=$(jq -r '.layers[0].digest' "$(fixture_blob busybox "$(fixture_digest busybox)")")
	a=$(fixture_blob shared "$(fixture_digest shared a)")
	b=$(fixture_blob shared "$(fixture_digest shared b)")
	assert_equal "$(jq -r '.layers[0].digest' "$a")" "$base"
	assert_equal "$(jq -r '.layers[0].digest' "$b")" "$base"
	[ "$(jq -r '.layers[1].digest' "$a")" != "$(jq -r '.layers[1].digest' "$b")" ]
	assert_equal "$(jq -r '.layers | length' "$a")" 2
}

@test "features: three gzip layers" {
	local m
	m=$(fixture_blob features "$(fixture_digest features)")
	assert_equal "$(jq -r '[.layers[].mediaType] | unique | join(",")' "$m")" \
		application/vnd.oci.image.layer.v1.tar+gzip
	assert_equal "$(jq -r '.layers | length' "$m")" 3
}

@test "docker-save: a docker save tarball of busybox" {
	local tar diff
	tar=$(fixture_build docker-save)
	[ -f "$tar" ]
	run tar -xOf "$tar" manifest.json
	assert_success
	assert_equal "$(jq -r '.[0].RepoTags[0]' <<<"$output")" busybox:latest
	local cfg layer
	cfg=$(jq -r '.[0].Config' <<<"$output")
	layer=$(jq -r '.[0].Layers[0]' <<<"$output")
	diff=$(tar -xOf "$tar" "$cfg" | jq -r '.rootfs.diff_ids[0]')
	assert_equal "sha256:$(tar -xOf "$tar" "$layer" | sha256sum | cut -d' ' -f1)" "$diff"
	assert_equal "sha256:$(tar -xOf "$tar" "$cfg" | sha256sum | cut -d' ' -f1)" "sha256:${cfg%.json}"
}

# the cached copy was built by an earlier, separate run: a fresh build must match it
@test "fixture builds are deterministic" {
	local name fresh cached
	for name in busybox busybox-docker zstd plain multiarch features shared docker-save; do
		cached=$(fixture_build "$name")
		fresh=$("$KAL_FIXTURES_DIR/mkfixture.sh" --no-cache "$name" "$BATS_TEST_TMPDIR/$name")
		if [ -d "$fresh" ]; then
			diff -r -x .complete "$cached" "$fresh"
		else
			assert_equal "$fresh" "$BATS_TEST_TMPDIR/$name/docker-save.tar"
			cmp "$cached" "$fresh"
		fi
	done
}

@test "a failing fixture build publishes nothing in the cache" {
	KAL_CACHE=$BATS_TEST_TMPDIR/cache KAL_FIXTURE_BUSYBOX=/bin/false \
		run "$KAL_FIXTURES_DIR/mkfixture.sh" busybox
	assert_failure
	assert_output $'mkfixture: `/bin/false --list-full` failed\nfixture busybox: build failed'
	run find "$BATS_TEST_TMPDIR/cache/fixtures" -mindepth 1 -maxdepth 1 -name '*busybox*' ! -name .busybox.lock
	assert_output ''
}

@test "mkfixture.sh rejects an unknown fixture" {
	run "$KAL_FIXTURES_DIR/mkfixture.sh" nope
	assert_failure
	assert_output 'mkfixture: unknown fixture `nope` (known: busybox busybox-docker zstd plain multiarch features shared debian docker-save)'
}

@test "debian: Debian 12 minbase as one gzip layer, Cmd bash" {
	local layout m config layer
	layout=$("$KAL_FIXTURES_DIR/mkdebian.sh")
	[ "$layout" = "$(fixture_build debian)" ]
	m=$(fixture_manifest debian)
	assert_equal "$(jq -r '.layers | length' "$m")" 1
	assert_equal "$(jq -r '.layers[0].mediaType' "$m")" application/vnd.oci.image.layer.v1.tar+gzip
	config=$(config_of "$layout" "$(fixture_digest debian)")
	assert_equal "$(jq -c .config.Cmd "$config")" '["bash"]'
	layer=$(fixture_blob debian "$(jq -r '.layers[0].digest' "$m")")
	gzip -dc "$layer" >"$BATS_TEST_TMPDIR/rootfs.tar"
	assert_equal "sha256:$(sha256sum <"$BATS_TEST_TMPDIR/rootfs.tar" | cut -d' ' -f1)" \
		"$(jq -r '.rootfs.diff_ids[0]' "$config")"
	run tar -xOf "$BATS_TEST_TMPDIR/rootfs.tar" ./etc/debian_version
	assert_output --regexp '^12\.[0-9]+$'
	tar -tf "$BATS_TEST_TMPDIR/rootfs.tar" >"$BATS_TEST_TMPDIR/list"
	grep -qx ./usr/bin/bash "$BATS_TEST_TMPDIR/list"
	grep -qx ./usr/bin/apt-get "$BATS_TEST_TMPDIR/list"
	# merged /usr via usr-is-merged, not usrmerge (which pulls in perl)
	grep -qx ./var/lib/dpkg/info/usr-is-merged.list "$BATS_TEST_TMPDIR/list"
	if [ "$(id -u)" = 0 ]; then
		mkdir "$BATS_TEST_TMPDIR/root"
		tar -C "$BATS_TEST_TMPDIR/root" -xf "$BATS_TEST_TMPDIR/rootfs.tar" --exclude './dev/*'
		run chroot "$BATS_TEST_TMPDIR/root" bash -c 'dpkg-query -W -f="\${Status}\n" bash; apt-get --version | head -n1'
		assert_success
		assert_line --index 0 'install ok installed'
		assert_line --index 1 --regexp '^apt 2\.6\.'
	fi
	run grep -c '^./var/lib/dpkg/info/usrmerge\.' "$BATS_TEST_TMPDIR/list"
	assert_output 0
	# big enough that the push must stream; it comes back intact
	run fixture_push debian
	assert_success
	assert_output "$(fixture_digest debian)"
	blob_get debian "$(jq -r '.layers[0].digest' "$m")" "$BATS_TEST_TMPDIR/got"
	cmp "$BATS_TEST_TMPDIR/got" "$layer"
}

@test "registry_stop stops the registry" {
	local saved_reg=$KAL_TEST_REGISTRY saved_pid=$KAL_TEST_REGISTRY_PID saved_dir=$KAL_TEST_REGISTRY_DIR
	registry_start "$BATS_TEST_TMPDIR/second"
	[ "$KAL_TEST_REGISTRY" != "$saved_reg" ]
	local pid=$KAL_TEST_REGISTRY_PID reg=$KAL_TEST_REGISTRY
	curl --noproxy '*' -sSf -o /dev/null "http://$reg/v2/"
	registry_stop
	run kill -0 "$pid"
	assert_failure
	run curl --noproxy '*' -sS -o /dev/null "http://$reg/v2/"
	assert_failure 7
	KAL_TEST_REGISTRY=$saved_reg KAL_TEST_REGISTRY_PID=$saved_pid KAL_TEST_REGISTRY_DIR=$saved_dir
}
