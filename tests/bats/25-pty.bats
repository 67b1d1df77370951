#!/usr/bin/env bats
# SPDX-License-Identifier: GPL-2.0-or-later
# Interactive sessions on a guest PTY, driven through tmux: the window size
# reaches the guest and follows a resize, a full-screen program draws, and
# kal shell gives a login shell (bash on Debian).

load helpers
load vm_helpers

setup_file() {
	vm_setup_file
	[ -n "${VM_SKIP:-}" ] || "$KAL" run -d --name pty busybox >/dev/null
}
teardown_file() { vm_teardown_file; }
setup() {
	vm_setup
	command -v tmux >/dev/null || skip_host_lacks tmux
	TMUX_SOCK=kal-test-$$-$BATS_TEST_NUMBER
}
teardown() {
	tmux -L "$TMUX_SOCK" kill-server 2>/dev/null || true
}

# tm ARGS...: tmux on this test's private server
tm() { tmux -L "$TMUX_SOCK" -f /dev/null "$@"; }

# wait_screen REGEX: wait up to 20 s for the pane to match
wait_screen() {
	for _ in $(seq 200); do
		if tm capture-pane -p -t t | grep -qE "$1"; then
			return 0
		fi
		sleep 0.1
	done
	echo "# screen never matched $1:" >&3
	tm capture-pane -p -t t | sed 's/^/# | /' >&3
	return 1
}

@test "pty: stty size sees the terminal size and a resize" {
	tm new-session -d -s t -x 80 -y 24 "'$KAL' exec -it pty sh"
	wait_screen '#|\$'
	tm send-keys -t t 'stty size' Enter
	wait_screen '^24 80'
	tm resize-window -t t -x 100 -y 30
	tm send-keys -t t 'clear; stty size' Enter
	wait_screen '^30 100'
}

@test "pty: a full-screen program draws (cursor addressing, vi)" {
	tm new-session -d -s t -x 80 -y 24 "'$KAL' exec -it pty sh"
	wait_screen '#|\$'
	tm send-keys -t t "clear; printf '\\033[10;20HMARK\\033[24;1H'" Enter
	wait_screen '^ {19}MARK'
	tm send-keys -t t 'vi /etc/passwd' Enter
	wait_screen '^root:'
	wait_screen '^~'
	tm send-keys -t t Escape
	sleep 0.5
	tm send-keys -t t ':q!' Enter
	wait_screen '#|\$'
}

@test "pty: exit status of the shell comes back through exec -it" {
	tm new-session -d -s t -x 80 -y 24 "'$KAL' exec -it pty sh; echo status=\$?; sleep 30"
	wait_screen '#|\$'
	tm send-keys -t t 'exit 7' Enter
	wait_screen 'status=7'
}

@test "shell: Debian image gets a bash login shell, the VM goes away afterwards" {
	"$KAL" load -q --name debian "$(fixture_build debian)" >/dev/null || skip "debian fixture unavailable"
	tm new-session -d -s t -x 100 -y 30 "'$KAL' shell debian; echo shell-done; sleep 30"
	wait_screen '#|\$'
	tm send-keys -t t 'shopt -q login_shell && echo "login $BASH_VERSION"; cat /etc/debian_version' Enter
	wait_screen '^login [0-9]'
	wait_screen '^12'
	tm send-keys -t t 'exit' Enter
	wait_screen 'shell-done'
	run_kal ps -a -q
	refute_output --regexp 'debian'
	[ "$(ls "$KAL_HOME/vms" | grep -vc '^pty$')" -eq 0 ]
}
