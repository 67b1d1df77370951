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
 * cannot turn off without cutting all egress (FIXME: kvm engine's libslirp
 * sets disable_host_loopback; reliability.md B6).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <poll.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "../lib/fsutil.h"
#include "../lib/log.h"
#include "../lib/xalloc.h"
#include "machine.h"
#include "qmp.h"

#define QEMU_BIN_DEFAULT "qemu-system-x86_64"
/* fds the child sees for its chardevs */
#define QEMU_FD_AGENT	3
#define QEMU_FD_QMP	4
#define QEMU_FD_CONSOLE 5

struct qemu_machine {
	struct machine m;
	pid_t pid;
	int pidfd;
	int agent_fd, console_fd;
	struct qmp *qmp;
	bool reaped;
	int status;
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

struct argv_buf {
	char **v;
	size_t n;
};

static void arg(struct argv_buf *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void arg(struct argv_buf *a, const char *fmt, ...)
{
	va_list ap;

	a->v = xreallocarray(a->v, a->n + 2, sizeof(char *));
	va_start(ap, fmt);
	a->v[a->n++] = xvasprintf(fmt, ap);
	va_end(ap);
	a->v[a->n] = NULL;
}

static void argv_free(struct argv_buf *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
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

static void qemu_build_argv(struct argv_buf *a, const struct machine_config *cfg, const char *accel)
{
	_cleanup_free_ char *cmdline = machine_cmdline(cfg, "blk");
	_cleanup_free_ char *kernel = qemu_escape(cfg->kernel_path);
	_cleanup_free_ char *initrd = qemu_escape(cfg->initrd_path);
	_cleanup_free_ char *upper = qemu_escape(cfg->upper_path);

	arg(a, "%s", qemu_bin());
	arg(a, "-M");
	arg(a, "microvm,acpi=off");
	arg(a, "-nodefaults");
	arg(a, "-no-user-config");
	arg(a, "-nographic");
	arg(a, "-no-reboot");
	if (strcmp(accel, "kvm") == 0) {
		arg(a, "-accel");
		arg(a, "kvm");
		arg(a, "-cpu");
		arg(a, "host");
	} else {
		arg(a, "-accel");
		arg(a, "tcg");
	}
	arg(a, "-m");
	arg(a, "%u", cfg->memory_mib);
	arg(a, "-smp");
	arg(a, "%u", cfg->vcpus);
	arg(a, "-kernel");
	arg(a, "%s", cfg->kernel_path);
	arg(a, "-initrd");
	arg(a, "%s", cfg->initrd_path);
	arg(a, "-append");
	arg(a, "%s", cmdline);
	/* layers: read-only raw disks; guest writes never reach the cache */
	for (size_t i = 0; i < cfg->n_layers; i++) {
		_cleanup_free_ char *p = qemu_escape(cfg->layers[i].path);

		arg(a, "-drive");
		arg(a, "file=%s,if=none,format=raw,readonly=on,id=l%zu", p, i);
		arg(a, "-device");
		arg(a, "virtio-blk-device,drive=l%zu,serial=kal-layer%zu", i, i);
	}
	arg(a, "-drive");
	arg(a, "file=%s,if=none,format=raw,id=upper,discard=unmap,cache=unsafe", upper);
	arg(a, "-device");
	arg(a, "virtio-blk-device,drive=upper,serial=kal-upper");
	arg(a, "-chardev");
	arg(a, "socket,id=agent,fd=%d", QEMU_FD_AGENT);
	arg(a, "-device");
	arg(a, "virtio-serial-device,max_ports=2");
	arg(a, "-device");
	arg(a, "virtserialport,chardev=agent,name=kal.agent");
	if (cfg->net == MACHINE_NET_USER) {
		arg(a, "-netdev");
		arg(a, "user,id=n0");
		arg(a, "-device");
		arg(a, "virtio-net-device,netdev=n0");
	}
	arg(a, "-device");
	arg(a, "virtio-rng-device");
	arg(a, "-chardev");
	arg(a, "socket,id=con,fd=%d", QEMU_FD_CONSOLE);
	arg(a, "-serial");
	arg(a, "chardev:con");
	arg(a, "-chardev");
	arg(a, "socket,id=qmp,fd=%d", QEMU_FD_QMP);
	arg(a, "-mon");
	arg(a, "chardev=qmp,mode=control");
}

/* The command line, shell-quoted, in <state_dir>/qemu.cmdline for debugging. */
static void qemu_save_cmdline(const struct machine_config *cfg, const struct argv_buf *a)
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

/* Last line of qemu.log, for error messages. */
static char *qemu_log_tail(const char *state_dir)
{
	_cleanup_free_ char *path = xasprintf("%s/qemu.log", state_dir);
	_cleanup_free_ char *buf = NULL;
	size_t len;
	char *line;

	if (kal_read_file(path, 1 << 20, &buf, &len, NULL) < 0 || len == 0)
		return xstrdup("no output");
	while (len && buf[len - 1] == '\n')
		buf[--len] = '\0';
	line = strrchr(buf, '\n');
	return xstrdup(line ? line + 1 : buf);
}

static void qemu_free(struct qemu_machine *q)
{
	qmp_close(q->qmp);
	if (q->agent_fd >= 0)
		close(q->agent_fd);
	if (q->console_fd >= 0)
		close(q->console_fd);
	if (q->pidfd >= 0)
		close(q->pidfd);
	free(q);
}

static int qemu_reap(struct qemu_machine *q, bool block)
{
	int st;
	pid_t r;

	if (q->reaped)
		return 1;
	do
		r = waitpid(q->pid, &st, block ? 0 : WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == q->pid || (r < 0 && errno == ECHILD)) {
		q->reaped = true;
		q->status = r == q->pid ? st : 0;
		return 1;
	}
	return 0;
}

static struct machine *qemu_start(const struct machine_config *cfg, struct kal_err **err)
{
	struct argv_buf a = { 0 };
	struct qemu_machine *q;
	_cleanup_free_ char *logpath = xasprintf("%s/qemu.log", cfg->state_dir);
	int sp_agent[2], sp_qmp[2], sp_con[2];
	char why[160];
	const char *accel = qemu_accel(why, sizeof(why));
	int logfd, qmpfd;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp_agent) < 0)
		return kal_err_sys(err, errno, "socketpair"), NULL;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp_qmp) < 0) {
		close(sp_agent[0]);
		close(sp_agent[1]);
		return kal_err_sys(err, errno, "socketpair"), NULL;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp_con) < 0) {
		close(sp_agent[0]);
		close(sp_agent[1]);
		close(sp_qmp[0]);
		close(sp_qmp[1]);
		return kal_err_sys(err, errno, "socketpair"), NULL;
	}
	logfd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	qemu_build_argv(&a, cfg, accel);
	qemu_save_cmdline(cfg, &a);
	kal_debug("qemu: accel %s (%s)", accel, why);

	q = xzalloc(sizeof(*q));
	q->m.ops = &machine_qemu_ops;
	q->pidfd = -1;
	q->agent_fd = sp_agent[0];
	q->console_fd = sp_con[0];
	qmpfd = sp_qmp[0];
	q->pid = fork();
	if (q->pid == 0) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		sigset_t none;

		/* QEMU must not outlive its supervisor */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		dup2(null, 0);
		dup2(null, 1);
		dup2(logfd >= 0 ? logfd : null, 2);
		/*
		 * Move the ends out of the way first (one may already sit on 3..5),
		 * then dup2, which clears FD_CLOEXEC on the targets as QEMU needs.
		 */
		int a_fd = fcntl(sp_agent[1], F_DUPFD_CLOEXEC, 10);
		int q_fd = fcntl(sp_qmp[1], F_DUPFD_CLOEXEC, 10);
		int c_fd = fcntl(sp_con[1], F_DUPFD_CLOEXEC, 10);

		if (a_fd < 0 || q_fd < 0 || c_fd < 0 || dup2(a_fd, QEMU_FD_AGENT) < 0 ||
		    dup2(q_fd, QEMU_FD_QMP) < 0 || dup2(c_fd, QEMU_FD_CONSOLE) < 0)
			_exit(125);
		execvp(a.v[0], a.v);
		dprintf(2, "exec %s: %s\n", a.v[0], strerror(errno));
		_exit(127);
	}
	close(sp_agent[1]);
	close(sp_qmp[1]);
	close(sp_con[1]);
	if (logfd >= 0)
		close(logfd);
	argv_free(&a);
	if (q->pid < 0) {
		close(qmpfd);
		kal_err_sys(err, errno, "fork");
		qemu_free(q);
		return NULL;
	}
	q->pidfd = (int)syscall(SYS_pidfd_open, q->pid, 0);
	if (q->pidfd < 0) {
		kal_err_sys(err, errno, "pidfd_open");
		goto fail;
	}
	q->qmp = qmp_open(qmpfd, 10000, err);
	if (!q->qmp) {
		close(qmpfd);
		goto fail;
	}
	return &q->m;
fail:
	kill(q->pid, SIGKILL);
	qemu_reap(q, true);
	{
		_cleanup_free_ char *tail = qemu_log_tail(cfg->state_dir);

		kal_err_clear(err);
		kal_err_set(err, EIO, "qemu failed to start: %s", tail);
	}
	qemu_free(q);
	return NULL;
}

static int qemu_stop(struct machine *m, int timeout_ms, struct kal_err **err)
{
	struct qemu_machine *q = container_of(m, struct qemu_machine, m);
	struct kal_err *qerr = NULL;
	struct pollfd p = { .fd = q->pidfd, .events = POLLIN };

	if (q->reaped)
		return 0;
	if (q->qmp && qmp_command(q->qmp, "quit", NULL, timeout_ms, NULL, &qerr) < 0)
		kal_debug("qemu stop: %s", qerr->msg);
	kal_err_free(qerr);
	while (poll(&p, 1, timeout_ms) < 0 && errno == EINTR)
		;
	if (!qemu_reap(q, false)) {
		kill(q->pid, SIGKILL);
		qemu_reap(q, true);
	}
	return 0;
}

static int qemu_exit_fd(struct machine *m)
{
	return container_of(m, struct qemu_machine, m)->pidfd;
}

static int qemu_wait(struct machine *m, char *desc, size_t len)
{
	struct qemu_machine *q = container_of(m, struct qemu_machine, m);

	if (!qemu_reap(q, false))
		return 0;
	if (WIFSIGNALED(q->status))
		snprintf(desc, len, "qemu killed by signal %d", WTERMSIG(q->status));
	else
		snprintf(desc, len, "qemu exited with status %d", WEXITSTATUS(q->status));
	return 1;
}

static int qemu_agent_fd(struct machine *m)
{
	return container_of(m, struct qemu_machine, m)->agent_fd;
}

static int qemu_console_fd(struct machine *m)
{
	return container_of(m, struct qemu_machine, m)->console_fd;
}

static void qemu_destroy(struct machine *m)
{
	struct qemu_machine *q;

	if (!m)
		return;
	q = container_of(m, struct qemu_machine, m);
	if (!q->reaped) {
		kill(q->pid, SIGKILL);
		qemu_reap(q, true);
	}
	qemu_free(q);
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
