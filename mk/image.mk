# SPDX-License-Identifier: GPL-2.0-or-later
# The default image: Debian 12 minbase built locally with mmdebstrap (cached
# outside the repo by tests/fixtures/mkdebian.sh) and loaded into $KAL_HOME as
# `debian`.  Only Debian's package mirror is needed.

.PHONY: image
image: kal
	$(Q)./kal load --name debian "$$(tests/fixtures/mkdebian.sh)"

# The README's first command ends here: a login shell in a fresh microVM.
.PHONY: shell
shell: all $(BUILD)/vmlinux image
	./kal shell debian
