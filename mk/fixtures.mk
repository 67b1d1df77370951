# SPDX-License-Identifier: GPL-2.0-or-later
# Test fixture images (tests/fixtures/mkfixture.sh): OCI layouts built by scripts and
# cached in $(KAL_CACHE)/fixtures/<name>-<hash>/. `make fixtures` prebuilds them all
# (Debian minbase takes ~1 min the first time), so CI's first test does not time out.
# `make debian-image` builds only the default image and prints its layout directory.

.PHONY: fixtures debian-image lint-fixtures

fixtures:
	$(Q)tests/fixtures/mkfixture.sh --all

debian-image:
	$(Q)tests/fixtures/mkdebian.sh

lint-fixtures:
	shellcheck -x tests/fixtures/*.sh tests/fixtures/lib/*.sh tests/bats/helpers.bash
