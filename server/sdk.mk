# server/sdk.mk: plugin loader, smoke/bench CLIs (included by the top-level Makefile.am).

# The loader and host frames, as a convenience library herud and the tests link:
#   herud_LDADD += server/libheru_loader.la
noinst_LTLIBRARIES += server/libheru_loader.la
server_libheru_loader_la_SOURCES = server/plugin.c server/plugin.h
server_libheru_loader_la_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
server_libheru_loader_la_LIBADD = $(JANSSON_LIBS) $(LIBS)

# The blocking HTTP + masking WebSocket client (CLIs, integration tests):
#   foo_LDADD += server/libheru_wsclient.la
noinst_LTLIBRARIES += server/libheru_wsclient.la
server_libheru_wsclient_la_SOURCES = server/ws_client.c server/ws_client.h

# ---- CLIs that drive a running herud ----
bin_PROGRAMS += server/heru-smoke server/heru-bench
HERU_CLI_SOURCES = server/cli_util.c server/cli_util.h
server_heru_smoke_SOURCES = server/heru_smoke.c $(HERU_CLI_SOURCES)
server_heru_smoke_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(TURBOJPEG_CFLAGS)
server_heru_smoke_LDADD = server/libheru_wsclient.la $(JANSSON_LIBS) $(TURBOJPEG_LIBS) $(LIBS)
server_heru_bench_SOURCES = server/heru_bench.c $(HERU_CLI_SOURCES)
server_heru_bench_CFLAGS = $(AM_CFLAGS) $(PTHREAD_CFLAGS) $(JANSSON_CFLAGS) $(TURBOJPEG_CFLAGS)
server_heru_bench_LDADD = server/libheru_wsclient.la $(JANSSON_LIBS) $(TURBOJPEG_LIBS) \
	$(PTHREAD_LIBS) $(LIBS)

# ---- plugins for tests: one deliberately broken plugin per loader refusal path ----
FIXTURE_PLUGIN_LINK = -module -avoid-version -shared -rpath /nowhere -no-undefined
check_LTLIBRARIES += tests/fixtures/plugins/good.la tests/fixtures/plugins/dup_id.la \
	tests/fixtures/plugins/wrong_major.la tests/fixtures/plugins/newer_minor.la \
	tests/fixtures/plugins/bad_fingerprint.la tests/fixtures/plugins/no_entry.la \
	tests/fixtures/plugins/tiny_entry.la tests/fixtures/plugins/init_fails.la \
	tests/fixtures/plugins/no_process.la tests/fixtures/plugins/libcuda.la
tests_fixtures_plugins_good_la_SOURCES = tests/fixtures/plugins/fixture.c
tests_fixtures_plugins_good_la_CPPFLAGS = $(AM_CPPFLAGS) -DFIXTURE_GOOD
tests_fixtures_plugins_good_la_LDFLAGS = $(FIXTURE_PLUGIN_LINK)
tests_fixtures_plugins_dup_id_la_SOURCES = tests/fixtures/plugins/fixture.c
tests_fixtures_plugins_dup_id_la_CPPFLAGS = $(AM_CPPFLAGS) -DFIXTURE_DUP_ID
tests_fixtures_plugins_dup_id_la_LDFLAGS = $(FIXTURE_PLUGIN_LINK)
tests_fixtures_plugins_wrong_major_la_SOURCES = tests/fixtures/plugins/fixture.c
tests_fixtures_plugins_wrong_major_la_CPPFLAGS = $(AM_CPPFLAGS) -DFIXTURE_WRONG_MAJOR
tests_fixtures_plugins_wrong_major_la_LDFLAGS = $(FIXTURE_PLUGIN_LINK)
tests_fixtures_plugins_newer_minor_la_SOURCES = tests/fixtures/plugins/fixture.c
tests_fixtures_plugins_newer_minor_la_CPPFLAGS = $(AM_CPPFLAGS) -DFIXTURE_NEWER_MINOR
tests_fixtures_plugins_newer_minor_la_LDFLAGS = $(FIXTURE_PLUGIN_LINK)
tests_fixtures_plugins_bad_fingerprint_la_SOURCES = tests/fixtures/plugins/fixture.c
tests_fixtures_plugins_bad_fingerprint_la_CPPFLAGS = $(AM_CPPFLAGS) -DFIXTURE_BAD_FINGERPRINT
tests_fixtures_plugins_bad_fingerprint_la_LDFLAGS = $(FIXTURE_PLUGIN_LINK)
tests_fixtures_plugins_no_entry_la_SOURCES = tests/fixtures/plugins/fixture.c
tests_fixtures_plugins_no_entry_la_CPPFLAGS = $(AM_CPPFLAGS) -DFIXTURE_NO_ENTRY
tests_fixtures_plugins_no_entry_la_LDFLAGS = $(FIXTURE_PLUGIN_LINK)
tests_fixtures_plugins_tiny_entry_la_SOURCES = tests/fixtures/plugins/fixture.c
tests_fixtures_plugins_tiny_entry_la_CPPFLAGS = $(AM_CPPFLAGS) -DFIXTURE_TINY_ENTRY
tests_fixtures_plugins_tiny_entry_la_LDFLAGS = $(FIXTURE_PLUGIN_LINK)
tests_fixtures_plugins_init_fails_la_SOURCES = tests/fixtures/plugins/fixture.c
tests_fixtures_plugins_init_fails_la_CPPFLAGS = $(AM_CPPFLAGS) -DFIXTURE_INIT_FAILS
tests_fixtures_plugins_init_fails_la_LDFLAGS = $(FIXTURE_PLUGIN_LINK)
tests_fixtures_plugins_no_process_la_SOURCES = tests/fixtures/plugins/fixture.c
tests_fixtures_plugins_no_process_la_CPPFLAGS = $(AM_CPPFLAGS) -DFIXTURE_NO_PROCESS
tests_fixtures_plugins_no_process_la_LDFLAGS = $(FIXTURE_PLUGIN_LINK)

# a fake libcuda.so.1 with one "GPU" (see fake_cuda.c)
tests_fixtures_plugins_libcuda_la_SOURCES = tests/fixtures/plugins/fake_cuda.c
tests_fixtures_plugins_libcuda_la_LDFLAGS = -rpath /nowhere -version-info 1:0:0 -no-undefined

# ---- Check suites ----
check_PROGRAMS += tests/check_plugin tests/check_mock tests/check_ws_client
TESTS += tests/check_plugin tests/check_mock tests/check_ws_client tests/sdk_cli.sh
EXTRA_DIST += tests/sdk_cli.sh

tests_check_plugin_SOURCES = tests/check_plugin.c plugins/wan/plugin_shell.c \
	plugins/wan/plugin_shell.h
tests_check_plugin_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(JANSSON_CFLAGS)
tests_check_plugin_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/server -I$(top_srcdir)/plugins/wan
tests_check_plugin_LDADD = server/libheru_loader.la $(CHECK_LIBS) $(JANSSON_LIBS) $(LIBS)

tests_check_mock_SOURCES = tests/check_mock.c
tests_check_mock_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(JANSSON_CFLAGS)
tests_check_mock_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/server
tests_check_mock_LDADD = server/libheru_loader.la $(CHECK_LIBS) $(JANSSON_LIBS) $(LIBS)

tests_check_ws_client_SOURCES = tests/check_ws_client.c $(HERU_CLI_SOURCES)
tests_check_ws_client_CFLAGS = $(AM_CFLAGS) $(PTHREAD_CFLAGS) $(CHECK_CFLAGS) $(TURBOJPEG_CFLAGS)
tests_check_ws_client_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/server
tests_check_ws_client_LDADD = server/libheru_wsclient.la $(CHECK_LIBS) $(TURBOJPEG_LIBS) \
	$(PTHREAD_LIBS) $(LIBS)
