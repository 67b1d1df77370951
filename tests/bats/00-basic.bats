#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-or-later
# The command line itself: version, help, unknown commands and options.

load helpers

@test "kal --version prints the version" {
	run_kal --version
	assert_output --regexp '^kal version [0-9a-g.-]+'
	run_kal version
	assert_output --regexp '^kal version '
}

@test "kal help lists every visible command" {
	run_kal help
	assert_line --regexp '^  help +show help'
	assert_line --regexp '^  version +print the version'
}

@test "kal help CMD and kal CMD --help show the command's usage" {
	run_kal help version
	assert_line --index 0 'usage: kal version '
	run_kal help --help
	assert_line --index 0 'usage: kal help [COMMAND]'
}

@test "an unknown command is a usage error with a suggestion" {
	run_kal 125 versoin
	assert_equal "$stderr" 'kal: unknown command `versoin` (did you mean `version`?)'
}

@test "an unknown command with no near match" {
	run_kal 125 frobnicate
	assert_equal "$stderr" 'kal: unknown command `frobnicate` (see `kal help`)'
}

@test "control characters in an unknown command are escaped" {
	run_kal 125 $'\e]0;x\a'
	assert_equal "$stderr" 'kal: unknown command `\x1b]0;x\x07` (see `kal help`)'
}

@test "help for an unknown command fails" {
	run_kal 125 help nope
	assert_equal "$stderr" 'kal: help: unknown command `nope`'
}
