// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The child half of SPAWN, after fork() and after stdio is in place: resolve
 * the user in the guest's own /etc/passwd, drop privileges, change directory,
 * build the environment (PATH default, HOME, TERM) and exec.  Exec failures
 * map to podman's exit codes: 127 not found, 126 not executable.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"

__attribute__((noreturn, format(printf, 2, 3))) static void child_die(int code, const char *fmt,
								      ...)
{
	char msg[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(msg) - 2)
		n = sizeof(msg) - 2;
	msg[n++] = '\n';
	if (write(2, msg, (size_t)n) < 0) {
		/* nothing left to report to */
	}
	_exit(code);
}

static bool parse_id(const char *s, uint32_t *out)
{
	char *end;
	unsigned long v;

	if (!*s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v >= 0xffffffffUL)
		return false;
	*out = (uint32_t)v;
	return true;
}

static bool env_has(char **env, size_t n, const char *key)
{
	size_t kl = strlen(key);

	for (size_t i = 0; i < n; i++)
		if (!strncmp(env[i], key, kl) && env[i][kl] == '=')
			return true;
	return false;
}

void agent_spawn_child(const struct kal_msg_spawn *m)
{
	uint32_t uid = m->uid, gid = m->gid;
	const char *home = NULL, *name = NULL;
	char user[256], *grp;
	struct passwd *pw = NULL;
	sigset_t all;
	char **env;
	size_t n = 0;
	int rc;

	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);

	/* user: "name", "uid", "name:group" or "uid:gid", looked up in the guest */
	if (m->user[0]) {
		snprintf(user, sizeof(user), "%s", m->user);
		grp = strchr(user, ':');
		if (grp)
			*grp++ = 0;
		if (parse_id(user, &uid))
			pw = getpwuid(uid);
		else if ((pw = getpwnam(user)))
			uid = pw->pw_uid;
		else
			child_die(126, "kal: user `%s`: no such user in the guest's /etc/passwd",
				  user);
		if (pw && gid == KAL_PROTO_ID_UNSET)
			gid = pw->pw_gid;
		if (grp) {
			struct group *g;

			if (!parse_id(grp, &gid)) {
				g = getgrnam(grp);
				if (!g)
					child_die(126,
						  "kal: group `%s`: no such group in the guest",
						  grp);
				gid = g->gr_gid;
			}
		}
	} else if (uid != KAL_PROTO_ID_UNSET) {
		pw = getpwuid(uid);
	}
	if (pw) {
		home = pw->pw_dir;
		name = pw->pw_name;
	}
	if (uid != KAL_PROTO_ID_UNSET) {
		if (gid == KAL_PROTO_ID_UNSET)
			gid = 0;
		if (pw && name) {
			if (initgroups(name, gid) < 0)
				child_die(126, "kal: initgroups `%s`: %s", name, strerror(errno));
		} else if (setgroups(0, NULL) < 0 && errno != EPERM) {
			child_die(126, "kal: setgroups: %s", strerror(errno));
		}
		if (setgid(gid) < 0)
			child_die(126, "kal: setgid %u: %s", gid, strerror(errno));
		if (setuid(uid) < 0)
			child_die(126, "kal: setuid %u: %s", uid, strerror(errno));
	}

	if (m->cwd[0]) {
		if (chdir(m->cwd) < 0)
			child_die(126, "kal: chdir `%s`: %s", m->cwd, strerror(errno));
	} else if (!home || chdir(home) < 0) {
		if (chdir("/") < 0)
			child_die(126, "kal: chdir `/`: %s", strerror(errno));
	}

	env = calloc((size_t)m->envc + 6, sizeof(*env));
	if (!env)
		child_die(126, "kal: out of memory");
	/* later entries win (image Env first, then -e), as in a shell's export */
	for (uint32_t i = 0; i < m->envc; i++) {
		const char *eq = strchr(m->env[i], '=');
		size_t j;

		if (!eq || eq == m->env[i])
			continue;
		for (j = 0; j < n; j++)
			if (!strncmp(env[j], m->env[i], (size_t)(eq - m->env[i]) + 1))
				break;
		env[j] = (char *)m->env[i];
		if (j == n)
			n++;
	}
	if (!env_has(env, n, "PATH"))
		env[n++] = (char *)"PATH=" AGENT_DEFAULT_PATH;
	if (!env_has(env, n, "HOME") && asprintf(&env[n], "HOME=%s", home ? home : "/") > 0)
		n++;
	if (name && !env_has(env, n, "USER") && asprintf(&env[n], "USER=%s", name) > 0)
		n++;
	if (m->term[0] && !env_has(env, n, "TERM") && asprintf(&env[n], "TERM=%s", m->term) > 0)
		n++;
	env[n] = NULL;
	environ = env;

	/* execvp searches the PATH of environ, which is now the session's */
	if (m->flags & KAL_SPAWN_LOGIN) {
		/* login(1) convention: the shell sees "-bash" as its name */
		const char **v = calloc((size_t)m->argc + 1, sizeof(*v));
		const char *base = strrchr(m->argv[0], '/');
		char *dash;

		if (!v || asprintf(&dash, "-%s", base ? base + 1 : m->argv[0]) < 0)
			child_die(126, "kal: out of memory");
		v[0] = dash;
		for (uint32_t i = 1; i < m->argc; i++)
			v[i] = m->argv[i];
		execvp(m->argv[0], (char *const *)v);
	} else {
		execvp(m->argv[0], (char *const *)m->argv);
	}
	rc = errno;
	child_die(rc == ENOENT || rc == ENOTDIR ? 127 : 126, "kal: exec `%s`: %s", m->argv[0],
		  strerror(rc));
}
