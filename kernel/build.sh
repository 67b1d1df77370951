#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Builds kal's guest kernel: Debian's linux-source-6.1, allnoconfig + kernel/kal.config,
# kernel/patches/*.patch applied, uncompressed vmlinux with debug info stripped. The result
# is cached outside the repo by a hash of everything that determines it, so a second
# `make kernel` only copies the file:
#   ${KAL_CACHE:-$HOME/.cache/kal}/kernel/<hash>/{vmlinux,config}
#   ${KAL_CACHE:-$HOME/.cache/kal}/kernel/src/<package version>/   pristine extracted source
#   ${KAL_CACHE:-$HOME/.cache/kal}/kernel/work/{src,obj}/          reused for incremental builds
# Usage: kernel/build.sh OUTDIR   (installs OUTDIR/vmlinux)
#        kernel/build.sh --check DOTCONFIG   (is every kal.config value in DOTCONFIG?)
# Environment: KAL_CACHE, KAL_KERNEL_TARBALL (default /usr/src/linux-source-6.1.tar.xz),
#              KAL_KERNEL_JOBS (default nproc), V=1 for full kernel build output.
set -euo pipefail

die() {
	printf 'kernel/build.sh: %s\n' "$*" >&2
	exit 1
}
note() {
	printf '  %-7s %s\n' KERNEL "$*"
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fragment=$here/kal.config

# Every value the fragment asks for must be in the final .config: Kconfig silently drops
# options whose dependencies are not met, which would otherwise surface as a guest that
# cannot find its disks.
check_config() {
	awk '
		FNR == NR {
			if (match($0, /^CONFIG_[A-Za-z0-9_]+=/)) {
				name = substr($0, 1, RLENGTH - 1); want[name] = substr($0, RLENGTH + 1)
			} else if (match($0, /^# CONFIG_[A-Za-z0-9_]+ is not set$/)) {
				name = $2; want[name] = "n"
			} else next
			order[++n] = name
			next
		}
		/^CONFIG_[A-Za-z0-9_]+=/ {
			i = index($0, "="); have[substr($0, 1, i - 1)] = substr($0, i + 1)
		}
		END {
			bad = 0
			for (k = 1; k <= n; k++) {
				name = order[k]; got = (name in have) ? have[name] : "n"
				if (got != want[name]) {
					printf "  %s: want %s, got %s\n", name, want[name], got
					bad++
				}
			}
			printf "%d options requested, %d wrong\n", n, bad > "/dev/stderr"
			exit bad != 0
		}' "$fragment" "$1"
}
# kernel/build.sh --check DOTCONFIG: only the check above, against any .config
if [[ $# -eq 2 && $1 == --check ]]; then
	check_config "$2"
	exit
fi
[[ $# -eq 1 ]] || die "usage: kernel/build.sh OUTDIR | --check DOTCONFIG"
outdir=$1
tarball=${KAL_KERNEL_TARBALL:-/usr/src/linux-source-6.1.tar.xz}
cache=${KAL_CACHE:-$HOME/.cache/kal}/kernel
jobs=${KAL_KERNEL_JOBS:-$(nproc)}

[[ -r $tarball ]] || die "\`$tarball\` not found: apt-get install linux-source-6.1"
[[ -r $fragment ]] || die "\`$fragment\` not found"

# The package version names the source; fall back to the tarball's size and mtime when
# the tarball does not come from the Debian package.
srcver=$(dpkg-query -W -f '${Version}' linux-source-6.1 2>/dev/null || true)
if [[ -z $srcver || $tarball != /usr/src/linux-source-6.1.tar.xz ]]; then
	srcver=$(stat -c 'local-%s-%Y' "$tarball")
fi
srcver=${srcver//[^A-Za-z0-9.+~-]/_}

shopt -s nullglob
patches=("$here"/patches/*.patch)
shopt -u nullglob

# Everything that determines the output: the fragment, the patches (by name and content),
# this script and the source version.
hash=$({
	printf 'source %s\n' "$srcver"
	for f in "$fragment" "${patches[@]}" "$here/build.sh"; do
		printf '%s %s\n' "${f#"$here"/}" "$(sha256sum <"$f" | cut -d' ' -f1)"
	done
} | sha256sum | cut -c1-16)
result=$cache/$hash

install_result() {
	mkdir -p "$outdir"
	if ! cmp -s "$result/vmlinux" "$outdir/vmlinux"; then
		cp "$result/vmlinux" "$outdir/vmlinux.tmp.$$"
		mv -f "$outdir/vmlinux.tmp.$$" "$outdir/vmlinux"
	fi
}

if [[ -f $result/vmlinux ]]; then
	install_result
	exit 0
fi

mkdir -p "$cache"
# One kernel build at a time per cache: builds from several worktrees share it.
exec 9>"$cache/.lock"
if ! flock -n 9; then
	note "waiting for another kernel build ($cache/.lock)"
	flock 9
fi
if [[ -f $result/vmlinux ]]; then
	install_result
	exit 0
fi

# Pristine source, extracted once per package version.
pristine=$cache/src/$srcver
if [[ ! -d $pristine/linux-source-6.1 ]]; then
	note "extracting $tarball"
	rm -rf "$pristine.tmp"
	mkdir -p "$pristine.tmp"
	tar -xJf "$tarball" -C "$pristine.tmp"
	[[ -f $pristine.tmp/linux-source-6.1/Makefile ]] || die "\`$tarball\` has no linux-source-6.1/"
	mv "$pristine.tmp" "$pristine"
fi

# Work tree: a hardlink farm of the pristine source (GNU patch replaces the files it
# changes, so the pristine tree stays untouched), rebuilt every time so no stale patch
# survives. Files patched last time are re-copied with a fresh mtime so make recompiles
# them even when they are now unpatched; the object tree is reused for incremental builds.
work=$cache/work
src=$work/src
obj=$work/obj
note "preparing source ($srcver, ${#patches[@]} patches)"
rm -rf "$src"
mkdir -p "$work" "$obj"
cp -al "$pristine/linux-source-6.1" "$src"
if [[ -f $work/patched-files ]]; then
	while IFS= read -r f; do
		if [[ -f $src/$f ]]; then
			cp --remove-destination "$pristine/linux-source-6.1/$f" "$src/$f"
			touch "$src/$f"
		fi
	done <"$work/patched-files"
fi
: >"$work/patched-files.new"
for p in "${patches[@]}"; do
	patch -d "$src" -p1 --batch --forward --no-backup-if-mismatch -s <"$p" ||
		die "patch \`${p#"$here"/}\` does not apply to linux-source $srcver"
	sed -n 's|^+++ b/\([^[:space:]]*\).*|\1|p' "$p" >>"$work/patched-files.new"
done
mv "$work/patched-files.new" "$work/patched-files"

kmake() {
	local quiet=()
	[[ ${V:-0} == 1 ]] || quiet=(-s)
	make "${quiet[@]}" -C "$src" O="$obj" ARCH=x86_64 "$@"
}

note "allnoconfig + kernel/kal.config"
kmake KCONFIG_ALLCONFIG="$fragment" allnoconfig >/dev/null

if ! mismatches=$(check_config "$obj/.config" 2>"$work/check.log"); then
	printf '%s\n' "$mismatches" >&2
	die "kernel/kal.config: these options did not get the requested value (unmet dependencies?)"
fi
note "config check: $(cat "$work/check.log")"

note "building vmlinux (-j$jobs, takes minutes)"
start=$(date +%s)
kmake -j"$jobs" vmlinux
note "vmlinux built in $(($(date +%s) - start)) s"

tmp=$cache/.tmp-$hash.$$
rm -rf "$tmp"
mkdir -p "$tmp"
objcopy --strip-debug "$obj/vmlinux" "$tmp/vmlinux"
cp "$obj/.config" "$tmp/config"
printf 'source linux-source-6.1 %s\npatches %s\n' "$srcver" "${#patches[@]}" >"$tmp/info"
rm -rf "$result"
mv "$tmp" "$result"
note "cached $result/vmlinux ($(stat -c %s "$result/vmlinux") bytes)"
install_result
