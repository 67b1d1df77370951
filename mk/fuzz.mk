# SPDX-License-Identifier: GPL-2.0-or-later
# libFuzzer targets (reliability.md 3.1).  Every tests/fuzz/fuzz-NAME.c is one
# target, linked against the core objects (lib, imagecache, vmm, pty) rebuilt
# with clang and -fsanitize=fuzzer-no-link,address,undefined in $(BUILD)/fuzz.
# A new target needs no edit here.  An optional executable tests/fuzz/fuzz-NAME.seed
# writes a seed corpus into the directory given as $1.
#
#   make fuzz                       build all targets
#   make fuzz-run FUZZ_TIME=60      run each target for FUZZ_TIME seconds (default 30)
#   make fuzz-run-NAME              run one target

FUZZ_CC ?= clang
FUZZ_TIME ?= 30
FUZZ_BUILD = $(BUILD)/fuzz
FUZZ_SAN = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS = -std=gnu11 -D_GNU_SOURCE -DKAL_VERSION='"$(VERSION)"' -DKAL_FUZZ=1 -I. \
	$(PKG_CFLAGS) -g -O1 -MMD -MP $(FUZZ_SAN) \
	-DKAL_LIBCURL_SONAME='"$(call soname,libcurl,libcurl)"' \
	-DKAL_LIBARCHIVE_SONAME='"$(call soname,libarchive,libarchive)"' \
	-DKAL_LIBSLIRP_SONAME='"$(call soname,slirp,libslirp)"' 
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz-*.c)
FUZZ_NAMES = $(patsubst tests/fuzz/fuzz-%.c,%,$(FUZZ_SRCS))
FUZZ_BINS = $(patsubst %,$(FUZZ_BUILD)/fuzz-%,$(FUZZ_NAMES))
FUZZ_CORE_OBJS = $(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(LIB_SRCS) $(IC_SRCS) $(VMM_SRCS) $(PTY_SRCS))

# fuzz-run-% stays out of .PHONY: make never applies pattern rules to phony targets
.PHONY: fuzz fuzz-run
.SECONDARY: $(FUZZ_CORE_OBJS)
fuzz: $(FUZZ_BINS)

$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(E) FUZZCC $<
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_BUILD)/fuzz-%: tests/fuzz/fuzz-%.c $(FUZZ_CORE_OBJS) $(EMBED_OBJS)
	@mkdir -p $(dir $@)
	$(E) FUZZ $@
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $(filter %.c %.o,$^) $(PKG_LIBS) $(EXTRA_LIBS) -pthread

fuzz-run: $(patsubst %,fuzz-run-%,$(FUZZ_NAMES))

fuzz-run-%: $(FUZZ_BUILD)/fuzz-%
	@mkdir -p $(FUZZ_BUILD)/corpus-$*
	$(Q)if [ -x tests/fuzz/fuzz-$*.seed ]; then tests/fuzz/fuzz-$*.seed $(FUZZ_BUILD)/corpus-$*; fi
	$(Q)$< -max_total_time=$(FUZZ_TIME) -rss_limit_mb=512 -timeout=20 -artifact_prefix=$(FUZZ_BUILD)/ $(FUZZ_BUILD)/corpus-$*

-include $(shell find $(FUZZ_BUILD) -name '*.d' 2>/dev/null)
