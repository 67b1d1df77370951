# SPDX-License-Identifier: GPL-2.0-or-later
# The VM lifecycle (vmm/supervisor.c) speaks guest/proto.h; link its codec into
# kal unless the guest area already does.
ifeq ($(filter %guest/proto.o,$(CORE_OBJS) $(EMBED_OBJS)),)
CORE_OBJS += $(call obj,guest/proto.c)
endif
