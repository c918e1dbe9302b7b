# plugins/mock/local.mk: mock.so, the deterministic CPU stylizer (included by the
# top-level Makefile.am), and the example conditioner plugins/motion.
plugin_LTLIBRARIES += plugins/mock/mock.la
plugins_mock_mock_la_SOURCES = plugins/mock/mock.c plugins/mock/style.c plugins/mock/style.h
plugins_mock_mock_la_LDFLAGS = $(HERU_PLUGIN_LINK)
plugins_mock_mock_la_LIBADD = $(LIBS)

include $(srcdir)/plugins/motion/local.mk

# bench-mock: time the stylizer alone (ms per frame), not run by `make check`.
noinst_PROGRAMS += plugins/mock/bench-mock
plugins_mock_bench_mock_SOURCES = plugins/mock/bench_mock.c plugins/mock/mock.c \
	plugins/mock/style.c plugins/mock/style.h
plugins_mock_bench_mock_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/server
plugins_mock_bench_mock_LDADD = server/libheru_loader.la $(LIBS)
