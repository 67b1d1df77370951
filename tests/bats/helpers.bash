# SPDX-License-Identifier: GPL-2.0-or-later
# Shared bats helpers (podman test/system/helpers.bash, conmon test_helper.bash).
# Every test gets a private KAL_HOME; run_kal logs the command and its output.
bats_require_minimum_version 1.5.0
load /usr/lib/bats/bats-support/load
load /usr/lib/bats/bats-assert/load

KAL=${KAL:-$BATS_TEST_DIRNAME/../../kal}
KAL_TEST_TIMEOUT=${KAL_TEST_TIMEOUT:-300}

kal_setup_home() {
	export KAL_HOME=$BATS_TEST_TMPDIR/kal-home
	export XDG_RUNTIME_DIR=$BATS_TEST_TMPDIR/run
	mkdir -p "$XDG_RUNTIME_DIR"
	chmod 700 "$XDG_RUNTIME_DIR"
}

setup() {
	kal_setup_home
}

# run_kal [EXPECTED_RC] ARGS...: run kal under timeout; EXPECTED_RC defaults to 0.
# stdout and stderr are separate: $output / $stderr.
run_kal() {
	local want=0
	case "${1:-}" in
	[0-9] | [0-9][0-9] | [0-9][0-9][0-9])
		want=$1
		shift
		;;
	esac
	echo "# \$ kal $*" >&3
	run --separate-stderr timeout --foreground -k 10 "$KAL_TEST_TIMEOUT" "$KAL" "$@"
	{
		[ -z "$output" ] || printf '%s\n' "$output"
		[ -z "$stderr" ] || printf '%s\n' "$stderr"
	} | sed 's/^/# /' >&3
	# shellcheck disable=SC2154 # status is set by bats' run
	if [ "$status" -ne "$want" ]; then
		echo "# kal $* exited $status, expected $want" >&3
		return 1
	fi
}

# skip because the host cannot do something; the only kind of skip strict CI allows
skip_host_lacks() {
	skip "host lacks $*"
}

# --- fixtures (tests/fixtures/mkfixture.sh) --------------------------------------------
# Fixture images are OCI image layouts built by scripts and cached outside the repo in
# ${KAL_CACHE:-$HOME/.cache/kal}/fixtures/<name>-<hash>/. Names: busybox busybox-docker
# zstd plain multiarch features shared debian docker-save (mkfixture.sh --list).

KAL_FIXTURES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../fixtures" && pwd)
OCI_REF_ANNOTATION=org.opencontainers.image.ref.name

# fixture_build NAME: build (or reuse) fixture NAME, print its OCI layout directory
# (docker-save: the path of the `docker save` tarball)
fixture_build() {
	"$KAL_FIXTURES_DIR/mkfixture.sh" "$1"
}

# fixture_digest NAME [REF]: digest of the manifest (or index) tagged REF in the
# fixture's layout; REF defaults to the first image (busybox: latest; shared: a, b)
fixture_digest() {
	local layout
	layout=$(fixture_build "$1") || return 1
	jq -er --arg a "$OCI_REF_ANNOTATION" --arg ref "${2:-}" \
		'[.manifests[] | select($ref == "" or .annotations[$a] == $ref)][0].digest' \
		"$layout/index.json"
}

# fixture_manifest NAME [REF]: path of the manifest (multiarch: the index) tagged REF
fixture_manifest() {
	local digest
	digest=$(fixture_digest "$@") || return 1
	fixture_blob "$1" "$digest"
}

# fixture_blob NAME DIGEST: path of a blob inside the fixture's layout
fixture_blob() {
	local layout
	layout=$(fixture_build "$1") || return 1
	echo "$layout/blobs/sha256/${2#sha256:}"
}

# --- a real registry on loopback (Debian's docker-registry) ----------------------------
# registry_start in setup_file, registry_stop in teardown_file. Exports
#   KAL_TEST_REGISTRY      127.0.0.1:PORT (plain HTTP, as kal allows for loopback)
#   KAL_TEST_REGISTRY_PID  the registry's PID
#   KAL_TEST_REGISTRY_DIR  its directory: config.yml, storage/, registry.log

# _registry_free_port: an unused loopback TCP port (the kernel picks it)
_registry_free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# _registry_curl ARGS...: curl against the test registry, never through a proxy
_registry_curl() {
	curl --noproxy '*' -sS --max-time 120 "$@"
}

# registry_start [DIR]: start a registry storing under DIR (default
# $BATS_FILE_TMPDIR/registry) and wait until GET /v2/ answers
registry_start() {
	local dir=${1:-$BATS_FILE_TMPDIR/registry} port pid try
	mkdir -p "$dir/storage"
	# kal (libcurl) and curl must reach loopback directly even when a proxy is set
	export no_proxy=127.0.0.1,localhost${no_proxy:+,$no_proxy}
	export NO_PROXY=$no_proxy
	for try in 1 2 3 4 5; do
		port=$(_registry_free_port) || return 1
		cat >"$dir/config.yml" <<-YML
			version: 0.1
			log:
			  level: info
			  formatter: text
			  accesslog:
			    disabled: false
			storage:
			  filesystem:
			    rootdirectory: $dir/storage
			  delete:
			    enabled: true
			  redirect:
			    disable: true
			http:
			  addr: 127.0.0.1:$port
			  secret: kal-test-registry
		YML
		# fd 3 closed: bats waits for every holder of it before it finishes
		docker-registry serve "$dir/config.yml" >>"$dir/registry.log" 2>&1 3>&- &
		pid=$!
		for _ in $(seq 100); do
			if ! kill -0 "$pid" 2>/dev/null; then
				break
			fi
			if _registry_curl -fo /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null; then
				_registry_watch "$$" "$pid"
				export KAL_TEST_REGISTRY=127.0.0.1:$port KAL_TEST_REGISTRY_PID=$pid
				export KAL_TEST_REGISTRY_DIR=$dir
				return 0
			fi
			sleep 0.1
		done
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		echo "# registry on port $port did not come up (try $try):" >&2
		tail -n 5 "$dir/registry.log" >&2
	done
	return 1
}

# _registry_watch OWNER PID: stop the registry PID once the bats process OWNER is gone
# (setup_file's $$ lives as long as the file runs), so an interrupted run or a
# missing teardown_file leaves no registry behind
_registry_watch() {
	(
		while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do
			sleep 1
		done
		kill "$2" 2>/dev/null
	) </dev/null >/dev/null 2>&1 3>&- &
}

# registry_stop: stop the registry registry_start started
registry_stop() {
	local pid=${KAL_TEST_REGISTRY_PID:-}
	[ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null || return 0
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null || true
	unset KAL_TEST_REGISTRY_PID
}

# registry_log: path of the registry's log (one access-log line per request:
# 127.0.0.1 - - [date] "GET /v2/busybox/manifests/latest HTTP/1.1" 200 ...)
registry_log() {
	echo "$KAL_TEST_REGISTRY_DIR/registry.log"
}

# registry_log_mark: from now on registry_requests counts only later requests
registry_log_mark() {
	_registry_log_sync
	KAL_TEST_REGISTRY_MARK=$(wc -l <"$(registry_log)")
}

# _registry_log_sync: make sure every request answered so far is in the log; the
# registry writes a request's log line after answering it, so wait for a marker request
_registry_log_sync() {
	local marker=kal-sync-$$-$RANDOM$RANDOM
	_registry_curl -o /dev/null "http://$KAL_TEST_REGISTRY/v2/?$marker" || return 1
	for _ in $(seq 100); do
		grep -qF "$marker" "$(registry_log)" && return 0
		sleep 0.05
	done
	echo "# registry log never showed $marker" >&2
	return 1
}

# registry_requests PATTERN: number of requests whose request line starts with PATTERN,
# e.g. registry_requests 'GET /v2/busybox/manifests' or 'HEAD /v2/busybox/blobs/'
# (since registry_log_mark, else since the start)
registry_requests() {
	_registry_log_sync || return 1
	tail -n +"$((${KAL_TEST_REGISTRY_MARK:-0} + 1))" "$(registry_log)" |
		grep -F "] \"$1" | grep -cvF 'kal-sync-' || true
}

# registry_blob_path DIGEST: the registry's stored file of a blob; the registry serves
# it as it is, so a test can corrupt a blob after pushing it
registry_blob_path() {
	local hex=${1#sha256:}
	echo "$KAL_TEST_REGISTRY_DIR/storage/docker/registry/v2/blobs/sha256/${hex:0:2}/$hex/data"
}

# _registry_push_blob LAYOUT REPO DIGEST: monolithic upload (POST, then PUT ?digest=)
_registry_push_blob() {
	local layout=$1 repo=$2 digest=$3 base="http://$KAL_TEST_REGISTRY" code loc
	code=$(_registry_curl -o /dev/null -w '%{http_code}' -I "$base/v2/$repo/blobs/$digest") ||
		return 1
	[ "$code" != 200 ] || return 0
	loc=$(_registry_curl -o /dev/null -D - -X POST "$base/v2/$repo/blobs/uploads/" |
		tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
	[ -n "$loc" ] || {
		echo "# push $repo: no upload location for $digest" >&2
		return 1
	}
	case $loc in /*) loc=$base$loc ;; esac
	case $loc in *\?*) loc="$loc&digest=$digest" ;; *) loc="$loc?digest=$digest" ;; esac
	code=$(_registry_curl -o /dev/null -w '%{http_code}' -X PUT \
		-H 'Content-Type: application/octet-stream' -T "$layout/blobs/sha256/${digest#sha256:}" \
		"$loc") || return 1
	[ "$code" = 201 ] || {
		echo "# push $repo: blob $digest: HTTP $code" >&2
		return 1
	}
}

# _registry_push_manifest LAYOUT REPO MEDIATYPE DIGEST REF: push a manifest (after its
# blobs) or an index (after its manifests), byte for byte, as REPO:REF
_registry_push_manifest() {
	local layout=$1 repo=$2 mt=$3 digest=$4 ref=$5 file child got
	file=$layout/blobs/sha256/${digest#sha256:}
	case $mt in
	*index* | *manifest.list*)
		while read -r cmt child; do
			_registry_push_manifest "$layout" "$repo" "$cmt" "$child" "$child" || return 1
		done < <(jq -r '.manifests[] | "\(.mediaType) \(.digest)"' "$file")
		;;
	*)
		for child in $(jq -r '.config.digest, .layers[].digest' "$file"); do
			_registry_push_blob "$layout" "$repo" "$child" || return 1
		done
		;;
	esac
	got=$(_registry_curl -o /dev/null -D - -X PUT -H "Content-Type: $mt" --data-binary "@$file" \
		"http://$KAL_TEST_REGISTRY/v2/$repo/manifests/$ref" |
		tr -d '\r' | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: //p')
	[ "$got" = "$digest" ] || {
		echo "# push $repo:$ref: registry stored ${got:-nothing}, want $digest" >&2
		return 1
	}
}

# fixture_push NAME [REPO[:TAG]]: push fixture NAME into the running registry, byte-exact
# (blobs via POST + PUT ?digest=, manifests and indexes via PUT). REPO defaults to NAME;
# without TAG every image of the layout is pushed under its own tag (busybox: latest,
# shared: a and b); a TAG needs a single-image fixture. Prints each pushed digest.
fixture_push() {
	local name=$1 dest=${2:-$1} layout repo tag mt digest ref n
	layout=$(fixture_build "$name") || return 1
	[ -d "$layout" ] || {
		echo "# fixture_push: $name is not an OCI layout" >&2
		return 1
	}
	repo=${dest%%:*}
	tag=
	[ "$repo" = "$dest" ] || tag=${dest#*:}
	n=$(jq '.manifests | length' "$layout/index.json")
	if [ -n "$tag" ] && [ "$n" != 1 ]; then
		echo "# fixture_push: $name holds $n images; push it without a tag" >&2
		return 1
	fi
	while read -r mt digest ref; do
		_registry_push_manifest "$layout" "$repo" "$mt" "$digest" "${tag:-$ref}" || return 1
		echo "$digest"
	done < <(jq -r --arg a "$OCI_REF_ANNOTATION" \
		'.manifests[] | "\(.mediaType) \(.digest) \(.annotations[$a] // "latest")"' \
		"$layout/index.json")
}

# with_hugepages N: reserve N 2 MiB huge pages on the host for this test; the
# file's teardown calls hugepages_restore to put the count back
with_hugepages() {
	[ -w /proc/sys/vm/nr_hugepages ] || skip_host_lacks "a writable /proc/sys/vm/nr_hugepages"
	HUGE_BEFORE=${HUGE_BEFORE:-$(cat /proc/sys/vm/nr_hugepages)}
	echo "$1" >/proc/sys/vm/nr_hugepages
}

hugepages_restore() {
	[ -z "${HUGE_BEFORE:-}" ] || echo "$HUGE_BEFORE" >/proc/sys/vm/nr_hugepages
}
