/*
 * check_plugin.c: the plugin loader (server/plugin.c) against deliberately broken
 * plugins (tests/fixtures/plugins), the real plugins of the build, host frames, and
 * the Wan plugin shells' error sentences.
 */
#include "config.h"

#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_util.h"
#include "plugin.h"
#include "plugin_shell.h"

/* ---- helpers ---- */

static char logbuf[16384];

static void test_log(const struct heru_host *host, int level, const char *msg)
{
	size_t n = strlen(logbuf);
	(void)host;
	(void)level;
	snprintf(logbuf + n, sizeof(logbuf) - n, "%s\n", msg);
}

static struct heru_host test_host = {
	.struct_size = sizeof(struct heru_host),
	.abi_major = HERU_ABI_MAJOR,
	.abi_minor = HERU_ABI_MINOR,
	.name = "check_plugin",
	.version = "0",
	.log = test_log,
	.frame_new = plugin_host_frame_new,
};

static const char *builddir(void)
{
	const char *d = getenv("top_builddir");
	return d && *d ? d : ".";
}

static void copy_file(const char *from, const char *to)
{
	char buf[65536];
	ssize_t n;
	int in, out;

	in = open(from, O_RDONLY);
	ck_assert_msg(in >= 0, "cannot open '%s': %s (build the fixtures first)", from,
		strerror(errno));
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0755);
	ck_assert_msg(out >= 0, "cannot create '%s': %s", to, strerror(errno));
	while ((n = read(in, buf, sizeof(buf))) > 0)
		ck_assert_int_eq(write(out, buf, (size_t)n), n);
	close(in);
	close(out);
}

static char tmpdir[256];

/* A fresh temporary plugin folder. */
static const char *make_dir(void)
{
	const char *base = getenv("TMPDIR");
	snprintf(tmpdir, sizeof(tmpdir), "%s/heru-check-plugin-XXXXXX", base && *base ? base : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	logbuf[0] = 0;
	return tmpdir;
}

/* Copy fixture NAME (tests/fixtures/plugins/.libs/NAME.so) into dir as AS. */
static void add_fixture(const char *dir, const char *name, const char *as)
{
	char from[1024], to[1024];

	snprintf(from, sizeof(from), "%s/tests/fixtures/plugins/.libs/%s.so", builddir(), name);
	snprintf(to, sizeof(to), "%s/%s", dir, as);
	copy_file(from, to);
}

static void remove_dir(const char *dir)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* The reason the registry gives for `file`, or NULL when it was not refused. */
static const char *reason_for(const struct plugin_registry *reg, const char *file)
{
	size_t i;

	for (i = 0; i < plugin_registry_refused_count(reg); i++)
		if (strcmp(plugin_registry_refused_file(reg, i), file) == 0)
			return plugin_registry_refused_reason(reg, i);
	return NULL;
}

/* Load a folder with the good fixture and one broken one; return the broken one's
 * reason (copied into out) after checking the good one still loaded. */
static void refusal_of(const char *fixture, const char *as, char *out, size_t outlen)
{
	const char *dir = make_dir();
	struct plugin_registry *reg;
	const char *why;

	add_fixture(dir, "good", "a_good.so");
	add_fixture(dir, fixture, as);
	reg = plugin_registry_new(dir, &test_host);
	ck_assert_ptr_nonnull(reg);
	ck_assert_msg(plugin_registry_find(reg, "fixture_good") != NULL,
		"the good plugin did not load next to '%s'", as);
	ck_assert_uint_eq(plugin_registry_count(reg), 1);
	ck_assert_uint_eq(plugin_registry_refused_count(reg), 1);
	why = reason_for(reg, as);
	ck_assert_msg(why != NULL, "'%s' was not refused", as);
	ck_assert_msg(strstr(why, as) != NULL, "reason does not name the file: %s", why);
	ck_assert_msg(strstr(logbuf, why) != NULL, "refusal was not logged: %s", logbuf);
	snprintf(out, outlen, "%s", why);
	plugin_registry_free(reg);
	remove_dir(dir);
}

/* ---- the good plugin ---- */

START_TEST(test_good_loads)
{
	const char *dir = make_dir();
	const struct heru_plugin_entry *e;
	struct plugin_registry *reg;

	add_fixture(dir, "good", "good.so");
	reg = plugin_registry_new(dir, &test_host);
	ck_assert_ptr_nonnull(reg);
	ck_assert_uint_eq(plugin_registry_count(reg), 1);
	ck_assert_uint_eq(plugin_registry_refused_count(reg), 0);
	e = plugin_registry_find(reg, "fixture_good");
	ck_assert_ptr_nonnull(e);
	ck_assert_ptr_eq(plugin_registry_at(reg, 0), e);
	ck_assert_ptr_null(plugin_registry_at(reg, 1));
	ck_assert_str_eq(e->version, "1.2.3");
	ck_assert_uint_eq(e->kind, HERU_KIND_CONDITIONER);
	ck_assert_str_eq(plugin_registry_file(reg, "fixture_good"), "good.so");
	ck_assert_ptr_null(plugin_registry_find(reg, "nope"));
	ck_assert_ptr_null(plugin_registry_find(reg, NULL));
	ck_assert_msg(strstr(logbuf, "loaded plugin 'fixture_good'") != NULL, "log: %s", logbuf);
	plugin_registry_free(reg);
	remove_dir(dir);
}
END_TEST

START_TEST(test_listing_json)
{
	const char *dir = make_dir();
	struct plugin_registry *reg;
	json_t *j, *p, *r;
	char *text;

	add_fixture(dir, "good", "good.so");
	add_fixture(dir, "wrong_major", "wrong_major.so");
	reg = plugin_registry_new(dir, &test_host);
	j = plugin_registry_json(reg);
	ck_assert_ptr_nonnull(j);
	text = json_dumps(j, JSON_COMPACT);
	p = json_array_get(json_object_get(j, "plugins"), 0);
	ck_assert_msg(p != NULL && json_array_size(json_object_get(j, "plugins")) == 1, "%s", text);
	ck_assert_str_eq(json_string_value(json_object_get(p, "id")), "fixture_good");
	ck_assert_str_eq(json_string_value(json_object_get(p, "kind")), "conditioner");
	ck_assert_str_eq(json_string_value(json_object_get(p, "version")), "1.2.3");
	{
		char abi[16];
		snprintf(abi, sizeof(abi), "%d.%d", HERU_ABI_MAJOR, HERU_ABI_MINOR);
		ck_assert_str_eq(json_string_value(json_object_get(p, "abi")), abi);
	}
	ck_assert_ptr_null(json_object_get(p, "input_chunk")); /* conditioners have none */
	ck_assert_str_eq(json_string_value(json_object_get(p, "file")), "good.so");
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(p, "capabilities"), 0)),
		"heru.fixture/1");
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(p, "flags"), 0)),
		"unloadable");
	r = json_array_get(json_object_get(j, "refused"), 0);
	ck_assert_msg(r != NULL && json_array_size(json_object_get(j, "refused")) == 1, "%s", text);
	ck_assert_str_eq(json_string_value(json_object_get(r, "file")), "wrong_major.so");
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(r, "reason")), "major"));
	free(text);
	json_decref(j);
	plugin_registry_free(reg);
	remove_dir(dir);
}
END_TEST

/* ---- every refusal path ---- */

START_TEST(test_wrong_major)
{
	char why[512], plugin_abi[32], host_abi[32];
	snprintf(plugin_abi, sizeof(plugin_abi), "ABI %d.%d", HERU_ABI_MAJOR + 1, HERU_ABI_MINOR);
	snprintf(host_abi, sizeof(host_abi), "ABI %d.%d", HERU_ABI_MAJOR, HERU_ABI_MINOR);
	refusal_of("wrong_major", "wrong_major.so", why, sizeof(why));
	ck_assert_msg(strstr(why, plugin_abi) && strstr(why, host_abi) &&
		strstr(why, "major versions differ"), "%s", why);
}
END_TEST

START_TEST(test_newer_minor)
{
	char why[512], needs[32];
	snprintf(needs, sizeof(needs), "needs ABI %d.%d", HERU_ABI_MAJOR, HERU_ABI_MINOR + 1);
	refusal_of("newer_minor", "newer_minor.so", why, sizeof(why));
	ck_assert_msg(strstr(why, needs) && strstr(why, "newer than"), "%s", why);
}
END_TEST

START_TEST(test_bad_fingerprint)
{
	char why[512];
	refusal_of("bad_fingerprint", "bad_fingerprint.so", why, sizeof(why));
	ck_assert_msg(strstr(why, "fingerprint") && strstr(why, "another data model"), "%s", why);
}
END_TEST

START_TEST(test_missing_entry)
{
	char why[512];
	refusal_of("no_entry", "no_entry.so", why, sizeof(why));
	ck_assert_msg(strstr(why, "does not export the symbol 'heru_plugin_entry'"), "%s", why);
}
END_TEST

START_TEST(test_tiny_entry)
{
	char why[512];
	refusal_of("tiny_entry", "tiny_entry.so", why, sizeof(why));
	ck_assert_msg(strstr(why, "too small") || strstr(why, "smaller than"), "%s", why);
}
END_TEST

START_TEST(test_duplicate_id)
{
	char why[512];
	refusal_of("dup_id", "b_dup_id.so", why, sizeof(why));
	ck_assert_msg(strstr(why, "id 'fixture_good', already provided by 'a_good.so'"), "%s", why);
}
END_TEST

START_TEST(test_init_fails)
{
	char why[512];
	refusal_of("init_fails", "init_fails.so", why, sizeof(why));
	ck_assert_msg(strstr(why, "failed to initialize: the fixture always fails"), "%s", why);
}
END_TEST

START_TEST(test_incomplete_vtable)
{
	char why[512];
	refusal_of("no_process", "no_process.so", why, sizeof(why));
	ck_assert_msg(strstr(why, "without a complete conditioner vtable"), "%s", why);
}
END_TEST

START_TEST(test_not_shared_object)
{
	const char *dir = make_dir();
	struct plugin_registry *reg;
	char path[512];
	const char *why;
	FILE *f;

	snprintf(path, sizeof(path), "%s/notes.so", dir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("this is not an ELF file\n", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/readme.txt", dir); /* not *.so: ignored */
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	add_fixture(dir, "good", "good.so");
	reg = plugin_registry_new(dir, &test_host);
	ck_assert_uint_eq(plugin_registry_count(reg), 1);
	ck_assert_uint_eq(plugin_registry_refused_count(reg), 1);
	why = reason_for(reg, "notes.so");
	ck_assert_msg(why && strstr(why, "cannot load plugin 'notes.so'"), "%s", why ? why : "-");
	plugin_registry_free(reg);
	remove_dir(dir);
}
END_TEST

START_TEST(test_missing_dir)
{
	struct plugin_registry *reg;
	json_t *j;
	const char *why;

	logbuf[0] = 0;
	reg = plugin_registry_new("/nonexistent/heru/plugins", &test_host);
	ck_assert_ptr_nonnull(reg);
	ck_assert_uint_eq(plugin_registry_count(reg), 0);
	ck_assert_uint_eq(plugin_registry_refused_count(reg), 1);
	why = plugin_registry_refused_reason(reg, 0);
	ck_assert_msg(strstr(why, "cannot open plugin folder '/nonexistent/heru/plugins'"), "%s", why);
	j = plugin_registry_json(reg);
	ck_assert_uint_eq(json_array_size(json_object_get(j, "plugins")), 0);
	json_decref(j);
	plugin_registry_free(reg);
	plugin_registry_free(NULL);
}
END_TEST

static int abi10_process(void *inst, const struct heru_process_args *args, char *err, size_t errlen)
{
	(void)inst;
	(void)args;
	(void)err;
	(void)errlen;
	return 0;
}

static void *abi10_create(const struct heru_host *host, const char *cfg, char *err, size_t errlen)
{
	(void)host;
	(void)cfg;
	(void)err;
	(void)errlen;
	return NULL;
}

static void abi10_destroy(void *inst) { (void)inst; }

/* A backend built against ABI 1.0 (entry minor 0, vtable ending at destroy) loads in this
 * host and gets a one-frame inbox; a 1.1 backend's input_chunk is honoured and bounded. */
START_TEST(test_abi_1_0_backend_loads)
{
	static const char *const caps[] = { "heru.x/1", NULL };
	/* bytes past a 1.0 vtable's struct_size are not the plugin's: poison them */
	static const struct heru_backend_vtable vt10 = {
		.struct_size = HERU_BACKEND_VTABLE_SIZE_1_0, .create = abi10_create,
		.process = abi10_process, .destroy = abi10_destroy, .input_chunk = 7,
	};
	struct heru_backend_vtable vt11 = vt10;
	struct heru_plugin_entry e = {
		.abi_major = HERU_ABI_MAJOR, .abi_minor = 0,
		.struct_size = HERU_PLUGIN_ENTRY_SIZE_1_0, .kind = HERU_KIND_BACKEND,
		.abi_fingerprint = HERU_ABI_FINGERPRINT, .id = "old_backend", .name = "n",
		.version = "1", .capabilities = caps, .backend = &vt10,
	};
	char err[512] = "";

	ck_assert_int_ge(HERU_ABI_MINOR, 1);
	ck_assert_int_eq(plugin_check_entry(&e, HERU_PLUGIN_ENTRY_SIZE_1_0, "old.so", err, sizeof(err)), 0);
	ck_assert_uint_eq(plugin_backend_input_chunk(&e), 1);
	/* a vtable shorter than 1.0's is still refused */
	vt11.struct_size = HERU_BACKEND_VTABLE_SIZE_1_0 - 1;
	e.backend = &vt11;
	ck_assert_int_eq(plugin_check_entry(&e, 0, "x.so", err, sizeof(err)), HERU_EINVAL);
	ck_assert_msg(strstr(err, "backend vtable"), "%s", err);
	/* a 1.1 backend: its chunk, 0 as 1, and at most HERU_INPUT_CHUNK_MAX */
	e.abi_minor = HERU_ABI_MINOR;
	e.struct_size = sizeof(e);
	vt11.struct_size = sizeof(vt11);
	ck_assert_int_eq(plugin_check_entry(&e, 0, "new.so", err, sizeof(err)), 0);
	ck_assert_uint_eq(plugin_backend_input_chunk(&e), 7);
	vt11.input_chunk = 0;
	ck_assert_uint_eq(plugin_backend_input_chunk(&e), 1);
	vt11.input_chunk = 1000000;
	ck_assert_uint_eq(plugin_backend_input_chunk(&e), HERU_INPUT_CHUNK_MAX);
	ck_assert_uint_eq(plugin_backend_input_chunk(NULL), 1);
}
END_TEST

/* plugin_check_entry on in-memory entries: fields the fixtures do not cover. */
START_TEST(test_check_entry_fields)
{
	static const char *const caps[] = { "heru.x/1", NULL };
	static const struct heru_backend_vtable vt = { 0 };
	struct heru_plugin_entry e = {
		.abi_major = HERU_ABI_MAJOR, .abi_minor = HERU_ABI_MINOR,
		.struct_size = sizeof(e), .kind = HERU_KIND_BACKEND,
		.abi_fingerprint = HERU_ABI_FINGERPRINT, .id = "Bad Id", .name = "n",
		.version = "1", .capabilities = caps, .backend = &vt,
	};
	char err[512];

	ck_assert_int_eq(plugin_check_entry(&e, 0, "x.so", err, sizeof(err)), HERU_EINVAL);
	ck_assert_msg(strstr(err, "invalid id"), "%s", err);
	e.id = "ok_id";
	ck_assert_int_eq(plugin_check_entry(&e, 0, "x.so", err, sizeof(err)), HERU_EINVAL);
	ck_assert_msg(strstr(err, "backend vtable"), "%s", err);
	e.kind = 7;
	ck_assert_int_eq(plugin_check_entry(&e, 0, "x.so", err, sizeof(err)), HERU_EINVAL);
	ck_assert_msg(strstr(err, "unknown kind 7"), "%s", err);
	e.kind = HERU_KIND_BACKEND;
	e.struct_size = 8;
	ck_assert_int_eq(plugin_check_entry(&e, 0, "x.so", err, sizeof(err)), HERU_EINVAL);
	ck_assert_msg(strstr(err, "smaller than"), "%s", err);
	e.struct_size = sizeof(e);
	e.capabilities = NULL;
	ck_assert_int_eq(plugin_check_entry(&e, 0, "x.so", err, sizeof(err)), HERU_EINVAL);
	ck_assert_msg(strstr(err, "no capability list"), "%s", err);
	ck_assert_str_eq(plugin_kind_name(HERU_KIND_BACKEND), "backend");
	ck_assert_str_eq(plugin_kind_name(99), "unknown");
}
END_TEST

/* ---- the plugins this build ships ---- */

START_TEST(test_build_plugins_load)
{
	const char *dir = getenv("HERU_PLUGIN_DIR");
	struct plugin_registry *reg;
	const struct heru_plugin_entry *e;

	ck_assert_msg(dir && *dir, "HERU_PLUGIN_DIR is not set");
	logbuf[0] = 0;
	reg = plugin_registry_new(dir, &test_host);
	ck_assert_ptr_nonnull(reg);
	ck_assert_msg(plugin_registry_refused_count(reg) == 0, "refused: %s",
		plugin_registry_refused_count(reg) ? plugin_registry_refused_reason(reg, 0) : "");
	e = plugin_registry_find(reg, "mock");
	ck_assert_msg(e && e->kind == HERU_KIND_BACKEND && (e->flags & HERU_FLAG_UNLOADABLE),
		"mock missing from '%s'", dir);
	e = plugin_registry_find(reg, "motion");
	ck_assert_msg(e && e->kind == HERU_KIND_CONDITIONER, "motion missing");
	ck_assert_str_eq(e->capabilities[0], HERU_CAP_MOTION);
	e = plugin_registry_find(reg, "wan13b_cuda");
	ck_assert_msg(e && (e->flags & HERU_FLAG_NEEDS_GPU) && (e->flags & HERU_FLAG_THREAD_AFFINE),
		"wan13b_cuda missing");
	e = plugin_registry_find(reg, "wan14b_dist");
	ck_assert_msg(e && (e->flags & HERU_FLAG_NEEDS_GPU), "wan14b_dist missing");
	plugin_registry_free(reg);
}
END_TEST

/* ---- Wan shells ---- */

static int reports;
static char last_mode[64];

static void test_report(const struct heru_host *host, const char *mode, float progress)
{
	(void)host;
	(void)progress;
	if (mode)
		snprintf(last_mode, sizeof(last_mode), "%s", mode);
	reports++;
}

START_TEST(test_wan_without_gpu)
{
	const char *dir = getenv("HERU_PLUGIN_DIR");
	struct heru_host host = test_host;
	struct plugin_registry *reg;
	const struct heru_plugin_entry *e;
	char why[128], err[1024];
	void *inst;

	if (wan_shell_gpu_count(why, sizeof(why)) > 0)
		return; /* a GPU is present: covered by the GPU tests */
	host.report = test_report;
	reg = plugin_registry_new(dir, &test_host);
	e = plugin_registry_find(reg, "wan13b_cuda");
	ck_assert_ptr_nonnull(e);
	reports = 0;
	inst = e->backend->create(&host, "{\"model_variant\":\"wan-1.3b\"}", err, sizeof(err));
	ck_assert_ptr_null(inst);
	ck_assert_str_eq(err, "CUDA is required for wan-1.3b (no NVIDIA GPU found)");
	ck_assert_str_eq(last_mode, "core-imported");
	ck_assert_int_ge(reports, 1);
	e = plugin_registry_find(reg, "wan14b_dist");
	inst = e->backend->create(&host, "{\"model_variant\":\"wan-14b\",\"inference_topology\":"
		"\"distributed\",\"distributed_world_size\":2}", err, sizeof(err));
	ck_assert_ptr_null(inst);
	ck_assert_str_eq(err, "CUDA is required for wan-14b (no NVIDIA GPU found)");
	inst = e->backend->create(&host, "[1,2]", err, sizeof(err));
	ck_assert_ptr_null(inst);
	ck_assert_msg(strstr(err, "not a JSON object"), "%s", err);
	plugin_registry_free(reg);
}
END_TEST

START_TEST(test_wan_find_weights)
{
	const char *dir = make_dir();
	char path[4096], sub[1024];
	FILE *f;

	ck_assert_int_eq(wan_shell_find_weights(dir, "wan-1.3b", path, sizeof(path)), HERU_ENOENT);
	snprintf(sub, sizeof(sub), "%s/ckpts/wan_causal_dmd_v2v/model.pt", dir);
	ck_assert_str_eq(path, sub);
	snprintf(sub, sizeof(sub), "mkdir -p '%s/ckpts/wan_causal_dmd_v2v'", dir);
	ck_assert_int_eq(system(sub), 0);
	snprintf(sub, sizeof(sub), "%s/ckpts/wan_causal_dmd_v2v/model.pt", dir);
	f = fopen(sub, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	ck_assert_int_eq(wan_shell_find_weights(dir, "wan-1.3b", path, sizeof(path)), 0);
	ck_assert_str_eq(path, sub);
	/* the checkpoint file itself works as weights_path too */
	ck_assert_int_eq(wan_shell_find_weights(sub, "wan-1.3b", path, sizeof(path)), 0);
	/* the 14B checkpoint lives elsewhere */
	ck_assert_int_eq(wan_shell_find_weights(dir, "wan-14b", path, sizeof(path)), HERU_ENOENT);
	ck_assert_ptr_nonnull(strstr(path, "ckpts/wan_causal_dmd_v2v_14b/model.pt"));
	remove_dir(dir);
}
END_TEST

static bool cancel_now;

static bool test_cancelled(const struct heru_host *host)
{
	(void)host;
	return cancel_now;
}

/* With a (fake, when there is no real one) GPU: the weights and engine sentences. */
START_TEST(test_wan_with_gpu)
{
	const char *dir = getenv("HERU_PLUGIN_DIR"), *tmp;
	struct heru_host host = test_host;
	struct plugin_registry *reg;
	const struct heru_backend_vtable *v13, *v14;
	char why[128], err[2048], want[2048], path[1024], cfg[1200];
	FILE *f;

	if (wan_shell_gpu_count(why, sizeof(why)) == 0) {
		snprintf(path, sizeof(path), "%s/tests/fixtures/plugins/.libs/libcuda.so.1", builddir());
		ck_assert_msg(dlopen(path, RTLD_NOW | RTLD_GLOBAL) != NULL, "fake libcuda: %s",
			dlerror());
		ck_assert_int_eq(wan_shell_gpu_count(why, sizeof(why)), 1);
	} else if (getenv("HERU_WEIGHTS") || getenv("STREAMDIFFUSIONV2_PATH")) {
		return; /* a real GPU and real weights: nothing predictable to check here */
	}
	host.report = test_report;
	host.is_cancelled = test_cancelled;
	reg = plugin_registry_new(dir, &test_host);
	v13 = plugin_registry_find(reg, "wan13b_cuda")->backend;
	v14 = plugin_registry_find(reg, "wan14b_dist")->backend;
	tmp = make_dir();

	/* no weights at weights_path */
	snprintf(cfg, sizeof(cfg), "{\"model_variant\":\"wan-1.3b\",\"weights_path\":\"%s\"}", tmp);
	ck_assert_ptr_null(v13->create(&host, cfg, err, sizeof(err)));
	snprintf(want, sizeof(want), "weights not found at %s/ckpts/wan_causal_dmd_v2v/model.pt: set "
		"weights_path or STREAMDIFFUSIONV2_PATH/HERU_WEIGHTS to the StreamDiffusionV2 "
		"checkpoint folder (ckpts/wan_causal_dmd_v2v/model.pt)", tmp);
	ck_assert_str_eq(err, want);
	ck_assert_str_eq(last_mode, "core-imported");
	/* the environment stands in for weights_path */
	setenv("STREAMDIFFUSIONV2_PATH", tmp, 1);
	ck_assert_ptr_null(v13->create(&host, "{}", err, sizeof(err)));
	ck_assert_str_eq(err, want);
	unsetenv("STREAMDIFFUSIONV2_PATH");
	/* nothing configured: the working directory, as an absolute path */
	if (!getenv("HERU_WEIGHTS")) {
		char cwd[512], at[600];
		ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
		snprintf(at, sizeof(at), "weights not found at %s/ckpts/wan_causal_dmd_v2v/model.pt:", cwd);
		ck_assert_ptr_null(v13->create(&host, "{}", err, sizeof(err)));
		ck_assert_msg(strncmp(err, at, strlen(at)) == 0, "%s", err);
	}

	/* the generator present: the engine opens the rest of the folder and names what is
	 * missing (plugins/wan/wan_pipeline_files.c) */
	snprintf(path, sizeof(path), "mkdir -p '%s/ckpts/wan_causal_dmd_v2v'", tmp);
	ck_assert_int_eq(system(path), 0);
	snprintf(path, sizeof(path), "%s/ckpts/wan_causal_dmd_v2v/model.pt", tmp);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	ck_assert_ptr_null(v13->create(&host, cfg, err, sizeof(err)));
	snprintf(want, sizeof(want), "VAE weights not found at %s/wan_models/Wan2.1-T2V-1.3B/"
		"Wan2.1_VAE.pth", tmp);
	ck_assert_msg(strstr(err, want), "%s", err);
	ck_assert_str_eq(last_mode, "core-imported");

	/* 14B: its own checkpoint folder, and the world size against the GPU count */
	snprintf(cfg, sizeof(cfg), "{\"model_variant\":\"wan-14b\",\"weights_path\":\"%s\"}", tmp);
	ck_assert_ptr_null(v14->create(&host, cfg, err, sizeof(err)));
	ck_assert_msg(strstr(err, "ckpts/wan_causal_dmd_v2v_14b/model.pt:"), "%s", err);
	snprintf(cfg, sizeof(cfg), "{\"model_variant\":\"wan-14b\",\"inference_topology\":"
		"\"distributed\",\"distributed_world_size\":%d}", 1 + wan_shell_gpu_count(why, sizeof(why)));
	ck_assert_ptr_null(v14->create(&host, cfg, err, sizeof(err)));
	ck_assert_msg(strstr(err, "needs") && strstr(err, "NVIDIA GPUs but"), "%s", err);

	/* cancellation between steps */
	cancel_now = true;
	ck_assert_ptr_null(v13->create(&host, "{}", err, sizeof(err)));
	ck_assert_str_eq(err, "creation was cancelled");
	cancel_now = false;
	plugin_registry_free(reg);
	remove_dir(tmp);
}
END_TEST

/* ---- host frames ---- */

START_TEST(test_frames_refcount)
{
	struct heru_frame *f = plugin_frame_new(HERU_FORMAT_RGB8, 5, 3);
	struct heru_frame *m = plugin_frame_new(HERU_FORMAT_F32, 4, 4);

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(f->stride, 15);
	ck_assert_int_eq(m->stride, 16);
	ck_assert_int_eq(plugin_frame_refcount(f), 1);
	ck_assert_ptr_eq(heru_frame_retain(f), f);
	ck_assert_int_eq(plugin_frame_refcount(f), 2);
	((uint8_t *)heru_frame_row(f, 2))[14] = 7; /* last byte is writable */
	heru_frame_release(f);
	ck_assert_int_eq(plugin_frame_refcount(f), 1);
	heru_frame_release(f); /* freed: ASan would catch a leak or a double free */
	heru_frame_release(m);
	heru_frame_release(NULL);
	ck_assert_ptr_null(plugin_frame_new(HERU_FORMAT_RGB8, 0, 10));
	ck_assert_ptr_null(plugin_frame_new(HERU_FORMAT_RGB8, 100000, 10));
	ck_assert_ptr_null(plugin_frame_new(99, 10, 10));
}
END_TEST

static Suite *plugin_suite(void)
{
	Suite *s = suite_create("plugin");
	TCase *tc = tcase_create("loader");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_good_loads);
	tcase_add_test(tc, test_listing_json);
	tcase_add_test(tc, test_wrong_major);
	tcase_add_test(tc, test_newer_minor);
	tcase_add_test(tc, test_bad_fingerprint);
	tcase_add_test(tc, test_missing_entry);
	tcase_add_test(tc, test_tiny_entry);
	tcase_add_test(tc, test_duplicate_id);
	tcase_add_test(tc, test_init_fails);
	tcase_add_test(tc, test_incomplete_vtable);
	tcase_add_test(tc, test_abi_1_0_backend_loads);
	tcase_add_test(tc, test_not_shared_object);
	tcase_add_test(tc, test_missing_dir);
	tcase_add_test(tc, test_check_entry_fields);
	tcase_add_test(tc, test_build_plugins_load);
	tcase_add_test(tc, test_wan_without_gpu);
	tcase_add_test(tc, test_wan_find_weights);
	tcase_add_test(tc, test_frames_refcount);
	tcase_add_test(tc, test_wan_with_gpu); /* last: may load a fake libcuda.so.1 */
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return check_run_suite(plugin_suite());
}
