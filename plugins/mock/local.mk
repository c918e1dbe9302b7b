# plugins/mock/local.mk: mock.so, the deterministic CPU stylizer (included by the
# top-level Makefile.am), and the example conditioner plugins/motion.
plugin_LTLIBRARIES += plugins/mock/mock.la
plugins_mock_mock_la_SOURCES = plugins/mock/mock.c plugins/mock/style.c plugins/mock/style.h
plugins_mock_mock_la_LDFLAGS = $(HERU_PLUGIN_LINK)
plugins_mock_mock_la_LIBADD = $(LIBS)

include $(srcdir)/plugins/motion/local.mk
