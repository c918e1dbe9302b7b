# plugins/wan/io.mk: the Wan engine's shared library (tensor files, configs, DiT weight table)
# and the heru-wan CLI frame (included by the top-level Makefile.am, before dit/vae/t5/cuda/plugin).
# Other fragments append: libwan_la_SOURCES += ..., heru_wan_SOURCES += plugins/wan/cli_<area>.c
noinst_LTLIBRARIES += libwan.la
libwan_la_SOURCES = \
	plugins/wan/wt_file.c plugins/wan/wt_file.h plugins/wan/wt_internal.h \
	plugins/wan/wan_err.h plugins/wan/wan_clock.h \
	plugins/wan/wt_safetensors.c plugins/wan/wt_writer.c \
	plugins/wan/wt_torchzip.c plugins/wan/wt_unpickle.c \
	plugins/wan/wan_config.c plugins/wan/wan_config.h \
	plugins/wan/wan_dit_weights.c plugins/wan/wan_dit_weights.h
libwan_la_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/plugins/wan
libwan_la_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(PTHREAD_CFLAGS)
libwan_la_LIBADD = $(JANSSON_LIBS) $(PTHREAD_LIBS) -lm

bin_PROGRAMS += heru-wan
heru_wan_SOURCES = plugins/wan/heru_wan.c plugins/wan/cli.h plugins/wan/cli_io.c
heru_wan_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/plugins/wan
heru_wan_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(PTHREAD_CFLAGS)
heru_wan_LDADD = libwan.la $(JANSSON_LIBS) $(PTHREAD_LIBS) -lm

# Tests of the loaders and configs (fixtures: tests/reference/make_loader_fixtures.py).
check_PROGRAMS += tests/check_wt_file tests/check_wan_config
TESTS += tests/check_wt_file tests/check_wan_config
tests_check_wt_file_SOURCES = tests/check_wt_file.c tests/dit_test_util.c tests/dit_test_util.h
tests_check_wt_file_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/plugins/wan
tests_check_wt_file_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(JANSSON_CFLAGS)
tests_check_wt_file_LDADD = libwan.la $(CHECK_LIBS) $(JANSSON_LIBS) $(PTHREAD_LIBS) -lm
tests_check_wan_config_SOURCES = tests/check_wan_config.c
tests_check_wan_config_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/plugins/wan
tests_check_wan_config_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(JANSSON_CFLAGS)
tests_check_wan_config_LDADD = libwan.la $(CHECK_LIBS) $(JANSSON_LIBS) $(PTHREAD_LIBS) -lm
EXTRA_DIST += tests/reference/make_loader_fixtures.py tests/fixtures/wan/loader
