/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Host <-> supervisor control frames: guest/proto.h frames (same 12-byte
 * header, same payload encodings) whose types lie in the range proto.h
 * reserves (KAL_MSG_CTL_FIRST..KAL_MSG_CTL_LAST).  The supervisor answers
 * them itself and never forwards them to the agent.
 *
 *   CTL_STATUS        C->S  -
 *   CTL_STATUS_REPLY  S->C  str state ("running"), str engine, u32 supervisor
 *                           pid, u64 started (unix seconds), u32 clients,
 *                           u32 sessions, str exit ("" while running)
 *   CTL_STOP          C->S  u32 timeout_ms (graceful, then forced)
 *   CTL_STOPPING      S->C  -   (the VM is being stopped; the supervisor closes
 *                           every client and exits once it is gone)
 *
 * The session field of a control frame is echoed and otherwise unused.  A
 * connection starts with HELLO as on the agent channel; the supervisor
 * answers with its own HELLO (same KAL_PROTO_VERSION, software
 * "kal-supervise").
 */
#ifndef KAL_VMM_CTL_H
#define KAL_VMM_CTL_H

#include "../guest/proto.h"

enum kal_ctl_type {
	KAL_CTL_STATUS = KAL_MSG_CTL_FIRST,
	KAL_CTL_STATUS_REPLY = KAL_MSG_CTL_FIRST + 1,
	KAL_CTL_STOP = KAL_MSG_CTL_FIRST + 2,
	KAL_CTL_STOPPING = KAL_MSG_CTL_FIRST + 3,
};

#define KAL_CTL_SOFTWARE "kal-supervise"

#endif
