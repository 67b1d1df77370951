// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * $KAL_HOME/vms/<name>/: names, config.json, the upper disk, liveness through
 * the supervisor's flock, listing and removal.  See vmstate.h for the layout.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../lib/cleanup.h"
#include "../lib/err.h"
#include "../lib/fsutil.h"
#include "../lib/xalloc.h"
#include "vmstate.h"

int vmstate_name_check(const char *name, struct kal_err **err)
{
	size_t n = strlen(name);

	if (n == 0 || n > VMSTATE_NAME_MAX)
		goto bad;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			  (i > 0 && (c == '_' || c == '.' || c == '-'));

		if (!ok)
			goto bad;
	}
	return 0;
bad:
	return kal_err_set(err, EINVAL,
			   "invalid VM name `%s` (use 1-63 of a-z 0-9 _ . -, starting with a "
			   "letter or digit)",
			   name);
}

char *vmstate_dir(const char *home, const char *name)
{
	return xasprintf("%s/vms/%s", home, name);
}

char *vmstate_file(const char *home, const char *name, const char *file)
{
	return xasprintf("%s/vms/%s/%s", home, name, file);
}

char *vmstate_name_generate(const char *home)
{
	static const char *const adj[] = { "brisk", "calm",   "dusty",	"eager", "fuzzy",
					   "giddy", "hazy",   "jolly",	"keen",	 "lucid",
					   "merry", "nimble", "plucky", "quiet", "rusty",
					   "sunny", "tidy",   "vivid",	"witty", "zesty" };
	static const char *const noun[] = { "acacia", "baobab",	 "camel",  "dune",   "eland",
					    "gecko",  "hyena",	 "impala", "jackal", "kudu",
					    "lark",   "meerkat", "oryx",   "plover", "quail",
					    "raven",  "sable",	 "tern",   "veld",   "zebra" };
	unsigned int seed = (unsigned int)time(NULL) ^ (unsigned int)getpid() << 8;

	for (int attempt = 0;; attempt++) {
		unsigned int r = (unsigned int)rand_r(&seed);
		char *name = attempt < 20
				 ? xasprintf("%s-%s", adj[r % ARRAY_SIZE(adj)],
					     noun[(r / 32) % ARRAY_SIZE(noun)])
				 : xasprintf("%s-%s-%u", adj[r % ARRAY_SIZE(adj)],
					     noun[(r / 32) % ARRAY_SIZE(noun)], (r / 1024) % 10000);
		_cleanup_free_ char *dir = vmstate_dir(home, name);
		struct stat st;

		if (lstat(dir, &st) < 0 && errno == ENOENT)
			return name;
		free(name);
	}
}

char *vmstate_sock_path(const char *home, const char *name, struct kal_err **err)
{
	const char *rt = getenv("XDG_RUNTIME_DIR");
	char *path;

	if (rt && *rt == '/')
		path = xasprintf("%s/kal/%s.sock", rt, name);
	else
		path = xasprintf("%s/run/%s.sock", home, name);
	if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		kal_err_set(err, ENAMETOOLONG, "socket path `%s` is too long for a unix socket",
			    path);
		free(path);
		return NULL;
	}
	return path;
}

/* ---- config.json -------------------------------------------------------- */

static char *config_to_json(const struct vm_config *c)
{
	json_object *o = json_object_new_object(), *layers = json_object_new_array();
	char *out;

	json_object_object_add(o, "name", json_object_new_string(c->name));
	json_object_object_add(o, "image", json_object_new_string(c->image ? c->image : ""));
	json_object_object_add(o, "image_digest",
			       json_object_new_string(c->image_digest ? c->image_digest : ""));
	json_object_object_add(o, "engine", json_object_new_string(c->engine));
	json_object_object_add(o, "memory_mib", json_object_new_int64(c->memory_mib));
	json_object_object_add(o, "cpus", json_object_new_int64(c->cpus));
	json_object_object_add(
	    o, "net", json_object_new_string(c->net == MACHINE_NET_USER ? "user" : "none"));
	json_object_object_add(o, "created", json_object_new_int64(c->created));
	json_object_object_add(o, "auto_remove", json_object_new_boolean(c->auto_remove));
	json_object_object_add(o, "hugepages", json_object_new_boolean(c->hugepages));
	json_object_object_add(o, "upper_size", json_object_new_int64((int64_t)c->upper_size));
	for (size_t i = 0; i < c->n_layers; i++) {
		json_object *l = json_object_new_object();

		json_object_object_add(l, "path", json_object_new_string(c->layer_paths[i]));
		json_object_object_add(l, "size",
				       json_object_new_int64((int64_t)c->layer_sizes[i]));
		json_object_array_add(layers, l);
	}
	json_object_object_add(o, "layers", layers);
	{
		json_object *pub = json_object_new_array();

		for (size_t i = 0; i < c->n_publish; i++)
			json_object_array_add(pub, json_object_new_string(c->publish[i]));
		json_object_object_add(o, "publish", pub);
	}
	out = xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
							    JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return out;
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static int64_t jint(json_object *o, const char *key, int64_t def)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return def;
	return json_object_get_int64(v);
}

int vmstate_load(const char *home, const char *name, struct vm_config **out, struct kal_err **err)
{
	_cleanup_free_ char *path = NULL, *buf = NULL;
	struct vm_config *c;
	json_object *o, *layers;
	size_t len;
	const char *s;

	if (vmstate_name_check(name, err) < 0)
		return -1;
	path = vmstate_file(home, name, "config.json");
	if (kal_read_file(path, 1 << 20, &buf, &len, err) < 0) {
		if ((*err)->code == ENOENT) {
			kal_err_clear(err);
			return kal_err_set(err, ENOENT, "no such VM `%s`", name);
		}
		return kal_err_wrap(err, "VM `%s`", name);
	}
	o = json_tokener_parse(buf);
	if (!o || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return kal_err_set(err, EINVAL, "VM `%s`: config.json is not a JSON object", name);
	}
	c = xzalloc(sizeof(*c));
	c->name = xstrdup(name);
	c->image = xstrdup((s = jstr(o, "image")) ? s : "");
	c->image_digest = xstrdup((s = jstr(o, "image_digest")) ? s : "");
	c->engine = xstrdup((s = jstr(o, "engine")) ? s : "qemu");
	c->memory_mib = (unsigned int)jint(o, "memory_mib", 512);
	c->cpus = (unsigned int)jint(o, "cpus", 1);
	c->net =
	    (s = jstr(o, "net")) && strcmp(s, "user") == 0 ? MACHINE_NET_USER : MACHINE_NET_NONE;
	c->created = jint(o, "created", 0);
	c->upper_size = (uint64_t)jint(o, "upper_size", 0);
	{
		json_object *v;

		c->auto_remove =
		    json_object_object_get_ex(o, "auto_remove", &v) && json_object_get_boolean(v);
		c->hugepages =
		    json_object_object_get_ex(o, "hugepages", &v) && json_object_get_boolean(v);
	}
	if (json_object_object_get_ex(o, "layers", &layers) &&
	    json_object_is_type(layers, json_type_array)) {
		size_t n = json_object_array_length(layers);

		c->layer_paths = xcalloc(n + 1, sizeof(char *));
		c->layer_sizes = xcalloc(n + 1, sizeof(uint64_t));
		for (size_t i = 0; i < n; i++) {
			json_object *l = json_object_array_get_idx(layers, i);

			if (!(s = jstr(l, "path")) || *s != '/') {
				json_object_put(o);
				vm_config_free(c);
				return kal_err_set(err, EINVAL,
						   "VM `%s`: config.json: bad layer %zu", name, i);
			}
			c->layer_paths[i] = xstrdup(s);
			c->layer_sizes[i] = (uint64_t)jint(l, "size", 0);
			c->n_layers++;
		}
	}
	if (json_object_object_get_ex(o, "publish", &layers) &&
	    json_object_is_type(layers, json_type_array)) {
		size_t n = json_object_array_length(layers);

		c->publish = xcalloc(n + 1, sizeof(char *));
		for (size_t i = 0; i < n; i++) {
			struct vmm_forward f;

			s = json_object_get_string(json_object_array_get_idx(layers, i));
			if (!s || machine_forward_parse(s, &f, NULL, NULL) < 0) {
				json_object_put(o);
				vm_config_free(c);
				return kal_err_set(err, EINVAL,
						   "VM `%s`: config.json: bad published port %zu",
						   name, i);
			}
			c->publish[c->n_publish++] = xstrdup(s);
		}
	}
	json_object_put(o);
	*out = c;
	return 0;
}

void vm_config_free(struct vm_config *c)
{
	if (!c)
		return;
	free(c->name);
	free(c->image);
	free(c->image_digest);
	free(c->engine);
	for (size_t i = 0; i < c->n_layers; i++)
		free(c->layer_paths[i]);
	free(c->layer_paths);
	free(c->layer_sizes);
	for (size_t i = 0; i < c->n_publish; i++)
		free(c->publish[i]);
	free(c->publish);
	free(c);
}

/* ---- creation ----------------------------------------------------------- */

static int upper_format(const char *path, uint64_t size, struct kal_err **err)
{
	_cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int status;
	pid_t pid;

	if (fd < 0)
		return kal_err_sys(err, errno, "create `%s`", path);
	if (ftruncate(fd, (off_t)size) < 0)
		return kal_err_sys(err, errno, "size `%s`", path);
	pid = fork();
	if (pid < 0)
		return kal_err_sys(err, errno, "fork");
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		dup2(null, 0);
		dup2(null, 1);
		/* lazy init: the guest's ext4 finishes the inode tables in the background */
		execlp("mke2fs", "mke2fs", "-t", "ext4", "-F", "-q", "-m", "0", "-E",
		       "lazy_itable_init=1,lazy_journal_init=1", "-L", "kal-upper", path,
		       (char *)NULL);
		dprintf(2, "mke2fs: %s\n", strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return kal_err_sys(err, errno, "waitpid");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return kal_err_set(err, EIO,
				   "format upper disk: mke2fs failed (is e2fsprogs installed?)");
	return 0;
}

int vmstate_create(const char *home, const struct vm_config *c, struct kal_err **err)
{
	_cleanup_free_ char *vms = xasprintf("%s/vms", home);
	_cleanup_free_ char *dir = vmstate_dir(home, c->name);
	_cleanup_free_ char *json = NULL, *cfg = NULL, *upper = NULL;

	if (vmstate_name_check(c->name, err) < 0)
		return -1;
	if (kal_mkdir_p(vms, 0700, err) < 0)
		return -1;
	if (mkdir(dir, 0700) < 0) {
		if (errno == EEXIST)
			return kal_err_set(err, EEXIST, "a VM named `%s` already exists", c->name);
		return kal_err_sys(err, errno, "create `%s`", dir);
	}
	json = config_to_json(c);
	cfg = vmstate_file(home, c->name, "config.json");
	upper = vmstate_file(home, c->name, "upper.ext4");
	if (kal_atomic_write_file(cfg, json, strlen(json), 0600, err) < 0 ||
	    upper_format(upper, c->upper_size, err) < 0) {
		struct kal_err *e2 = NULL;

		kal_rm_rf(dir, &e2);
		kal_err_free(e2);
		return kal_err_wrap(err, "create VM `%s`", c->name);
	}
	return 0;
}

/* ---- liveness ----------------------------------------------------------- */

int vmstate_lock(const char *home, const char *name, struct kal_err **err)
{
	_cleanup_free_ char *path = vmstate_file(home, name, "lock");
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0)
		return kal_err_sys(err, errno, "open `%s`", path);
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;

		if (e == EINTR)
			continue;
		close(fd);
		if (e == EWOULDBLOCK)
			return kal_err_set(err, EWOULDBLOCK, "VM `%s` is running", name), -1;
		return kal_err_sys(err, e, "lock `%s`", path);
	}
	return fd;
}

enum vmstate_state vmstate_get(const char *home, const char *name, pid_t *pid)
{
	_cleanup_free_ char *dir = vmstate_dir(home, name);
	_cleanup_free_ char *lock = vmstate_file(home, name, "lock");
	_cleanup_free_ char *pidf = vmstate_file(home, name, "supervisor.pid");
	_cleanup_close_ int fd = -1;
	struct stat st;

	if (pid)
		*pid = 0;
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return VMSTATE_MISSING;
	fd = open(lock, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return VMSTATE_CREATED;
	/* a shared probe lock fails only while the supervisor holds its exclusive one */
	if (flock(fd, LOCK_SH | LOCK_NB) == 0)
		return VMSTATE_CREATED;
	if (pid) {
		char buf[32] = { 0 };
		_cleanup_close_ int pfd = open(pidf, O_RDONLY | O_CLOEXEC);

		if (pfd >= 0 && read(pfd, buf, sizeof(buf) - 1) > 0)
			*pid = (pid_t)strtol(buf, NULL, 10);
	}
	return VMSTATE_RUNNING;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int vmstate_list(const char *home, char ***names, size_t *n, struct kal_err **err)
{
	_cleanup_free_ char *vms = xasprintf("%s/vms", home);
	_cleanup_closedir_ DIR *d = opendir(vms);
	struct dirent *de;
	char **v = NULL;
	size_t cnt = 0;

	*names = NULL;
	*n = 0;
	if (!d) {
		if (errno == ENOENT)
			return 0;
		return kal_err_sys(err, errno, "open `%s`", vms);
	}
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || vmstate_name_check(de->d_name, NULL) < 0)
			continue;
		v = xreallocarray(v, cnt + 1, sizeof(char *));
		v[cnt++] = xstrdup(de->d_name);
	}
	if (cnt)
		qsort(v, cnt, sizeof(char *), cmp_str);
	*names = v;
	*n = cnt;
	return 0;
}

int vmstate_remove(const char *home, const char *name, struct kal_err **err)
{
	_cleanup_free_ char *sock = vmstate_sock_path(home, name, NULL);
	_cleanup_close_ int lock = -1;

	if (vmstate_name_check(name, err) < 0)
		return -1;
	if (vmstate_get(home, name, NULL) == VMSTATE_MISSING)
		return kal_err_set(err, ENOENT, "no such VM `%s`", name);
	/* hold the lock while deleting so a supervisor cannot start underneath */
	lock = vmstate_lock(home, name, err);
	if (lock < 0)
		return -1;
	if (sock)
		unlink(sock);
	return vmstate_discard(home, name, err);
}

int vmstate_discard(const char *home, const char *name, struct kal_err **err)
{
	_cleanup_free_ char *dir = vmstate_dir(home, name);
	_cleanup_free_ char *gone = xasprintf("%s/vms/.rm-%s-%d", home, name, (int)getpid());

	/* the name disappears at once (rename), the files follow */
	if (rename(dir, gone) < 0)
		return kal_err_sys(err, errno, "remove VM `%s`", name);
	if (kal_rm_rf(gone, err) < 0)
		return kal_err_wrap(err, "remove VM `%s`", name);
	return 0;
}
