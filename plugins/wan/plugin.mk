# plugins/wan/plugin.mk: the wan13b_cuda / wan14b_dist plugins (included by the top-level Makefile.am).
# They link no CUDA library (the GPU is probed with dlopen("libcuda.so.1") at create
# time), so they build, load and explain themselves on machines without CUDA too.
plugin_LTLIBRARIES += plugins/wan/wan13b_cuda.la plugins/wan/wan14b_dist.la

plugins_wan_wan13b_cuda_la_SOURCES = plugins/wan/plugin_wan13b.c plugins/wan/plugin_shell.c \
	plugins/wan/plugin_shell.h
plugins_wan_wan13b_cuda_la_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
plugins_wan_wan13b_cuda_la_LDFLAGS = $(HERU_PLUGIN_LINK)
plugins_wan_wan13b_cuda_la_LIBADD = $(JANSSON_LIBS) $(LIBS)

plugins_wan_wan14b_dist_la_SOURCES = plugins/wan/plugin_wan14b.c plugins/wan/plugin_shell.c \
	plugins/wan/plugin_shell.h
plugins_wan_wan14b_dist_la_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
plugins_wan_wan14b_dist_la_LDFLAGS = $(HERU_PLUGIN_LINK)
plugins_wan_wan14b_dist_la_LIBADD = $(JANSSON_LIBS) $(LIBS)
