#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Runs the C unit tests (cmocka, TAP) and/or the bats suite, keeps every TAP
# line, and ends with one summary line "check: N passed, N failed, N skipped".
# KAL_TEST_STRICT=1 (CI) counts a skip as a failure unless its reason starts
# with "host lacks" (a missing host capability).
#   tests/run.sh unit BIN...   tests/run.sh bats   tests/run.sh all BIN...
set -u
mode=${1:?mode}
shift
here=$(cd "$(dirname "$0")" && pwd)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
rc=0

run_unit() {
	local t
	for t in "$@"; do
		echo "# unit: ${t##*/}"
		CMOCKA_MESSAGE_OUTPUT=TAP "$t" 2>&1 | tee -a "$log" || rc=1
	done
}

run_bats() {
	bats --tap "$here"/bats/*.bats 2>&1 | tee -a "$log"
	[ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
}

case $mode in
unit) run_unit "$@" ;;
bats) run_bats ;;
all)
	run_unit "$@"
	run_bats
	;;
*)
	echo "usage: $0 unit|bats|all ..." >&2
	exit 2
	;;
esac

passed=$(grep -cE '^ok ' "$log")
failed=$(grep -cE '^not ok ' "$log")
skipped=$(grep -cE '^ok .*# (skip|SKIP)' "$log")
bad_skips=$(grep -E '^ok .*# (skip|SKIP)' "$log" | grep -vcE '# (skip|SKIP)( \(.*\))? host lacks')
passed=$((passed - skipped))
if [ "${KAL_TEST_STRICT:-0}" = 1 ] && [ "$bad_skips" -gt 0 ]; then
	echo "# strict mode: $bad_skips skip(s) without a missing host capability count as failures"
	grep -E '^ok .*# (skip|SKIP)' "$log" | grep -vE 'host lacks'
	failed=$((failed + bad_skips))
fi
[ "$failed" -eq 0 ] || rc=1
echo "check: $passed passed, $failed failed, $skipped skipped"
exit $rc
