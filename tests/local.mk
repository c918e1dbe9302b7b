# tests/local.mk: build fragment (included by the top-level Makefile.am).

# ---- herud modules (Check suites) ----
# check_util.h: the suite runner every tests/check_*.c main() shares.
EXTRA_DIST += tests/check_util.h
HERUD_TEST_CFLAGS = $(AM_CFLAGS) -I$(top_srcdir)/server $(CHECK_CFLAGS) $(JANSSON_CFLAGS) $(LIBEVENT_CFLAGS) \
	$(TURBOJPEG_CFLAGS) $(WSLAY_CFLAGS) $(PTHREAD_CFLAGS)
HERUD_TEST_LIBS = server/libherud.la $(CHECK_LIBS)

check_PROGRAMS += tests/check_config tests/check_protocol tests/check_jpeg tests/check_metrics
TESTS += tests/check_config tests/check_protocol tests/check_jpeg tests/check_metrics
tests_check_config_SOURCES = tests/check_config.c
tests_check_config_CFLAGS = $(HERUD_TEST_CFLAGS)
tests_check_config_LDADD = $(HERUD_TEST_LIBS)
tests_check_protocol_SOURCES = tests/check_protocol.c
tests_check_protocol_CFLAGS = $(HERUD_TEST_CFLAGS)
tests_check_protocol_LDADD = $(HERUD_TEST_LIBS)
tests_check_jpeg_SOURCES = tests/check_jpeg.c
tests_check_jpeg_CFLAGS = $(HERUD_TEST_CFLAGS)
tests_check_jpeg_LDADD = $(HERUD_TEST_LIBS)
tests_check_metrics_SOURCES = tests/check_metrics.c
tests_check_metrics_CFLAGS = $(HERUD_TEST_CFLAGS)
tests_check_metrics_LDADD = $(HERUD_TEST_LIBS)

# ---- herud integration tests (Python 3 standard library; real server, real sockets) ----
HERUD_INTEGRATION = tests/integration/test_rest.py tests/integration/test_ws.py tests/integration/test_swap.py
TESTS += $(HERUD_INTEGRATION)
dist_noinst_SCRIPTS += $(HERUD_INTEGRATION)
dist_noinst_DATA += tests/integration/herutest.py tests/fixtures/server/camera_320x240.jpg \
	tests/fixtures/server/camera_160x120.jpg

# Backends that run on the CPU: two flagged NEEDS_GPU (drain-first hot swap test) and a
# chunked one (output pacing and inbox tests), also built as an ABI 1.0 plugin.
check_LTLIBRARIES += tests/fixtures/server/fakegpu_a.la tests/fixtures/server/fakegpu_b.la \
	tests/fixtures/server/fakechunk.la tests/fixtures/server/fakechunk_old.la
tests_fixtures_server_fakechunk_old_la_SOURCES = tests/fixtures/server/fake_gpu.c
tests_fixtures_server_fakechunk_old_la_CPPFLAGS = $(AM_CPPFLAGS) -DFAKE_ID='"fakechunk_old"' -DFAKE_CHUNK \
	-DFAKE_ABI_1_0
tests_fixtures_server_fakechunk_old_la_LDFLAGS = -module -avoid-version -shared -rpath /nowhere -no-undefined
tests_fixtures_server_fakechunk_la_SOURCES = tests/fixtures/server/fake_gpu.c
tests_fixtures_server_fakechunk_la_CPPFLAGS = $(AM_CPPFLAGS) -DFAKE_ID='"fakechunk"' -DFAKE_CHUNK
tests_fixtures_server_fakechunk_la_LDFLAGS = -module -avoid-version -shared -rpath /nowhere -no-undefined
tests_fixtures_server_fakegpu_a_la_SOURCES = tests/fixtures/server/fake_gpu.c
tests_fixtures_server_fakegpu_a_la_CPPFLAGS = $(AM_CPPFLAGS) -DFAKE_ID='"fakegpu_a"'
tests_fixtures_server_fakegpu_a_la_LDFLAGS = -module -avoid-version -shared -rpath /nowhere -no-undefined
tests_fixtures_server_fakegpu_b_la_SOURCES = tests/fixtures/server/fake_gpu.c
tests_fixtures_server_fakegpu_b_la_CPPFLAGS = $(AM_CPPFLAGS) -DFAKE_ID='"fakegpu_b"'
tests_fixtures_server_fakegpu_b_la_LDFLAGS = -module -avoid-version -shared -rpath /nowhere -no-undefined
