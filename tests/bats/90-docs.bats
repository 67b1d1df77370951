#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-or-later
# Man pages and shell completions: the checked-in copies equal what `kal __gen` makes from
# the command table (so a new command without `make docs` fails here), the man pages render
# cleanly, and the completions complete what a user would type.

load helpers

ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)

# visible command names, in table order, from `kal help`
visible_commands() {
	"$KAL" help | sed -n '/^Commands:/,/^$/s/^  \([^ ]*\) .*/\1/p'
}

# complete WORD...: run the bash completion for the command line "WORD..." with the cursor
# at the end of the last word; prints COMPREPLY one per line
complete_bash() {
	# shellcheck source=/dev/null
	source "$ROOT/completions/kal.bash"
	COMP_WORDS=("$@")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMPREPLY=()
	_kal
	[ ${#COMPREPLY[@]} -eq 0 ] || printf '%s\n' "${COMPREPLY[@]}"
}

@test "checked-in man pages and completions are what make docs generates" {
	local gen=$BATS_TEST_TMPDIR/gen
	run_kal __gen man "$gen/man"
	"$KAL" __gen bash >"$gen/kal.bash"
	"$KAL" __gen zsh >"$gen/_kal"
	"$KAL" __gen fish >"$gen/kal.fish"
	run diff -ru "$ROOT/man" "$gen/man"
	[ "$status" -eq 0 ] || fail "man/ is stale, run \`make docs\`: $output"
	for f in kal.bash _kal kal.fish; do
		run diff -u "$ROOT/completions/$f" "$gen/$f"
		[ "$status" -eq 0 ] || fail "completions/$f is stale, run \`make docs\`: $output"
	done
}

@test "every visible command has a man page and hidden ones have none" {
	local cmds n=0
	cmds=$(visible_commands)
	[ -n "$cmds" ]
	for c in $cmds; do
		[ -f "$ROOT/man/kal-$c.1" ] || fail "no man/kal-$c.1"
		grep -q "^\.BR kal\\\\-${c//-/\\\\-} (1)" "$ROOT/man/kal.1" || fail "kal.1 misses $c"
		n=$((n + 1))
	done
	[ "$(find "$ROOT/man" -name 'kal-*.1' | wc -l)" -eq "$n" ]
	[ ! -e "$ROOT/man/kal-__gen.1" ]
}

@test "man pages render without groff warnings" {
	command -v man >/dev/null || skip_host_lacks "man (man-db)"
	for f in "$ROOT"/man/*.1; do
		run -0 --separate-stderr env MANWIDTH=80 man --warnings -l "$f"
		[ -z "$stderr" ] || fail "$f: $stderr"
		[ -n "$output" ]
	done
	MANWIDTH=80 man -l "$ROOT/man/kal.1" >"$BATS_TEST_TMPDIR/kal.txt"
	run cat "$BATS_TEST_TMPDIR/kal.txt"
	assert_line --regexp '^ +KAL_HOME$'
	assert_line --regexp '^ +KAL_ENGINE$'
	assert_line --regexp '^ +KAL_REGISTRY_MIRROR$'
	assert_line --regexp '^ +KAL_KERNEL$'
	assert_line --regexp '^ +125 +kal itself failed'
	assert_line --regexp '^ +127 +The program to run in the VM was not found'
	assert_line --regexp '^ +-v, --verbose$'
}

@test "a command's man page shows its usage and every option from kal help" {
	local c opt
	for c in $(visible_commands); do
		MANWIDTH=200 man -l "$ROOT/man/kal-$c.1" >"$BATS_TEST_TMPDIR/page.txt" 2>/dev/null
		grep -q "^ *kal-$c - " "$BATS_TEST_TMPDIR/page.txt" || fail "kal-$c.1: no NAME line"
		for opt in $("$KAL" help "$c" | grep -oE '^  (-[a-zA-Z0-9], )?--[a-z0-9-]+' | grep -oE -- '--[a-z0-9-]+'); do
			grep -qe "$opt" "$BATS_TEST_TMPDIR/page.txt" || fail "kal-$c.1 misses $opt"
		done
	done
}

@test "bash: kal he<TAB> completes to help" {
	run complete_bash kal he
	assert_output help
}

@test "bash: kal <TAB> offers exactly the visible commands" {
	run complete_bash kal ''
	assert_output "$(visible_commands)"
	refute_line --partial __
}

@test "bash: kal help --<TAB> offers help's options" {
	run complete_bash kal help --
	assert_output --help
}

@test "bash: every command completes --help and each long option from kal help" {
	local c opt
	for c in $(visible_commands); do
		run complete_bash kal "$c" --
		assert_line --help
		for opt in $("$KAL" help "$c" | grep -oE '^  (-[a-zA-Z0-9], )?--[a-z0-9-]+' | grep -oE -- '--[a-z0-9-]+'); do
			assert_line -- "$opt"
		done
	done
}

@test "bash: kal help <TAB> offers commands, global options before the command" {
	run complete_bash kal help ver
	assert_output version
	run complete_bash kal --vers
	assert_output --version
	run complete_bash kal --ver
	assert_output $'--verbose\n--version'
	run complete_bash kal -v --home /tmp ve
	assert_output version
}

@test "bash: --home completes directories" {
	mkdir -p "$BATS_TEST_TMPDIR/dirs/alpha" "$BATS_TEST_TMPDIR/dirs/beta"
	touch "$BATS_TEST_TMPDIR/dirs/afile"
	run complete_bash kal --home "$BATS_TEST_TMPDIR/dirs/a"
	assert_output "$BATS_TEST_TMPDIR/dirs/alpha"
}

@test "bash: image and VM values come from kal images -q / kal ps -q, colons handled" {
	local fake=$BATS_TEST_TMPDIR/bin/kal
	mkdir -p "${fake%/*}"
	cat >"$fake" <<-'EOF'
		#!/bin/sh
		# stands in for kal: records its arguments, prints a fixed list
		echo "$*" >>"${0%/*}/calls"
		case "$*" in
		*"images -q") printf 'debian:12\ndebian:latest\nalpine:3.19\n' ;;
		*"ps -q") printf 'dev\ndev2\nci\n' ;;
		*) exit 125 ;;
		esac
	EOF
	chmod +x "$fake"
	# shellcheck source=/dev/null
	source "$ROOT/completions/kal.bash"
	local _kal_bin=$fake cur=deb
	local -a _kal_home=(--home /x)
	_kal_values image
	assert_equal "${COMPREPLY[*]}" "debian:12 debian:latest"
	cur=d
	_kal_values vm
	assert_equal "${COMPREPLY[*]}" "dev dev2"
	grep -qx -- '--home /x images -q' "${fake%/*}/calls"

	# end to end through _kal for whichever commands take an IMAGE or VM operand; bash
	# splits "debian:1" into "debian" ":" "1" and only replaces the part after the colon
	local c found=0
	for c in $(visible_commands); do
		_kal_cmd_info "$c"
		case $_kal_kind in
		image)
			run complete_bash "$fake" "$c" debian : ''
			assert_output $'12\nlatest'
			run complete_bash "$fake" "$c" al
			assert_output alpine:3.19
			found=$((found + 1))
			;;
		vm)
			run complete_bash "$fake" "$c" dev
			assert_output $'dev\ndev2'
			found=$((found + 1))
			;;
		esac
	done
	echo "# $found commands take an IMAGE or VM operand" >&3
}

@test "bash: a failing kal images completes nothing and prints nothing" {
	# shellcheck source=/dev/null
	source "$ROOT/completions/kal.bash"
	local _kal_bin=false cur=''
	local -a _kal_home=()
	run _kal_values image
	assert_output ''
}

@test "zsh and fish completions parse; fish completes commands and options" {
	command -v zsh >/dev/null || skip_host_lacks zsh
	command -v fish >/dev/null || skip_host_lacks fish
	run -0 zsh -n "$ROOT/completions/_kal"
	run -0 fish -n "$ROOT/completions/kal.fish"
	run -0 fish -c "source '$ROOT/completions/kal.fish'; complete -C 'kal he'"
	assert_output $'help\tshow help for kal or one command'
	run -0 fish -c "source '$ROOT/completions/kal.fish'; complete -C 'kal help --'"
	assert_line --regexp $'^--help\t'
	run -0 fish -c "source '$ROOT/completions/kal.fish'; complete -C 'kal --home /tmp help ver'"
	assert_output --regexp $'^version\t'
}

@test "kal __gen rejects an unknown target with the exact usage error" {
	run_kal 125 __gen nope
	assert_equal "$stderr" 'kal: __gen: unknown target `nope` (usage: kal __gen man OUTDIR | bash | zsh | fish)'
	run_kal 125 __gen man
	assert_equal "$stderr" 'kal: __gen: `man` needs exactly OUTDIR (usage: kal __gen man OUTDIR | bash | zsh | fish)'
}

@test "kal __gen man into an unwritable place fails with the path" {
	touch "$BATS_TEST_TMPDIR/file"
	run_kal 125 __gen man "$BATS_TEST_TMPDIR/file/man"
	assert_equal "$stderr" "kal: __gen: mkdir \`$BATS_TEST_TMPDIR/file/man\`: Not a directory"
}
