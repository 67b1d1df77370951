// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Engine table and selection, the shared kernel command line, and the KVM
 * speed probe that tells hardware KVM apart from a nested KVM that emulates
 * guest kernel mode instruction by instruction (reference/nested-kvm.md).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "../lib/fsutil.h"
#include "../lib/xalloc.h"
#include "kvm.h"
#include "machine.h"

const struct machine_ops *const machine_engines[] = { &machine_kvm_ops, &machine_qemu_ops, NULL };

const struct machine_ops *machine_engine_find(const char *name)
{
	for (size_t i = 0; machine_engines[i]; i++)
		if (strcmp(machine_engines[i]->name, name) == 0)
			return machine_engines[i];
	return NULL;
}

const struct machine_ops *machine_engine_select(const char *want, char *why, size_t len,
						struct kal_err **err)
{
	const struct machine_ops *best = NULL, *slow = NULL, *crawl = NULL;
	char reason[256];
	size_t off = 0;

	if (!want || !*want)
		want = getenv("KAL_ENGINE");
	if (!want || !*want)
		want = "auto";
	if (strcmp(want, "auto") != 0) {
		const struct machine_ops *ops = machine_engine_find(want);

		if (!ops)
			return kal_err_set(err, EINVAL,
					   "unknown engine `%s` (choose kvm, qemu or auto)", want),
			       NULL;
		if (ops->available(reason, sizeof(reason)) == MACHINE_AVAIL_NO)
			return kal_err_set(err, ENODEV, "engine `%s` is not available: %s", want,
					   reason),
			       NULL;
		snprintf(why, len, "%s: asked for (%s)", ops->name, reason);
		return ops;
	}
	why[0] = '\0';
	for (size_t i = 0; machine_engines[i]; i++) {
		const struct machine_ops *ops = machine_engines[i];
		enum machine_avail a = ops->available(reason, sizeof(reason));

		if (off < len)
			off += (size_t)snprintf(why + off, len - off, "%s%s: %s", off ? "; " : "",
						ops->name, reason);
		if (a == MACHINE_AVAIL_YES && !best)
			best = ops;
		if (a == MACHINE_AVAIL_SLOW && !slow)
			slow = ops;
		if (a == MACHINE_AVAIL_CRAWL && !crawl)
			crawl = ops;
	}
	if (!best)
		best = slow ? slow : crawl;
	if (!best)
		return kal_err_set(err, ENODEV, "no engine can run here (%s)", why), NULL;
	if (off < len)
		snprintf(why + off, len - off, "; auto picks %s", best->name);
	return best;
}

char *machine_cmdline(const struct machine_config *cfg, const char *layerdev, char reboot)
{
	return xasprintf("console=ttyS0 quiet panic=-1 reboot=%c kal.layers=%zu kal.layerdev=%s "
			 "kal.upper=kal-upper kal.hostname=%s kal.net=%s kal.channel=port%s%s%s",
			 reboot, cfg->n_layers, layerdev, cfg->name,
			 cfg->net == MACHINE_NET_USER ? "user" : "none",
			 cfg->nested_quirks ? " kal.nested_quirks=1" : "",
			 cfg->extra_cmdline && *cfg->extra_cmdline ? " " : "",
			 cfg->extra_cmdline ? cfg->extra_cmdline : "");
}

char *machine_kernel_find(struct kal_err **err)
{
	const char *env = getenv("KAL_KERNEL");
	char self[4096];
	ssize_t n;

	if (env && *env) {
		if (access(env, R_OK) < 0)
			return kal_err_sys(err, errno, "kernel `%s` (from KAL_KERNEL)", env), NULL;
		return xstrdup(env);
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		char *slash, *path;

		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			path = xasprintf("%s/vmlinux", self);
			if (access(path, R_OK) == 0)
				return path;
			free(path);
		}
	}
	if (access("/usr/local/lib/kal/vmlinux", R_OK) == 0)
		return xstrdup("/usr/local/lib/kal/vmlinux");
	return kal_err_set(err, ENOENT,
			   "no guest kernel found (set KAL_KERNEL, or put vmlinux next to the kal "
			   "binary: `make kernel`)"),
	       NULL;
}

/* ---- KVM speed probe ---------------------------------------------------- */

double machine_kvm_probe_ns(struct kal_err **err)
{
	static double ns;
	static int done; /* 1 = ns valid, -1 = failed with why */
	static char why[256];
	static int why_code;
	struct kal_err *e = NULL;

	/* one probe per process for the engine choice, doctor and `kal __vmm-probe` */
	if (!done) {
		if (vmm_kvm_probe_speed(&ns, &e) < 0) {
			snprintf(why, sizeof(why), "%s", e->msg);
			why_code = e->code;
			kal_err_free(e);
			done = -1;
		} else {
			done = 1;
		}
	}
	if (done < 0)
		return kal_err_set(err, why_code, "%s", why), -1;
	return ns;
}

static int forward_port(const char *s, size_t len, uint16_t *port)
{
	unsigned long v = 0;

	if (len == 0 || len > 5)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v < 1 || v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

int machine_forward_parse(const char *spec, struct vmm_forward *f, char *canon,
			  struct kal_err **err)
{
	const char *slash = strchr(spec, '/'), *end = slash ? slash : spec + strlen(spec);
	const char *c2 = NULL, *c1 = NULL, *ports = spec;
	char ip[INET_ADDRSTRLEN] = "127.0.0.1";
	struct in_addr a;

	*f = (struct vmm_forward){ 0 };
	for (const char *p = spec; p < end; p++)
		if (*p == ':') {
			c1 = c2;
			c2 = p;
		}
	if (slash && strcmp(slash, "/tcp") && strcmp(slash, "/udp"))
		goto bad;
	f->udp = slash && !strcmp(slash, "/udp");
	if (!c2)
		goto bad;
	if (c1) {
		if ((size_t)(c1 - spec) >= sizeof(ip))
			goto bad;
		memcpy(ip, spec, (size_t)(c1 - spec));
		ip[c1 - spec] = '\0';
		ports = c1 + 1;
	}
	if (inet_pton(AF_INET, ip, &a) != 1 ||
	    forward_port(ports, (size_t)(c2 - ports), &f->host_port) < 0 ||
	    forward_port(c2 + 1, (size_t)(end - c2 - 1), &f->guest_port) < 0)
		goto bad;
	f->host_addr = a.s_addr;
	if (canon)
		snprintf(canon, MACHINE_FORWARD_CANON_MAX, "%s:%u:%u/%s", ip, f->host_port,
			 f->guest_port, f->udp ? "udp" : "tcp");
	return 0;
bad:
	return kal_err_set(
	    err, EINVAL, "bad published port `%s` (want [IP:]HOST:GUEST[/tcp|/udp], e.g. 8080:80)",
	    spec);
}

int machine_hugepages_check(unsigned int memory_mib, struct kal_err **err)
{
	static const char path[] = "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages";
	_cleanup_free_ char *buf = NULL;
	unsigned long free_pages, want = (memory_mib + 1) / 2;

	if (kal_read_file(path, 64, &buf, NULL, NULL) < 0)
		return kal_err_set(err, ENOTSUP,
				   "--hugepages: this kernel offers no 2 MiB huge pages (no `%s`)",
				   path);
	free_pages = strtoul(buf, NULL, 10);
	if (free_pages < want)
		return kal_err_set(err, ENOMEM,
				   "--hugepages: %u MiB of guest memory need %lu free 2 MiB huge "
				   "pages, the host has %lu (reserve more: echo N > "
				   "/proc/sys/vm/nr_hugepages)",
				   memory_mib, want, free_pages);
	return 0;
}

void machine_arg(struct machine_argv *a, const char *fmt, ...)
{
	va_list ap;

	a->v = xreallocarray(a->v, a->n + 2, sizeof(char *));
	va_start(ap, fmt);
	a->v[a->n++] = xvasprintf(fmt, ap);
	va_end(ap);
	a->v[a->n] = NULL;
}

void machine_argv_free(struct machine_argv *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
}
