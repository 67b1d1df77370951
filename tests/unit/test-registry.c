// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Registry client against real servers: Debian's docker-registry on a free
 * loopback port, with tests/fixtures/regproxy.py in front of it for auth,
 * tampering, stalls and redirects.  Test content is pushed through the
 * registry API at setup.  Skipped when docker-registry or python3 is missing.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "imagecache/digest.h"
#include "imagecache/manifest.h"
#include "imagecache/registry-auth.h"
#include "imagecache/registry.h"
#include "lib/cleanup.h"
#include "lib/err.h"
#include "lib/fsutil.h"
#include "lib/xalloc.h"

#define LAYER_SIZE 200000

static struct {
	bool ok;
	char dir[64];
	pid_t reg_pid;
	int reg_port;
	char regaddr[64]; /* "127.0.0.1:PORT" */
	char *proxy_script;
	struct ic_digest layer, config, manifest, index;
	char *layer_data;
	char *manifest_body;
} T;

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t l = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static bool port_open(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	bool ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;

	close(fd);
	return ok;
}

/* Start argv with stdout on a pipe (when out_fd) and stderr into logpath. */
static pid_t spawn(const char *const argv[], const char *logpath, int *out_fd)
{
	int p[2] = { -1, -1 };
	pid_t pid;

	if (out_fd)
		assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int lfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);

		setpgid(0, 0);
		if (lfd >= 0) {
			dup2(lfd, 2);
			if (!out_fd)
				dup2(lfd, 1);
		}
		if (out_fd)
			dup2(p[1], 1);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	if (out_fd) {
		close(p[1]);
		*out_fd = p[0];
	}
	return pid;
}

static void stop(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* --- pushing test content over the registry API ---------------------------- */

static size_t hdr_location(char *buf, size_t size, size_t n, void *arg)
{
	char **loc = arg;

	if (strncasecmp(buf, "location:", 9) == 0) {
		char *v = buf + 9;

		while (*v == ' ')
			v++;
		free(*loc);
		*loc = xstrndup(v, strcspn(v, "\r\n"));
	}
	return size * n;
}

static size_t sink_discard(char *buf, size_t size, size_t n, void *arg)
{
	return size * n;
}

static long http_do(const char *method, const char *url, const char *ctype, const void *body,
		    size_t len, char **location)
{
	CURL *h = curl_easy_init();
	struct curl_slist *hdrs = NULL;
	_cleanup_free_ char *ct = NULL;
	long code = 0;

	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink_discard);
	if (location) {
		curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, hdr_location);
		curl_easy_setopt(h, CURLOPT_HEADERDATA, location);
	}
	if (body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)len);
	} else if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
	}
	ct = xasprintf("Content-Type: %s", ctype ? ctype : "application/octet-stream");
	hdrs = curl_slist_append(hdrs, ct);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	if (curl_easy_perform(h) == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	return code;
}

static void push_blob(const char *repo, const void *data, size_t len, struct ic_digest *d)
{
	_cleanup_free_ char *url = NULL, *loc = NULL, *put = NULL;
	char ds[IC_DIGEST_STR_LEN + 1];

	ic_digest_buf(data, len, d);
	url = xasprintf("http://%s/v2/%s/blobs/uploads/", T.regaddr, repo);
	assert_int_equal(http_do("POST", url, NULL, NULL, 0, &loc), 202);
	assert_non_null(loc);
	put = xasprintf("%s%cdigest=%s", loc, strchr(loc, '?') ? '&' : '?', ic_digest_str(d, ds));
	assert_int_equal(http_do("PUT", put, NULL, data, len, NULL), 201);
}

static void push_manifest(const char *repo, const char *ref, const char *mt, const char *body,
			  struct ic_digest *d)
{
	_cleanup_free_ char *url = xasprintf("http://%s/v2/%s/manifests/%s", T.regaddr, repo, ref);

	if (d)
		ic_digest_buf(body, strlen(body), d);
	assert_int_equal(http_do("PUT", url, mt, body, strlen(body), NULL), 201);
}

static void push_image(const char *repo)
{
	char ld[IC_DIGEST_STR_LEN + 1], cd[IC_DIGEST_STR_LEN + 1], md[IC_DIGEST_STR_LEN + 1];
	_cleanup_free_ char *config = NULL, *index = NULL;
	struct ic_digest diff;

	ic_digest_buf("diff", 4, &diff);
	config = xasprintf("{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Cmd\":"
			   "[\"/bin/sh\"]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"%s\"]}}",
			   ic_digest_str(&diff, ld));
	push_blob(repo, T.layer_data, LAYER_SIZE, &T.layer);
	push_blob(repo, config, strlen(config), &T.config);
	free(T.manifest_body);
	T.manifest_body = xasprintf(
	    "{\"schemaVersion\":2,\"mediaType\":\"" IC_MT_OCI_MANIFEST "\",\"config\":{"
	    "\"mediaType\":\"" IC_MT_OCI_CONFIG "\",\"digest\":\"%s\",\"size\":%zu},"
	    "\"layers\":[{\"mediaType\":\"" IC_MT_OCI_LAYER_GZIP "\",\"digest\":\"%s\","
	    "\"size\":%d}]}",
	    ic_digest_str(&T.config, cd), strlen(config), ic_digest_str(&T.layer, ld), LAYER_SIZE);
	push_manifest(repo, "v1", IC_MT_OCI_MANIFEST, T.manifest_body, &T.manifest);
	index = xasprintf("{\"schemaVersion\":2,\"mediaType\":\"" IC_MT_OCI_INDEX "\","
			  "\"manifests\":[{\"mediaType\":\"" IC_MT_OCI_MANIFEST "\",\"digest\":"
			  "\"%s\",\"size\":%zu,\"platform\":{\"os\":\"linux\",\"architecture\":"
			  "\"amd64\"}}]}",
			  ic_digest_str(&T.manifest, md), strlen(T.manifest_body));
	push_manifest(repo, "multi", IC_MT_OCI_INDEX, index, &T.index);
}

static int group_setup(void **state)
{
	_cleanup_free_ char *cfg = NULL, *cfgpath = NULL, *logpath = NULL;
	const char *src = getenv("KAL_SRCDIR");

	(void)state;
	memset(&T, 0, sizeof(T));
	curl_global_init(CURL_GLOBAL_DEFAULT);
	T.proxy_script = xasprintf("%s/tests/fixtures/regproxy.py", src ? src : ".");
	if (access("/usr/bin/docker-registry", X_OK) != 0 || access(T.proxy_script, R_OK) != 0 ||
	    system("python3 -c '' 2>/dev/null") != 0)
		return 0;
	strcpy(T.dir, "/tmp/kal-regtest-XXXXXX");
	assert_non_null(mkdtemp(T.dir));
	T.reg_port = free_port();
	snprintf(T.regaddr, sizeof(T.regaddr), "127.0.0.1:%d", T.reg_port);
	cfg = xasprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
			"    rootdirectory: %s/data\nhttp:\n  addr: %s\n",
			T.dir, T.regaddr);
	cfgpath = xasprintf("%s/registry.yml", T.dir);
	logpath = xasprintf("%s/registry.log", T.dir);
	assert_int_equal(kal_atomic_write_file(cfgpath, cfg, strlen(cfg), 0644, NULL), 0);
	{
		const char *argv[] = { "docker-registry", "serve", cfgpath, NULL };

		T.reg_pid = spawn(argv, logpath, NULL);
	}
	for (int i = 0; i < 200 && !port_open(T.reg_port); i++)
		usleep(50 * 1000);
	if (!port_open(T.reg_port)) {
		fprintf(stderr, "# docker-registry did not start, see %s\n", logpath);
		return -1;
	}
	T.layer_data = xmalloc(LAYER_SIZE);
	for (size_t i = 0; i < LAYER_SIZE; i++)
		T.layer_data[i] = (char)(i * 7 + i / 251);
	push_image("library/hello");
	push_image("test/app");
	T.ok = true;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	stop(T.reg_pid);
	/* KAL_TEST_KEEP=1 keeps the registry data, proxy logs and stderr for a look */
	if (T.dir[0] && !getenv("KAL_TEST_KEEP"))
		kal_rm_rf(T.dir, NULL);
	free(T.layer_data);
	free(T.manifest_body);
	free(T.proxy_script);
	return 0;
}

#define NEED_SERVERS()                                                                             \
	do {                                                                                       \
		if (!T.ok)                                                                         \
			skip();                                                                    \
	} while (0)

/* --- regproxy ----------------------------------------------------------------- */

struct proxy {
	pid_t pid;
	int port;
	char addr[64];
	char log[128];
	int out_fd; /* its stdout, kept open while it runs */
};

/* Start regproxy.py with extra flags (NULL-terminated) in front of the registry. */
static void proxy_start(struct proxy *p, ...)
{
	const char *argv[32];
	int n = 0, fd;
	va_list ap;
	char up[96], buf[32] = "";
	_cleanup_free_ char *errlog = xasprintf("%s/proxy.err", T.dir);
	struct pollfd pfd;
	ssize_t r;

	snprintf(up, sizeof(up), "http://%s", T.regaddr);
	snprintf(p->log, sizeof(p->log), "%s/proxy-%d.log", T.dir, rand());
	argv[n++] = "python3";
	argv[n++] = T.proxy_script;
	argv[n++] = "--upstream";
	argv[n++] = up;
	argv[n++] = "--log";
	argv[n++] = p->log;
	va_start(ap, p);
	for (const char *a; (a = va_arg(ap, const char *)) && n < 30;)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	p->pid = spawn(argv, errlog, &fd);
	pfd.fd = fd;
	pfd.events = POLLIN;
	assert_int_equal(poll(&pfd, 1, 10000), 1);
	r = read(fd, buf, sizeof(buf) - 1);
	p->out_fd = fd;
	assert_true(r > 0);
	p->port = atoi(buf);
	assert_true(p->port > 0);
	snprintf(p->addr, sizeof(p->addr), "127.0.0.1:%d", p->port);
}

static void proxy_stop(struct proxy *p)
{
	stop(p->pid);
	close(p->out_fd);
}

/* lines of a proxy log containing needle (and needle2 when not NULL) */
static int count_lines2(const char *path, const char *needle, const char *needle2)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int n = 0;

	if (kal_read_file(path, 1 << 20, &buf, &len, NULL) < 0)
		return 0;
	for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n"))
		if (strstr(l, needle) && (!needle2 || strstr(l, needle2)))
			n++;
	return n;
}

static int count_lines(const char *path, const char *needle)
{
	return count_lines2(path, needle, NULL);
}

static struct ic_registry *reg_new(const char *domain, struct ic_registry_opts *o)
{
	struct kal_err *err = NULL;
	struct ic_registry *r = ic_registry_new(domain, o, &err);

	if (!r)
		fail_msg("ic_registry_new: %s", err->msg);
	return r;
}

static int tmpfile_fd(void)
{
	_cleanup_free_ char *p = xasprintf("%s/blob-XXXXXX", T.dir);
	int fd = mkstemp(p);

	assert_true(fd >= 0);
	unlink(p);
	return fd;
}

static void expect_manifest_ok(struct ic_registry *r, const char *repo, const char *ref)
{
	struct kal_err *err = NULL;
	char *body = NULL, *mt = NULL;
	size_t len;
	struct ic_digest d;

	if (ic_registry_get_manifest(r, repo, ref, &body, &len, &mt, &d, &err) < 0)
		fail_msg("get_manifest: %s", err->msg);
	assert_string_equal(mt, IC_MT_OCI_MANIFEST);
	assert_int_equal(len, strlen(T.manifest_body));
	assert_memory_equal(body, T.manifest_body, len);
	assert_true(ic_digest_equal(&d, &T.manifest));
	free(body);
	free(mt);
}

static char *expect_manifest_err(struct ic_registry *r, const char *repo, const char *ref)
{
	struct kal_err *err = NULL;
	char *body = NULL, *mt = NULL, *msg;
	size_t len;
	struct ic_digest d;

	assert_int_equal(ic_registry_get_manifest(r, repo, ref, &body, &len, &mt, &d, &err), -1);
	assert_non_null(err);
	assert_null(body);
	msg = xstrdup(err->msg);
	kal_err_free(err);
	return msg;
}

static void expect_blob_ok(struct ic_registry *r, const char *repo)
{
	struct kal_err *err = NULL;
	_cleanup_close_ int fd = tmpfile_fd();
	_cleanup_free_ char *buf = NULL;
	struct stat st;

	if (ic_registry_get_blob(r, repo, &T.layer, LAYER_SIZE, fd, NULL, NULL, &err) < 0)
		fail_msg("get_blob: %s", err->msg);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, LAYER_SIZE);
	buf = xmalloc(LAYER_SIZE);
	assert_int_equal(pread(fd, buf, LAYER_SIZE, 0), LAYER_SIZE);
	assert_memory_equal(buf, T.layer_data, LAYER_SIZE);
}

static char *expect_blob_err(struct ic_registry *r, const char *repo, uint64_t size)
{
	struct kal_err *err = NULL;
	_cleanup_close_ int fd = tmpfile_fd();
	char *msg;

	assert_int_equal(ic_registry_get_blob(r, repo, &T.layer, size, fd, NULL, NULL, &err), -1);
	assert_non_null(err);
	msg = xstrdup(err->msg);
	kal_err_free(err);
	return msg;
}

/* --- tests -------------------------------------------------------------------- */

static void test_manifest_direct(void **state)
{
	struct ic_registry *r;
	char ds[IC_DIGEST_STR_LEN + 1];
	struct kal_err *err = NULL;
	char *body = NULL, *mt = NULL;
	size_t len;
	struct ic_digest d;
	struct ic_index idx;
	const struct ic_descriptor *sel;

	NEED_SERVERS();
	r = reg_new(T.regaddr, NULL);
	expect_manifest_ok(r, "test/app", "v1");
	/* by digest: verified against the reference */
	expect_manifest_ok(r, "test/app", ic_digest_str(&T.manifest, ds));
	/* the index, and platform selection from it */
	assert_int_equal(
	    ic_registry_get_manifest(r, "test/app", "multi", &body, &len, &mt, &d, &err), 0);
	assert_string_equal(mt, IC_MT_OCI_INDEX);
	assert_true(ic_digest_equal(&d, &T.index));
	assert_int_equal(ic_index_parse(body, len, mt, &idx, &err), 0);
	assert_int_equal(ic_index_select(&idx, NULL, &sel, &err), 0);
	assert_true(ic_digest_equal(&sel->digest, &T.manifest));
	ic_index_free(&idx);
	free(body);
	free(mt);
	ic_registry_free(r);
}

static void test_manifest_unknown(void **state)
{
	struct ic_registry *r;
	_cleanup_free_ char *m1 = NULL, *m2 = NULL, *m3 = NULL;

	NEED_SERVERS();
	r = reg_new(T.regaddr, NULL);
	m1 = expect_manifest_err(r, "test/app", "nope");
	assert_string_equal(m1, "manifest unknown: `test/app:nope`");
	m2 = expect_manifest_err(r, "test/App", "v1");
	assert_string_equal(m2, "invalid repository name `test/App`");
	m3 = expect_manifest_err(r, "test/app", "sha256:../../etc/passwd");
	assert_string_equal(m3, "invalid digest `sha256:../../etc/passwd`: want 64 lowercase hex "
				"characters");
	ic_registry_free(r);
}

static void test_blob_direct(void **state)
{
	struct ic_registry *r;
	_cleanup_free_ char *m1 = NULL, *m2 = NULL, *want = NULL;
	char ds[IC_DIGEST_STR_LEN + 1];

	NEED_SERVERS();
	r = reg_new(T.regaddr, NULL);
	expect_blob_ok(r, "test/app");
	/* never accept more than the descriptor says */
	m1 = expect_blob_err(r, "test/app", LAYER_SIZE - 1);
	assert_non_null(strstr(m1, "blob larger than its descriptor size"));
	/* a blob the registry does not have */
	m2 = expect_blob_err(r, "test/other", LAYER_SIZE);
	want = xasprintf("blob unknown: `%s`", ic_digest_str(&T.layer, ds));
	assert_string_equal(m2, want);
	ic_registry_free(r);
}

static void progress_cb(void *arg, uint64_t done, uint64_t total)
{
	uint64_t *last = arg;

	assert_true(done >= *last);
	assert_int_equal(total, LAYER_SIZE);
	*last = done;
}

static void test_blob_progress_offset(void **state)
{
	struct ic_registry *r;
	struct kal_err *err = NULL;
	_cleanup_close_ int fd = tmpfile_fd();
	uint64_t last = 0;
	struct stat st;

	NEED_SERVERS();
	r = reg_new(T.regaddr, NULL);
	/* written from the fd's current offset */
	assert_int_equal(write(fd, "HDR", 3), 3);
	assert_int_equal(
	    ic_registry_get_blob(r, "test/app", &T.layer, LAYER_SIZE, fd, progress_cb, &last, &err),
	    0);
	assert_int_equal(last, LAYER_SIZE);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, LAYER_SIZE + 3);
	ic_registry_free(r);
}

static void test_connect_refused(void **state)
{
	struct ic_registry *r;
	char addr[64];
	_cleanup_free_ char *m = NULL, *want = NULL;

	NEED_SERVERS();
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", free_port());
	r = reg_new(addr, NULL);
	m = expect_manifest_err(r, "test/app", "v1");
	want = xasprintf("registry `%s`: connect: Connection refused", addr);
	assert_string_equal(m, want);
	ic_registry_free(r);

	/* IPv6 loopback: plain http, brackets kept in the URL and the message */
	snprintf(addr, sizeof(addr), "[::1]:%d", free_port());
	r = reg_new(addr, NULL);
	free(m);
	free(want);
	m = expect_manifest_err(r, "test/app", "v1");
	want = xasprintf("registry `%s`: connect: ", addr);
	assert_true(strncmp(m, want, strlen(want)) == 0);
	ic_registry_free(r);

	/* domains that could smuggle a path or credentials into the URL */
	{
		struct kal_err *err = NULL;

		assert_null(ic_registry_new("evil.com/x", NULL, &err));
		assert_string_equal(err->msg, "invalid registry domain `evil.com/x`");
		kal_err_clear(&err);
		assert_null(ic_registry_new("user@evil.com", NULL, &err));
		assert_string_equal(err->msg, "invalid registry domain `user@evil.com`");
		kal_err_clear(&err);
	}
}

static void test_bearer(void **state)
{
	struct proxy p;
	struct ic_registry *r;

	NEED_SERVERS();
	proxy_start(&p, "--bearer", NULL);
	r = reg_new(p.addr, NULL);
	expect_manifest_ok(r, "test/app", "v1");
	expect_blob_ok(r, "test/app");
	expect_blob_ok(r, "test/app");
	/* one token for the scope, reused by later requests */
	assert_int_equal(count_lines(p.log, "main GET /token auth=no"), 1);
	assert_int_equal(count_lines(p.log, "main GET /v2/test/app/blobs/sha256:"), 2);
	assert_int_equal(count_lines2(p.log, "/blobs/sha256:", "auth=no"), 0);
	ic_registry_free(r);
	proxy_stop(&p);
}

/* Endless or stalled answers end in bounded, clear errors. */
static void test_hostile_transport(void **state)
{
	struct proxy p;
	struct ic_registry *r;
	struct ic_registry_opts o = { .idle_timeout_s = 2 };
	_cleanup_free_ char *m1 = NULL, *m2 = NULL, *m3 = NULL, *m4 = NULL, *want = NULL;

	NEED_SERVERS();
	proxy_start(&p, "--endless-manifest", NULL);
	r = reg_new(p.addr, &o);
	m1 = expect_manifest_err(r, "test/app", "v1");
	assert_string_equal(m1, "manifest: larger than 4194304 bytes");
	ic_registry_free(r);
	proxy_stop(&p);

	proxy_start(&p, "--endless-error", NULL);
	r = reg_new(p.addr, &o);
	m2 = expect_manifest_err(r, "test/app", "v1");
	want = xasprintf("registry `%s`: server error (HTTP 500)", p.addr);
	assert_string_equal(m2, want);
	ic_registry_free(r);
	proxy_stop(&p);

	proxy_start(&p, "--stall-headers", NULL);
	r = reg_new(p.addr, &o);
	m3 = expect_manifest_err(r, "test/app", "v1");
	free(want);
	want = xasprintf("registry `%s`: no data received for 2 s", p.addr);
	assert_string_equal(m3, want);
	ic_registry_free(r);
	proxy_stop(&p);

	proxy_start(&p, "--redirect-loop", NULL);
	r = reg_new(p.addr, &o);
	m4 = expect_blob_err(r, "test/app", LAYER_SIZE);
	free(want);
	want = xasprintf("registry `%s`: too many redirects", p.addr);
	assert_string_equal(m4, want);
	assert_int_equal(count_lines(p.log, "main GET /v2/test/app/blobs/"), 6);
	ic_registry_free(r);
	proxy_stop(&p);
}

struct thread_arg {
	struct ic_registry *reg;
	int rc;
	char msg[256];
};

static void *blob_thread(void *p)
{
	struct thread_arg *a = p;
	struct kal_err *err = NULL;
	_cleanup_free_ char *path = xasprintf("%s/thr-XXXXXX", T.dir);
	int fd = mkstemp(path);
	struct stat st;

	unlink(path);
	for (int i = 0; i < 3 && a->rc == 0; i++) {
		if (ftruncate(fd, 0) < 0 || lseek(fd, 0, SEEK_SET) < 0)
			a->rc = -1;
		a->rc = ic_registry_get_blob(a->reg, "test/app", &T.layer, LAYER_SIZE, fd, NULL,
					     NULL, &err);
		if (a->rc == 0 && (fstat(fd, &st) < 0 || st.st_size != LAYER_SIZE))
			a->rc = -2;
	}
	if (err)
		snprintf(a->msg, sizeof(a->msg), "%s", err->msg);
	kal_err_free(err);
	close(fd);
	return NULL;
}

/* One registry shared by parallel downloads (the puller's use): token cache under a lock. */
static void test_parallel_downloads(void **state)
{
	struct proxy p;
	struct ic_registry *r;
	pthread_t th[4];
	struct thread_arg args[4];
	int tokens;

	NEED_SERVERS();
	proxy_start(&p, "--bearer", NULL);
	r = reg_new(p.addr, NULL);
	for (int i = 0; i < 4; i++) {
		args[i] = (struct thread_arg){ .reg = r };
		assert_int_equal(pthread_create(&th[i], NULL, blob_thread, &args[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		if (args[i].rc != 0)
			fail_msg("thread %d: %d %s", i, args[i].rc, args[i].msg);
	}
	/* threads racing for the first token may each fetch one; later requests reuse it */
	tokens = count_lines(p.log, "main GET /token");
	assert_true(tokens >= 1 && tokens <= 4);
	assert_int_equal(count_lines2(p.log, "main GET /v2/test/app/blobs/sha256:", "auth=yes"),
			 12);
	ic_registry_free(r);
	proxy_stop(&p);
}

static void write_docker_config(const char *path, const char *key, const char *userpass)
{
	_cleanup_free_ char *b64 = xmalloc(4 * strlen(userpass) + 8), *json = NULL;
	FILE *f;

	{
		/* tiny base64 for the test */
		static const char tbl[] =
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
		const unsigned char *s = (const unsigned char *)userpass;
		size_t n = strlen(userpass), o = 0;

		for (size_t i = 0; i < n; i += 3) {
			unsigned v = s[i] << 16 | (i + 1 < n ? s[i + 1] << 8 : 0) |
				     (i + 2 < n ? s[i + 2] : 0);

			b64[o++] = tbl[(v >> 18) & 63];
			b64[o++] = tbl[(v >> 12) & 63];
			b64[o++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
			b64[o++] = i + 2 < n ? tbl[v & 63] : '=';
		}
		b64[o] = '\0';
	}
	json = xasprintf("{\"auths\": {\"%s\": {\"auth\": \"%s\"}}}", key, b64);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(json, f);
	fclose(f);
}

static void test_bearer_with_basic(void **state)
{
	struct proxy p;
	struct ic_registry *r;
	struct ic_registry_opts o = { 0 };
	_cleanup_free_ char *cfg = xasprintf("%s/docker-bb.json", T.dir), *key = NULL, *m = NULL,
			    *nocfg = xasprintf("%s/none.json", T.dir);

	NEED_SERVERS();
	proxy_start(&p, "--bearer", "--basic", "alice:s3cret", NULL);
	key = xasprintf("https://%s", p.addr);
	write_docker_config(cfg, key, "alice:s3cret");
	o.docker_config = cfg;
	r = reg_new(p.addr, &o);
	expect_manifest_ok(r, "test/app", "v1");
	/* the realm is on the registry's own host: the credentials went to /token */
	assert_int_equal(count_lines(p.log, "main GET /token auth=yes"), 1);
	ic_registry_free(r);

	/* without credentials the token endpoint refuses */
	o.docker_config = nocfg;
	r = reg_new(p.addr, &o);
	m = expect_manifest_err(r, "test/app", "v1");
	assert_non_null(strstr(m, "token: registry `"));
	assert_non_null(strstr(m, "unauthorized: authentication required (HTTP 401)"));
	ic_registry_free(r);
	proxy_stop(&p);
}

static void test_basic(void **state)
{
	struct proxy p;
	struct ic_registry *r;
	struct ic_registry_opts o = { 0 };
	_cleanup_free_ char *cfg = xasprintf("%s/docker-b.json", T.dir), *m = NULL, *want = NULL,
			    *nocfg = xasprintf("%s/none.json", T.dir);

	NEED_SERVERS();
	proxy_start(&p, "--basic", "bob:pw", NULL);
	write_docker_config(cfg, p.addr, "bob:pw");
	o.docker_config = cfg;
	r = reg_new(p.addr, &o);
	expect_manifest_ok(r, "test/app", "v1");
	expect_blob_ok(r, "test/app");
	ic_registry_free(r);

	o.docker_config = nocfg;
	r = reg_new(p.addr, &o);
	m = expect_manifest_err(r, "test/app", "v1");
	want = xasprintf("registry `%s`: unauthorized: authentication required (no credentials "
			 "for `%s` in the docker config)",
			 p.addr, p.addr);
	assert_string_equal(m, want);
	ic_registry_free(r);

	/* wrong password */
	write_docker_config(cfg, p.addr, "bob:wrong");
	o.docker_config = cfg;
	r = reg_new(p.addr, &o);
	free(m);
	m = expect_manifest_err(r, "test/app", "v1");
	free(want);
	want = xasprintf("registry `%s`: unauthorized: authentication required (HTTP 401)", p.addr);
	assert_string_equal(m, want);
	ic_registry_free(r);
	proxy_stop(&p);
}

static void test_tamper(void **state)
{
	struct proxy p;
	struct ic_registry *r;
	char ds[IC_DIGEST_STR_LEN + 1];
	_cleanup_free_ char *m = NULL, *want = NULL;

	NEED_SERVERS();
	ic_digest_str(&T.layer, ds);
	proxy_start(&p, "--tamper-blob", ds, NULL);
	r = reg_new(p.addr, NULL);
	m = expect_blob_err(r, "test/app", LAYER_SIZE);
	want = xasprintf("digest mismatch (want %s, got sha256:", ds);
	assert_true(strncmp(m, want, strlen(want)) == 0);
	assert_int_equal(strlen(m), strlen(want) + 64 + 1);
	ic_registry_free(r);
	proxy_stop(&p);
}

static void test_short_and_long(void **state)
{
	struct proxy p;
	struct ic_registry *r;
	char ds[IC_DIGEST_STR_LEN + 1];
	_cleanup_free_ char *m = NULL, *m2 = NULL, *want = NULL;

	NEED_SERVERS();
	ic_digest_str(&T.layer, ds);
	proxy_start(&p, "--short-blob", ds, NULL);
	r = reg_new(p.addr, NULL);
	m = expect_blob_err(r, "test/app", LAYER_SIZE);
	want = xasprintf("blob shorter than its descriptor size (got %d of %d bytes)",
			 LAYER_SIZE / 2, LAYER_SIZE);
	assert_string_equal(m, want);
	ic_registry_free(r);
	proxy_stop(&p);

	proxy_start(&p, "--long-blob", ds, NULL);
	r = reg_new(p.addr, NULL);
	m2 = expect_blob_err(r, "test/app", LAYER_SIZE);
	assert_non_null(strstr(m2, "blob larger than its descriptor size"));
	ic_registry_free(r);
	proxy_stop(&p);
}

/* A connection dropped mid-body is retried once; the retry starts from the call's offset. */
static void test_dropped_connection_retry(void **state)
{
	struct proxy p;
	struct ic_registry *r;
	char ds[IC_DIGEST_STR_LEN + 1];
	struct kal_err *err = NULL;
	_cleanup_close_ int fd = tmpfile_fd();
	_cleanup_free_ char *buf = xmalloc(LAYER_SIZE + 2);
	struct stat st;

	NEED_SERVERS();
	ic_digest_str(&T.layer, ds);
	proxy_start(&p, "--drop-blob-once", ds, NULL);
	r = reg_new(p.addr, NULL);
	assert_int_equal(write(fd, "AB", 2), 2);
	if (ic_registry_get_blob(r, "test/app", &T.layer, LAYER_SIZE, fd, NULL, NULL, &err) < 0)
		fail_msg("get_blob: %s", err->msg);
	assert_int_equal(count_lines(p.log, "main GET /v2/test/app/blobs/"), 2);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, LAYER_SIZE + 2);
	assert_int_equal(pread(fd, buf, LAYER_SIZE + 2, 0), LAYER_SIZE + 2);
	assert_memory_equal(buf, "AB", 2);
	assert_memory_equal(buf + 2, T.layer_data, LAYER_SIZE);
	ic_registry_free(r);
	proxy_stop(&p);
}

static void test_wrong_content_type(void **state)
{
	struct proxy p;
	struct ic_registry *r;
	struct kal_err *err = NULL;
	char *body = NULL, *mt = NULL;
	size_t len;
	struct ic_digest d;
	struct ic_index idx;

	NEED_SERVERS();
	proxy_start(&p, "--wrong-content-type", NULL);
	r = reg_new(p.addr, NULL);
	assert_int_equal(ic_registry_get_manifest(r, "test/app", "v1", &body, &len, &mt, &d, &err),
			 0);
	/* the registry reports what it was told; parsing refuses the disagreement */
	assert_string_equal(mt, IC_MT_OCI_INDEX);
	assert_int_equal(ic_index_parse(body, len, mt, &idx, &err), -1);
	assert_string_equal(err->msg,
			    "manifest: media type mismatch: Content-Type "
			    "`" IC_MT_OCI_INDEX "` but document says `" IC_MT_OCI_MANIFEST "`");
	kal_err_clear(&err);
	free(body);
	free(mt);
	ic_registry_free(r);
	proxy_stop(&p);
}

static void test_stall(void **state)
{
	struct proxy p;
	struct ic_registry *r;
	struct ic_registry_opts o = { .idle_timeout_s = 2 };
	char ds[IC_DIGEST_STR_LEN + 1];
	_cleanup_free_ char *m = NULL, *want = NULL;
	struct timespec t0, t1;

	NEED_SERVERS();
	ic_digest_str(&T.layer, ds);
	proxy_start(&p, "--stall-blob", ds, NULL);
	r = reg_new(p.addr, &o);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	m = expect_blob_err(r, "test/app", LAYER_SIZE);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	want = xasprintf("registry `%s`: no data received for 2 s", p.addr);
	assert_string_equal(m, want);
	/* bounded: the idle timeout, not the server, ended it */
	assert_true(t1.tv_sec - t0.tv_sec < 10);
	ic_registry_free(r);
	proxy_stop(&p);
}

static void test_redirect_drops_credentials(void **state)
{
	struct proxy p;
	struct ic_registry *r;

	NEED_SERVERS();
	proxy_start(&p, "--bearer", "--redirect-blobs-to", "127.0.0.2", NULL);
	r = reg_new(p.addr, NULL);
	expect_blob_ok(r, "test/app");
	/* the blob request on the registry host carried the token ... */
	assert_int_equal(count_lines(p.log, "main GET /token"), 1);
	assert_int_equal(count_lines2(p.log, "main GET /v2/test/app/blobs/sha256:", "auth=yes"), 1);
	/* ... the storage host got the blob request but no Authorization */
	assert_int_equal(count_lines(p.log, "redirect GET /redirected/v2/test/app/blobs/sha256:"),
			 1);
	assert_int_equal(count_lines2(p.log, "redirect ", "auth=yes"), 0);
	ic_registry_free(r);
	proxy_stop(&p);
}

static void test_mirror(void **state)
{
	struct proxy p;
	struct ic_registry *r;
	struct ic_registry_opts o = { 0 };
	char dead[64];

	NEED_SERVERS();
	snprintf(dead, sizeof(dead), "127.0.0.1:%d", free_port());
	proxy_start(&p, NULL);

	/* the mirror answers: the (dead) origin is never needed */
	o.mirror = p.addr;
	r = reg_new(dead, &o);
	expect_manifest_ok(r, "test/app", "v1");
	expect_blob_ok(r, "test/app");
	assert_int_equal(count_lines(p.log, "main GET /v2/test/app/manifests/v1"), 1);
	ic_registry_free(r);

	/* a dead mirror falls back to the origin */
	o.mirror = dead;
	r = reg_new(T.regaddr, &o);
	expect_manifest_ok(r, "test/app", "v1");
	expect_blob_ok(r, "test/app");
	ic_registry_free(r);

	/* KAL_REGISTRY_MIRROR serves docker.io (no internet needed) */
	{
		_cleanup_free_ char *url = xasprintf("http://%s", p.addr);

		setenv("KAL_REGISTRY_MIRROR", url, 1);
		r = reg_new("docker.io", NULL);
		unsetenv("KAL_REGISTRY_MIRROR");
		expect_manifest_ok(r, "library/hello", "v1");
		expect_blob_ok(r, "library/hello");
		assert_int_equal(count_lines(p.log, "main GET /v2/library/hello/manifests/v1"), 1);
		ic_registry_free(r);
	}
	proxy_stop(&p);
}

static void test_mirror_config(void **state)
{
	char dir[] = "/tmp/kal-mirrorcfg-XXXXXX";
	_cleanup_free_ char *path = NULL;
	char **v = NULL;
	struct kal_err *err = NULL;
	const char *json = "{\"mirrors\": {\"docker.io\": [\"127.0.0.1:5000\", "
			   "\"http://10.0.0.1:80\", 5]}}";

	(void)state;
	assert_non_null(mkdtemp(dir));
	path = xasprintf("%s/config.json", dir);
	assert_int_equal(kal_atomic_write_file(path, json, strlen(json), 0644, &err), 0);
	assert_int_equal(ic_mirrors_from_config(path, "docker.io", &v, &err), 0);
	assert_non_null(v);
	assert_string_equal(v[0], "127.0.0.1:5000");
	assert_string_equal(v[1], "http://10.0.0.1:80");
	assert_null(v[2]);
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
	assert_int_equal(ic_mirrors_from_config(path, "quay.io", &v, &err), 0);
	assert_null(v);
	assert_int_equal(kal_atomic_write_file(path, "{", 1, 0644, &err), 0);
	assert_int_equal(ic_mirrors_from_config(path, "docker.io", &v, &err), -1);
	assert_non_null(strstr(err->msg, "invalid JSON"));
	kal_err_clear(&err);
	kal_rm_rf(dir, NULL);
}

static void test_docker_config_lookup(void **state)
{
	char dir[] = "/tmp/kal-dockercfg-XXXXXX";
	_cleanup_free_ char *path = NULL;
	char *out = NULL;
	struct kal_err *err = NULL;
	/* dXNlcjpwYXNz = user:pass */
	const char *json = "{\"auths\": {\"https://index.docker.io/v1/\": {\"auth\": "
			   "\"aHViOmh1Yg==\"}, \"https://Reg.Example.com:5000\": {\"auth\": "
			   "\"dXNlcjpwYXNz\"}, \"other.example\": {\"username\": \"u\", "
			   "\"password\": \"p\"}, \"bad.example\": {\"auth\": \"!!!\"}}}";

	(void)state;
	assert_non_null(mkdtemp(dir));
	path = xasprintf("%s/config.json", dir);
	assert_int_equal(kal_atomic_write_file(path, json, strlen(json), 0644, &err), 0);
	assert_int_equal(
	    ic_auth_docker_config_lookup(path, "reg.example.com:5000", false, &out, &err), 0);
	assert_string_equal(out, "dXNlcjpwYXNz");
	free(out);
	assert_int_equal(
	    ic_auth_docker_config_lookup(path, "registry-1.docker.io", true, &out, &err), 0);
	assert_string_equal(out, "aHViOmh1Yg==");
	free(out);
	/* docker.io's keys are not used for other hosts */
	assert_int_equal(ic_auth_docker_config_lookup(path, "reg.example.com", false, &out, &err),
			 0);
	assert_null(out);
	assert_int_equal(ic_auth_docker_config_lookup(path, "other.example", false, &out, &err), 0);
	assert_string_equal(out, "dTpw");
	free(out);
	assert_int_equal(ic_auth_docker_config_lookup(path, "bad.example", false, &out, &err), -1);
	assert_non_null(strstr(err->msg, "not base64(user:password)"));
	kal_err_clear(&err);
	free(path);
	path = xasprintf("%s/missing.json", dir);
	assert_int_equal(ic_auth_docker_config_lookup(path, "x", false, &out, &err), 0);
	assert_null(out);
	kal_rm_rf(dir, NULL);
}

static void test_challenge_parse(void **state)
{
	struct ic_auth_challenge c;

	(void)state;
	assert_int_equal(
	    ic_auth_challenge_parse("Bearer realm=\"https://auth.docker.io/token\","
				    "service=\"registry.docker.io\",scope=\"repository:"
				    "library/debian:pull\"",
				    &c),
	    0);
	assert_string_equal(c.scheme, "bearer");
	assert_string_equal(c.realm, "https://auth.docker.io/token");
	assert_string_equal(c.service, "registry.docker.io");
	assert_string_equal(c.scope, "repository:library/debian:pull");
	ic_auth_challenge_free(&c);
	assert_int_equal(ic_auth_challenge_parse("basic realm=\"x\\\"y\"", &c), 0);
	assert_string_equal(c.scheme, "basic");
	assert_string_equal(c.realm, "x\"y");
	ic_auth_challenge_free(&c);
	assert_int_equal(ic_auth_challenge_parse("Bearer service=\"x\"", &c), -1);
	assert_int_equal(ic_auth_challenge_parse("Negotiate abc", &c), -1);
	assert_int_equal(ic_auth_challenge_parse("Bearer realm=\"unterminated", &c), -1);
	assert_int_equal(ic_auth_challenge_parse("", &c), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_challenge_parse),
		cmocka_unit_test(test_docker_config_lookup),
		cmocka_unit_test(test_mirror_config),
		cmocka_unit_test(test_manifest_direct),
		cmocka_unit_test(test_manifest_unknown),
		cmocka_unit_test(test_blob_direct),
		cmocka_unit_test(test_blob_progress_offset),
		cmocka_unit_test(test_connect_refused),
		cmocka_unit_test(test_bearer),
		cmocka_unit_test(test_bearer_with_basic),
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_tamper),
		cmocka_unit_test(test_short_and_long),
		cmocka_unit_test(test_wrong_content_type),
		cmocka_unit_test(test_dropped_connection_retry),
		cmocka_unit_test(test_stall),
		cmocka_unit_test(test_redirect_drops_credentials),
		cmocka_unit_test(test_mirror),
		cmocka_unit_test(test_parallel_downloads),
		cmocka_unit_test(test_hostile_transport),
	};

	return cmocka_run_group_tests_name("registry", tests, group_setup, group_teardown);
}
