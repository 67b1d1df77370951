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
	if [ "$status" -ne "$want" ]; then
		echo "# kal $* exited $status, expected $want" >&3
		return 1
	fi
}

# skip because the host cannot do something; the only kind of skip strict CI allows
skip_host_lacks() {
	skip "host lacks $*"
}
