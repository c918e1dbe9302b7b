# server/local.mk: herud (included by the top-level Makefile.am).

# Everything but main(), as a convenience library that herud and the Check suites link.
noinst_LTLIBRARIES += server/libherud.la
server_libherud_la_SOURCES = \
	server/cfg.c server/cfg.h \
	server/http.c server/http.h \
	server/jpeg.c server/jpeg.h \
	server/log.c server/log.h \
	server/metrics.c server/metrics.h \
	server/pipeline.c server/pipeline.h \
	server/protocol.c server/protocol.h \
	server/session.c server/session.h \
	server/ws.c server/ws.h
server_libherud_la_CFLAGS = $(AM_CFLAGS) $(PTHREAD_CFLAGS) $(LIBEVENT_CFLAGS) $(WSLAY_CFLAGS) \
	$(TURBOJPEG_CFLAGS) $(JANSSON_CFLAGS)
server_libherud_la_LIBADD = server/libheru_loader.la $(LIBEVENT_LIBS) $(WSLAY_LIBS) $(TURBOJPEG_LIBS) \
	$(JANSSON_LIBS) $(PTHREAD_LIBS) $(LIBS)

bin_PROGRAMS += herud
herud_SOURCES = server/main.c
herud_CFLAGS = $(server_libherud_la_CFLAGS)
# the installed plugin folder, expanded by make (config.h's HERU_PLUGINDIR keeps ${exec_prefix})
herud_CPPFLAGS = $(AM_CPPFLAGS) -DHERUD_PLUGINDIR='"$(plugindir)"' 
herud_LDADD = server/libherud.la
