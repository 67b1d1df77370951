// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libcurl and libarchive, loaded on first use.  Linked normally they drag in
 * 37 more shared libraries (gnutls, krb5, ldap, icu, xml2, ...) and cost every
 * kal process ~10 ms of start-up, although only pull and load use them; `kal
 * exec` is meant to be a round trip of a few ms.  Each function kal calls is
 * defined here with the library's own prototype (so the compiler checks it
 * against the header) and forwards to the real one, resolved once with
 * dlopen/dlsym.  A missing library is an installation problem, reported the
 * way the dynamic linker would report it: one line, exit 125.
 */
#include <archive.h>
#include <archive_entry.h>
#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

struct lazylib {
	const char *soname;
	pthread_once_t once;
	void *handle;
};

static struct lazylib lib_curl = { KAL_LIBCURL_SONAME, PTHREAD_ONCE_INIT, NULL };
static struct lazylib lib_archive = { KAL_LIBARCHIVE_SONAME, PTHREAD_ONCE_INIT, NULL };

static void __attribute__((noreturn)) lazylib_fail(const char *what)
{
	fprintf(stderr, "kal: %s (install it: make deps)\n", what);
	_exit(125);
}

static void curl_open(void)
{
	if (!(lib_curl.handle = dlopen(lib_curl.soname, RTLD_NOW | RTLD_LOCAL)))
		lazylib_fail(dlerror());
}

static void archive_open(void)
{
	if (!(lib_archive.handle = dlopen(lib_archive.soname, RTLD_NOW | RTLD_LOCAL)))
		lazylib_fail(dlerror());
}

static void *lazylib_sym(struct lazylib *lib, void (*open_fn)(void), const char *name)
{
	void *sym;

	pthread_once(&lib->once, open_fn);
	sym = dlsym(lib->handle, name);
	if (!sym)
		lazylib_fail(dlerror());
	return sym;
}

/*
 * One forwarder.  The resolved pointer is cached with relaxed atomics: every
 * thread that races here resolves the same value.
 */
#define LAZY_FN(lib, open_fn, ret, name, params, args)                                             \
	ret name params                                                                            \
	{                                                                                          \
		static ret(*fn) params;                                                            \
		ret(*f) params = __atomic_load_n(&fn, __ATOMIC_RELAXED);                           \
		if (!f) {                                                                          \
			*(void **)&f = lazylib_sym(&lib, open_fn, #name);                          \
			__atomic_store_n(&fn, f, __ATOMIC_RELAXED);                                \
		}                                                                                  \
		return f args;                                                                     \
	}
#define LAZY_VOID(lib, open_fn, name, params, args)                                                \
	void name params                                                                           \
	{                                                                                          \
		static void(*fn) params;                                                           \
		void(*f) params = __atomic_load_n(&fn, __ATOMIC_RELAXED);                          \
		if (!f) {                                                                          \
			*(void **)&f = lazylib_sym(&lib, open_fn, #name);                          \
			__atomic_store_n(&fn, f, __ATOMIC_RELAXED);                                \
		}                                                                                  \
		f args;                                                                            \
	}
#define CURL_FN(ret, name, params, args) LAZY_FN(lib_curl, curl_open, ret, name, params, args)
#define CURL_VOID(name, params, args)	 LAZY_VOID(lib_curl, curl_open, name, params, args)
#define AR_FN(ret, name, params, args)	 LAZY_FN(lib_archive, archive_open, ret, name, params, args)

/* libcurl */
CURL_FN(CURLcode, curl_global_init, (long flags), (flags))
CURL_FN(CURL *, curl_easy_init, (void), ())
CURL_FN(CURLcode, curl_easy_perform, (CURL * h), (h))
CURL_VOID(curl_easy_cleanup, (CURL * h), (h))
CURL_VOID(curl_easy_reset, (CURL * h), (h))
CURL_FN(char *, curl_easy_escape, (CURL * h, const char *s, int len), (h, s, len))
CURL_FN(const char *, curl_easy_strerror, (CURLcode c), (c))
CURL_VOID(curl_free, (void *p), (p))
CURL_FN(struct curl_slist *, curl_slist_append, (struct curl_slist * l, const char *s), (l, s))
CURL_VOID(curl_slist_free_all, (struct curl_slist * l), (l))
CURL_FN(CURLU *, curl_url, (void), ())
CURL_VOID(curl_url_cleanup, (CURLU * u), (u))
CURL_FN(CURLUcode, curl_url_get, (CURLU * u, CURLUPart what, char **part, unsigned int flags),
	(u, what, part, flags))
CURL_FN(CURLUcode, curl_url_set, (CURLU * u, CURLUPart what, const char *part, unsigned int flags),
	(u, what, part, flags))

/*
 * The two variadic entry points.  An option's number encodes the type of its
 * argument (CURLOPTTYPE_*), so the argument is taken with its real type;
 * getinfo always takes a pointer to the result.
 */
#undef curl_easy_setopt
#undef curl_easy_getinfo
CURLcode curl_easy_setopt(CURL *h, CURLoption opt, ...)
{
	static void *fn;
	void *f = __atomic_load_n(&fn, __ATOMIC_RELAXED);
	CURLcode rc;
	va_list ap;

	if (!f) {
		f = lazylib_sym(&lib_curl, curl_open, "curl_easy_setopt");
		__atomic_store_n(&fn, f, __ATOMIC_RELAXED);
	}
	va_start(ap, opt);
	if (opt < CURLOPTTYPE_OBJECTPOINT)
		rc = ((CURLcode(*)(CURL *, CURLoption, long))f)(h, opt, va_arg(ap, long));
	else if (opt >= CURLOPTTYPE_OFF_T && opt < CURLOPTTYPE_BLOB)
		rc = ((CURLcode(*)(CURL *, CURLoption, curl_off_t))f)(h, opt,
								      va_arg(ap, curl_off_t));
	else /* object, function and blob pointers all travel as pointers */
		rc = ((CURLcode(*)(CURL *, CURLoption, void *))f)(h, opt, va_arg(ap, void *));
	va_end(ap);
	return rc;
}

CURLcode curl_easy_getinfo(CURL *h, CURLINFO info, ...)
{
	static CURLcode (*fn)(CURL *, CURLINFO, void *);
	CURLcode (*f)(CURL *, CURLINFO, void *) = __atomic_load_n(&fn, __ATOMIC_RELAXED);
	va_list ap;
	void *out;

	if (!f) {
		*(void **)&f = lazylib_sym(&lib_curl, curl_open, "curl_easy_getinfo");
		__atomic_store_n(&fn, f, __ATOMIC_RELAXED);
	}
	va_start(ap, info);
	out = va_arg(ap, void *);
	va_end(ap);
	return f(h, info, out);
}

/* libarchive */
AR_FN(struct archive *, archive_read_new, (void), ())
AR_FN(int, archive_read_free, (struct archive * a), (a))
AR_FN(int, archive_read_support_filter_all, (struct archive * a), (a))
AR_FN(int, archive_read_support_format_empty, (struct archive * a), (a))
AR_FN(int, archive_read_support_format_tar, (struct archive * a), (a))
AR_FN(int, archive_read_open,
      (struct archive * a, void *data, archive_open_callback *o, archive_read_callback *r,
       archive_close_callback *c),
      (a, data, o, r, c))
AR_FN(int, archive_read_open_filename, (struct archive * a, const char *name, size_t bs),
      (a, name, bs))
AR_FN(int, archive_read_next_header, (struct archive * a, struct archive_entry **e), (a, e))
AR_FN(la_ssize_t, archive_read_data, (struct archive * a, void *buf, size_t len), (a, buf, len))
AR_FN(int, archive_read_data_block,
      (struct archive * a, const void **buf, size_t *size, la_int64_t *off), (a, buf, size, off))
AR_FN(const char *, archive_error_string, (struct archive * a), (a))
AR_FN(int, archive_entry_acl_count, (struct archive_entry * e, int want), (e, want))
AR_FN(int, archive_entry_acl_reset, (struct archive_entry * e, int want), (e, want))
AR_FN(int, archive_entry_acl_next,
      (struct archive_entry * e, int want, int *type, int *permset, int *tag, int *qual,
       const char **name),
      (e, want, type, permset, tag, qual, name))
AR_FN(__LA_MODE_T, archive_entry_filetype, (struct archive_entry * e), (e))
AR_FN(__LA_MODE_T, archive_entry_perm, (struct archive_entry * e), (e))
AR_FN(la_int64_t, archive_entry_uid, (struct archive_entry * e), (e))
AR_FN(la_int64_t, archive_entry_gid, (struct archive_entry * e), (e))
AR_FN(la_int64_t, archive_entry_size, (struct archive_entry * e), (e))
AR_FN(int, archive_entry_size_is_set, (struct archive_entry * e), (e))
AR_FN(time_t, archive_entry_mtime, (struct archive_entry * e), (e))
AR_FN(long, archive_entry_mtime_nsec, (struct archive_entry * e), (e))
AR_FN(const char *, archive_entry_pathname, (struct archive_entry * e), (e))
AR_FN(const char *, archive_entry_hardlink, (struct archive_entry * e), (e))
AR_FN(const char *, archive_entry_symlink, (struct archive_entry * e), (e))
AR_FN(dev_t, archive_entry_rdevmajor, (struct archive_entry * e), (e))
AR_FN(dev_t, archive_entry_rdevminor, (struct archive_entry * e), (e))
AR_FN(int, archive_entry_xattr_reset, (struct archive_entry * e), (e))
AR_FN(int, archive_entry_xattr_next,
      (struct archive_entry * e, const char **name, const void **value, size_t *size),
      (e, name, value, size))

/* printf-style: format here, hand libarchive the finished message */
void archive_set_error(struct archive *a, int err, const char *fmt, ...)
{
	static void (*fn)(struct archive *, int, const char *, ...);
	void (*f)(struct archive *, int, const char *, ...) =
	    __atomic_load_n(&fn, __ATOMIC_RELAXED);
	char msg[512];
	va_list ap;

	if (!f) {
		*(void **)&f = lazylib_sym(&lib_archive, archive_open, "archive_set_error");
		__atomic_store_n(&fn, f, __ATOMIC_RELAXED);
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	f(a, err, "%s", msg);
}
