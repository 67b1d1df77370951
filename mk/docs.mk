# SPDX-License-Identifier: GPL-2.0-or-later
# Man pages and shell completions, generated from the command table by `kal __gen` and
# checked in, so packagers and users get them without building. `make docs` refreshes
# them; tests/bats/90-docs.bats fails when the checked-in copies are stale.

.PHONY: docs
docs: $(BUILD)/kal
	$(E) GEN man/ completions/
	$(Q)rm -rf $(BUILD)/docs.tmp && mkdir -p $(BUILD)/docs.tmp/man completions
	$(Q)$(BUILD)/kal __gen man $(BUILD)/docs.tmp/man
	$(Q)rm -rf man && mv $(BUILD)/docs.tmp/man man && rm -rf $(BUILD)/docs.tmp
	$(Q)$(BUILD)/kal __gen bash >completions/kal.bash.tmp && mv completions/kal.bash.tmp completions/kal.bash
	$(Q)$(BUILD)/kal __gen zsh >completions/_kal.tmp && mv completions/_kal.tmp completions/_kal
	$(Q)$(BUILD)/kal __gen fish >completions/kal.fish.tmp && mv completions/kal.fish.tmp completions/kal.fish
