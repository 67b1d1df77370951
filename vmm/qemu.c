// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The `qemu` engine: qemu-system-x86_64 -M microvm,acpi=off (virtio-mmio
 * devices announced on the kernel command line), TCG unless the KVM probe
 * shows hardware speed.  QEMU gets three pre-connected socketpair ends as
 * chardevs (agent port, QMP, serial console), so there are no socket files,
 * no connect races and no output lost before kal attaches.  The VM ends
 * through QMP `quit` (microvm without ACPI cannot power off), SIGKILL last.
 * QEMU dies with the supervisor (PR_SET_PDEATHSIG).
 *
 * Layers are read-only virtio-blk disks: QEMU 7.2 has no virtio-pmem-device
 * (mmio) model at all, only virtio-pmem-pci, and microvm here has no PCI
 * (checked: "'virtio-pmem-device' is not a valid device model name").
 * --net user is QEMU's slirp with its defaults (restrict=off): the guest
 * reaches the host's loopback services through 10.0.2.2, which QEMU 7.2
 * cannot turn off without cutting all egress (FIXME; the kvm engine's
 * libslirp sets disable_host_loopback, vmm/net.c; reliability.md B6).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "../lib/log.h"
#include "../lib/xalloc.h"
#include "child.h"
#include "machine.h"
#include "qmp.h"

#define QEMU_BIN_DEFAULT "qemu-system-x86_64"
/* fds the child sees for its chardevs: machine_child pairs 0, 1, 2 */
#define QEMU_FD_AGENT	(MACHINE_CHILD_FIRST_FD + 0)
#define QEMU_FD_QMP	(MACHINE_CHILD_FIRST_FD + 1)
#define QEMU_FD_CONSOLE (MACHINE_CHILD_FIRST_FD + 2)

struct qemu_machine {
	struct machine m;
	struct machine_child c; /* fd[0] agent, fd[1] QMP (handed to qmp), fd[2] console */
	struct qmp *qmp;
};

static const char *qemu_bin(void)
{
	const char *b = getenv("KAL_QEMU");

	return b && *b ? b : QEMU_BIN_DEFAULT;
}

/* "7.2.22" from `qemu-system-x86_64 --version`, or NULL when it does not run. */
static char *qemu_version(void)
{
	_cleanup_free_ char *cmd = xasprintf("'%s' --version 2>/dev/null", qemu_bin());
	char line[256] = { 0 };
	FILE *p = popen(cmd, "r");
	char *v, *end;

	if (!p)
		return NULL;
	if (!fgets(line, sizeof(line), p))
		line[0] = '\0';
	pclose(p);
	v = strstr(line, "version ");
	if (!v)
		return NULL;
	v += 8;
	end = v + strcspn(v, " \n(");
	return xstrndup(v, (size_t)(end - v));
}

/*
 * Hardware KVM or TCG?  KAL_QEMU_ACCEL=kvm|tcg overrides; otherwise KVM only
 * when the probe runs supervisor-mode code at hardware speed (a nested KVM
 * that emulates kernel mode is ~1000x slower than TCG for a Linux guest).
 */
static const char *qemu_accel(char *why, size_t len)
{
	static const char *cached;
	static char cached_why[160];
	const char *env = getenv("KAL_QEMU_ACCEL");
	struct kal_err *err = NULL;
	double ns;

	if (env && (strcmp(env, "kvm") == 0 || strcmp(env, "tcg") == 0)) {
		snprintf(why, len, "KAL_QEMU_ACCEL=%s", env);
		return env;
	}
	if (!cached) {
		ns = machine_kvm_probe_ns(&err);
		if (ns < 0) {
			snprintf(cached_why, sizeof(cached_why), "no usable kvm: %s", err->msg);
			cached = "tcg";
		} else if (ns > MACHINE_KVM_FAST_NS) {
			snprintf(
			    cached_why, sizeof(cached_why),
			    "kvm emulates kernel mode (%.0f ns per guest kernel-mode instruction)",
			    ns);
			cached = "tcg";
		} else {
			snprintf(cached_why, sizeof(cached_why),
				 "hardware kvm (%.1f ns per instruction)", ns);
			cached = "kvm";
		}
		kal_err_free(err);
	}
	snprintf(why, len, "%s", cached_why);
	return cached;
}

/* Is the QEMU binary on PATH (or at $KAL_QEMU)?  Cheaper than running it. */
static bool qemu_found(void)
{
	const char *bin = qemu_bin(), *path = getenv("PATH");

	if (strchr(bin, '/'))
		return access(bin, X_OK) == 0;
	if (!path)
		path = "/usr/bin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");
		_cleanup_free_ char *p = xasprintf("%.*s/%s", (int)n, path, bin);

		if (n && access(p, X_OK) == 0)
			return true;
		path += n + (path[n] == ':');
	}
	return false;
}

static enum machine_avail qemu_available(char *reason, size_t len)
{
	char why[160];
	const char *accel;

	if (!qemu_found()) {
		snprintf(reason, len, "`%s` not found (apt-get install qemu-system-x86)",
			 qemu_bin());
		return MACHINE_AVAIL_NO;
	}
	accel = qemu_accel(why, sizeof(why));
	snprintf(reason, len, "%s, %s (%s)", qemu_bin(), accel, why);
	/* TCG, or KVM through QEMU: works everywhere, never the fast path */
	return MACHINE_AVAIL_SLOW;
}

static void qemu_describe(char *buf, size_t len)
{
	_cleanup_free_ char *ver = qemu_version();
	char why[160];
	const char *accel = qemu_accel(why, sizeof(why));

	if (!ver)
		snprintf(buf, len, "`%s` does not run", qemu_bin());
	else
		snprintf(buf, len, "qemu %s, accel %s (%s)", ver, accel, why);
}

/* QEMU's option parser splits on ','; a literal comma is written ",,". */
static char *qemu_escape(const char *s)
{
	size_t n = strlen(s), extra = 0;
	char *out, *o;

	for (size_t i = 0; i < n; i++)
		extra += s[i] == ',';
	o = out = xmalloc(n + extra + 1);
	for (size_t i = 0; i < n; i++) {
		*o++ = s[i];
		if (s[i] == ',')
			*o++ = ',';
	}
	*o = '\0';
	return out;
}

static void qemu_build_argv(struct machine_argv *a, const struct machine_config *cfg,
			    const char *accel)
{
	_cleanup_free_ char *cmdline = machine_cmdline(cfg, "blk", 't');
	_cleanup_free_ char *kernel = qemu_escape(cfg->kernel_path);
	_cleanup_free_ char *initrd = qemu_escape(cfg->initrd_path);
	_cleanup_free_ char *upper = qemu_escape(cfg->upper_path);

	machine_arg(a, "%s", qemu_bin());
	machine_arg(a, "-M");
	machine_arg(a, "microvm,acpi=off");
	machine_arg(a, "-nodefaults");
	machine_arg(a, "-no-user-config");
	machine_arg(a, "-nographic");
	machine_arg(a, "-no-reboot");
	if (strcmp(accel, "kvm") == 0) {
		machine_arg(a, "-accel");
		machine_arg(a, "kvm");
		machine_arg(a, "-cpu");
		machine_arg(a, "host");
	} else {
		machine_arg(a, "-accel");
		machine_arg(a, "tcg");
	}
	machine_arg(a, "-m");
	machine_arg(a, "%u", cfg->memory_mib);
	if (cfg->hugepages) {
		machine_arg(a, "-object");
		machine_arg(a, "memory-backend-memfd,id=ram,size=%uM,hugetlb=on,hugetlbsize=2M",
			    cfg->memory_mib);
		machine_arg(a, "-machine");
		machine_arg(a, "memory-backend=ram");
	}
	machine_arg(a, "-smp");
	machine_arg(a, "%u", cfg->vcpus);
	machine_arg(a, "-kernel");
	machine_arg(a, "%s", cfg->kernel_path);
	machine_arg(a, "-initrd");
	machine_arg(a, "%s", cfg->initrd_path);
	machine_arg(a, "-append");
	machine_arg(a, "%s", cmdline);
	/* layers: read-only raw disks; guest writes never reach the cache */
	for (size_t i = 0; i < cfg->n_layers; i++) {
		_cleanup_free_ char *p = qemu_escape(cfg->layers[i].path);

		machine_arg(a, "-drive");
		machine_arg(a, "file=%s,if=none,format=raw,readonly=on,id=l%zu", p, i);
		machine_arg(a, "-device");
		machine_arg(a, "virtio-blk-device,drive=l%zu,serial=kal-layer%zu", i, i);
	}
	machine_arg(a, "-drive");
	machine_arg(a, "file=%s,if=none,format=raw,id=upper,discard=unmap,cache=unsafe", upper);
	machine_arg(a, "-device");
	machine_arg(a, "virtio-blk-device,drive=upper,serial=kal-upper");
	machine_arg(a, "-chardev");
	machine_arg(a, "socket,id=agent,fd=%d", QEMU_FD_AGENT);
	machine_arg(a, "-device");
	machine_arg(a, "virtio-serial-device,max_ports=2");
	machine_arg(a, "-device");
	machine_arg(a, "virtserialport,chardev=agent,name=kal.agent");
	if (cfg->net == MACHINE_NET_USER) {
		_cleanup_free_ char *fwd = xstrdup("");

		/* -p: hostfwd=tcp:IP:HOST-:GUEST (the guest address defaults to 10.0.2.15) */
		for (size_t i = 0; i < cfg->n_publish; i++) {
			struct vmm_forward f;
			char ip[INET_ADDRSTRLEN];
			char *more;

			if (machine_forward_parse(cfg->publish[i], &f, NULL, NULL) < 0)
				continue; /* checked when the VM was created */
			inet_ntop(AF_INET, &f.host_addr, ip, sizeof(ip));
			more = xasprintf("%s,hostfwd=%s:%s:%u-:%u", fwd, f.udp ? "udp" : "tcp", ip,
					 f.host_port, f.guest_port);
			free(fwd);
			fwd = more;
		}
		machine_arg(a, "-netdev");
		machine_arg(a, "user,id=n0%s", fwd);
		machine_arg(a, "-device");
		machine_arg(a, "virtio-net-device,netdev=n0");
	}
	machine_arg(a, "-device");
	machine_arg(a, "virtio-rng-device");
	machine_arg(a, "-chardev");
	machine_arg(a, "socket,id=con,fd=%d", QEMU_FD_CONSOLE);
	machine_arg(a, "-serial");
	machine_arg(a, "chardev:con");
	machine_arg(a, "-chardev");
	machine_arg(a, "socket,id=qmp,fd=%d", QEMU_FD_QMP);
	machine_arg(a, "-mon");
	machine_arg(a, "chardev=qmp,mode=control");
}

/* The command line, shell-quoted, in <state_dir>/qemu.cmdline for debugging. */
static void qemu_save_cmdline(const struct machine_config *cfg, const struct machine_argv *a)
{
	_cleanup_free_ char *path = xasprintf("%s/qemu.cmdline", cfg->state_dir);
	_cleanup_fclose_ FILE *f = fopen(path, "we");

	if (!f)
		return;
	for (size_t i = 0; i < a->n; i++) {
		fputc('\'', f);
		for (const char *p = a->v[i]; *p; p++) {
			if (*p == '\'')
				fputs("'\\''", f);
			else
				fputc(*p, f);
		}
		fputs(i + 1 < a->n ? "' \\\n  " : "'\n", f);
	}
}

static void qemu_free(struct qemu_machine *q)
{
	qmp_close(q->qmp);
	machine_child_free(&q->c);
	free(q);
}

static struct machine *qemu_start(const struct machine_config *cfg, struct kal_err **err)
{
	struct machine_argv a = { 0 };
	struct qemu_machine *q;
	_cleanup_free_ char *logpath = xasprintf("%s/qemu.log", cfg->state_dir);
	char why[160];
	const char *accel = qemu_accel(why, sizeof(why));
	int r;

	qemu_build_argv(&a, cfg, accel);
	qemu_save_cmdline(cfg, &a);
	kal_debug("qemu: accel %s (%s)", accel, why);
	q = xzalloc(sizeof(*q));
	q->m.ops = &machine_qemu_ops;
	r = machine_child_spawn(&q->c, NULL, a.v, 3, logpath, err);
	machine_argv_free(&a);
	if (r < 0) {
		free(q);
		return NULL;
	}
	q->qmp = qmp_open(q->c.fd[1], 10000, err);
	if (!q->qmp) {
		char tail[200];

		machine_child_free(&q->c);
		machine_child_log_tail(logpath, tail, sizeof(tail));
		kal_err_clear(err);
		kal_err_set(err, EIO, "qemu failed to start: %s", tail);
		free(q);
		return NULL;
	}
	q->c.fd[1] = -1; /* the qmp owns it now */
	return &q->m;
}

static int qemu_stop(struct machine *m, int timeout_ms, struct kal_err **err)
{
	struct qemu_machine *q = container_of(m, struct qemu_machine, m);
	struct kal_err *qerr = NULL;

	(void)err;
	if (q->c.reaped)
		return 0;
	if (q->qmp && qmp_command(q->qmp, "quit", NULL, timeout_ms, NULL, &qerr) < 0)
		kal_debug("qemu stop: %s", qerr->msg);
	kal_err_free(qerr);
	machine_child_end(&q->c, timeout_ms);
	return 0;
}

static int qemu_exit_fd(struct machine *m)
{
	return container_of(m, struct qemu_machine, m)->c.pidfd;
}

static int qemu_wait(struct machine *m, char *desc, size_t len)
{
	struct qemu_machine *q = container_of(m, struct qemu_machine, m);

	if (!machine_child_reap(&q->c, false))
		return 0;
	machine_child_describe(&q->c, "qemu", desc, len);
	return 1;
}

static int qemu_agent_fd(struct machine *m)
{
	return container_of(m, struct qemu_machine, m)->c.fd[0];
}

static int qemu_console_fd(struct machine *m)
{
	return container_of(m, struct qemu_machine, m)->c.fd[2];
}

static void qemu_destroy(struct machine *m)
{
	if (m)
		qemu_free(container_of(m, struct qemu_machine, m));
}

const struct machine_ops machine_qemu_ops = {
	.name = "qemu",
	.available = qemu_available,
	.describe = qemu_describe,
	.start = qemu_start,
	.stop = qemu_stop,
	.exit_fd = qemu_exit_fd,
	.wait = qemu_wait,
	.agent_fd = qemu_agent_fd,
	.console_fd = qemu_console_fd,
	.destroy = qemu_destroy,
};
