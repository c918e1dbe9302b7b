# server/sdk.mk: plugin loader, smoke/bench CLIs (included by the top-level Makefile.am).

# The loader and host frames, as a convenience library herud and the tests link:
#   herud_LDADD += server/libheru_loader.la
noinst_LTLIBRARIES += server/libheru_loader.la
server_libheru_loader_la_SOURCES = server/plugin.c server/plugin.h
server_libheru_loader_la_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
server_libheru_loader_la_LIBADD = $(JANSSON_LIBS) $(LIBS)
