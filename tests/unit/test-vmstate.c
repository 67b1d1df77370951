// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests for the VM state directory (names, config.json round trip,
 * liveness lock, removal) and the engine layer's pure parts (selection
 * errors, the kernel command line).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/cleanup.h"
#include "lib/err.h"
#include "lib/fsutil.h"
#include "lib/xalloc.h"
#include "vmm/machine.h"
#include "vmm/vmstate.h"

static char *tmp_home(void)
{
	char *t = xstrdup("/tmp/kal-test-vmstate-XXXXXX");

	assert_non_null(mkdtemp(t));
	return t;
}

static void test_names(void **state)
{
	struct kal_err *err = NULL;
	char long_name[80];

	(void)state;
	assert_int_equal(vmstate_name_check("dev", NULL), 0);
	assert_int_equal(vmstate_name_check("a1_b.c-d", NULL), 0);
	assert_int_equal(vmstate_name_check("0", NULL), 0);
	assert_int_equal(vmstate_name_check("", NULL), -1);
	assert_int_equal(vmstate_name_check("-x", NULL), -1);
	assert_int_equal(vmstate_name_check("Dev", NULL), -1);
	assert_int_equal(vmstate_name_check("a/b", NULL), -1);
	assert_int_equal(vmstate_name_check("..", NULL), -1);
	memset(long_name, 'a', 63);
	long_name[63] = '\0';
	assert_int_equal(vmstate_name_check(long_name, NULL), 0);
	long_name[63] = 'a';
	long_name[64] = '\0';
	assert_int_equal(vmstate_name_check(long_name, &err), -1);
	assert_non_null(strstr(err->msg, "invalid VM name"));
	kal_err_free(err);
}

static void test_config_roundtrip_and_lock(void **state)
{
	_cleanup_free_ char *home = tmp_home();
	char p0[] = "/c/l0.erofs", p1[] = "/c/l1.erofs", nm[] = "box", im[] = "busybox",
	     dg[] = "sha256:00", en[] = "qemu";
	char *paths[] = { p0, p1 };
	uint64_t sizes[] = { 2097152, 4194304 };
	struct vm_config c = { .name = nm,
			       .image = im,
			       .image_digest = dg,
			       .engine = en,
			       .memory_mib = 256,
			       .cpus = 2,
			       .net = MACHINE_NET_USER,
			       .created = 1700000000,
			       .auto_remove = true,
			       .hugepages = true,
			       .upper_size = 64 << 20,
			       .layer_paths = paths,
			       .layer_sizes = sizes,
			       .n_layers = 2 };
	struct vm_config *back = NULL;
	struct kal_err *err = NULL;
	char **names;
	size_t n;
	int fd;

	(void)state;
	assert_int_equal(vmstate_get(home, "box", NULL), VMSTATE_MISSING);
	assert_int_equal(vmstate_create(home, &c, &err), 0);
	assert_int_equal(vmstate_create(home, &c, &err), -1);
	assert_string_equal(err->msg, "a VM named `box` already exists");
	kal_err_clear(&err);
	assert_int_equal(vmstate_load(home, "box", &back, &err), 0);
	assert_string_equal(back->image, "busybox");
	assert_int_equal(back->memory_mib, 256);
	assert_int_equal(back->cpus, 2);
	assert_int_equal(back->net, MACHINE_NET_USER);
	assert_true(back->auto_remove);
	assert_true(back->hugepages);
	assert_int_equal(back->n_layers, 2);
	assert_string_equal(back->layer_paths[1], "/c/l1.erofs");
	assert_int_equal(back->layer_sizes[1], 4194304);
	vm_config_free(back);

	/* the liveness lock: held means running, released means created */
	assert_int_equal(vmstate_get(home, "box", NULL), VMSTATE_CREATED);
	fd = vmstate_lock(home, "box", &err);
	assert_true(fd >= 0);
	assert_int_equal(vmstate_lock(home, "box", &err), -1);
	assert_string_equal(err->msg, "VM `box` is running");
	kal_err_clear(&err);
	assert_int_equal(vmstate_remove(home, "box", &err), -1);
	kal_err_clear(&err);
	close(fd);

	assert_int_equal(vmstate_list(home, &names, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(names[0], "box");
	free(names[0]);
	free(names);
	assert_int_equal(vmstate_remove(home, "box", &err), 0);
	assert_int_equal(vmstate_get(home, "box", NULL), VMSTATE_MISSING);
	assert_int_equal(vmstate_load(home, "box", &back, &err), -1);
	assert_string_equal(err->msg, "no such VM `box`");
	kal_err_free(err);
	kal_rm_rf(home, NULL);
}

static void test_load_rejects_bad_config(void **state)
{
	_cleanup_free_ char *home = tmp_home();
	_cleanup_free_ char *dir = xasprintf("%s/vms/bad", home);
	_cleanup_free_ char *cfg = xasprintf("%s/config.json", dir);
	struct vm_config *c = NULL;
	struct kal_err *err = NULL;
	static const char rel[] = "{\"layers\":[{\"path\":\"relative.erofs\",\"size\":1}]}";

	(void)state;
	assert_int_equal(kal_mkdir_p(dir, 0700, NULL), 0);
	assert_int_equal(kal_atomic_write_file(cfg, "[1]", 3, 0600, NULL), 0);
	assert_int_equal(vmstate_load(home, "bad", &c, &err), -1);
	assert_string_equal(err->msg, "VM `bad`: config.json is not a JSON object");
	kal_err_clear(&err);
	assert_int_equal(kal_atomic_write_file(cfg, rel, strlen(rel), 0600, NULL), 0);
	assert_int_equal(vmstate_load(home, "bad", &c, &err), -1);
	assert_string_equal(err->msg, "VM `bad`: config.json: bad layer 0");
	kal_err_free(err);
	kal_rm_rf(home, NULL);
}

static void test_generated_names_are_valid_and_free(void **state)
{
	_cleanup_free_ char *home = tmp_home();

	(void)state;
	for (int i = 0; i < 20; i++) {
		_cleanup_free_ char *n = vmstate_name_generate(home);

		assert_int_equal(vmstate_name_check(n, NULL), 0);
	}
	kal_rm_rf(home, NULL);
}

static void test_engine_select_errors(void **state)
{
	struct kal_err *err = NULL;
	char why[512];

	(void)state;
	assert_null(machine_engine_select("vbox", why, sizeof(why), &err));
	assert_string_equal(err->msg, "unknown engine `vbox` (choose kvm, qemu or auto)");
	kal_err_clear(&err);
	if (access("/dev/kvm", R_OK | W_OK) < 0) {
		/* named but unusable: an error with the reason */
		assert_null(machine_engine_select("kvm", why, sizeof(why), &err));
		assert_non_null(strstr(err->msg, "engine `kvm` is not available: "));
		kal_err_free(err);
		return;
	}
	/* usable (if only emulated): named means taken; auto never prefers emulated kvm */
	assert_ptr_equal(machine_engine_select("kvm", why, sizeof(why), &err), &machine_kvm_ops);
	assert_non_null(strstr(why, "kvm: asked for (kal's VMM"));
	if (machine_kvm_probe_ns(&err) > MACHINE_KVM_FAST_NS &&
	    machine_qemu_ops.available(why, sizeof(why)) != MACHINE_AVAIL_NO) {
		assert_ptr_equal(machine_engine_select("auto", why, sizeof(why), &err),
				 &machine_qemu_ops);
		assert_non_null(strstr(why, "; auto picks qemu"));
	}
	assert_null(err);
}

static void test_cmdline(void **state)
{
	struct machine_layer l[3] = { { "/a", 1 }, { "/b", 1 }, { "/c", 1 } };
	struct machine_config c = { .name = "dev",
				    .layers = l,
				    .n_layers = 3,
				    .net = MACHINE_NET_NONE,
				    .extra_cmdline = "x=1" };
	_cleanup_free_ char *s = machine_cmdline(&c, "blk", 't');

	(void)state;
	assert_string_equal(s,
			    "console=ttyS0 quiet panic=-1 reboot=t kal.layers=3 kal.layerdev=blk "
			    "kal.upper=kal-upper kal.hostname=dev kal.net=none kal.channel=port "
			    "x=1");
}

static void test_forward_parse(void **state)
{
	static const char *const bad[] = {
		"",	"80",		"0:80",	       "8080:65536", "8080:",		":80",
		"a:80", "8080:80/sctp", "1.2.3:80:80", "::1:80:80",  "8080:80/tcp/udp", "123456:80"
	};
	struct vmm_forward f;
	char canon[MACHINE_FORWARD_CANON_MAX];
	struct kal_err *err = NULL;

	(void)state;
	assert_int_equal(machine_forward_parse("8080:80", &f, canon, NULL), 0);
	assert_string_equal(canon, "127.0.0.1:8080:80/tcp");
	assert_false(f.udp);
	assert_int_equal(f.host_port, 8080);
	assert_int_equal(f.guest_port, 80);
	assert_int_equal(machine_forward_parse("0.0.0.0:53:5353/udp", &f, canon, NULL), 0);
	assert_string_equal(canon, "0.0.0.0:53:5353/udp");
	assert_true(f.udp);
	assert_int_equal(f.host_addr, 0);
	/* the canonical form parses back to itself */
	assert_int_equal(machine_forward_parse("0.0.0.0:53:5353/udp", &f, canon, NULL), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(machine_forward_parse(bad[i], &f, canon, &err), -1);
		assert_non_null(strstr(err->msg, "bad published port `"));
		kal_err_clear(&err);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_config_roundtrip_and_lock),
		cmocka_unit_test(test_load_rejects_bad_config),
		cmocka_unit_test(test_generated_names_are_valid_and_free),
		cmocka_unit_test(test_engine_select_errors),
		cmocka_unit_test(test_cmdline),
		cmocka_unit_test(test_forward_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
