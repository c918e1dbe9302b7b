# plugins/wan/plugin.mk: the wan13b_cuda / wan14b_dist plugins (included by the top-level Makefile.am).
# They link no CUDA library (the GPU is probed with dlopen("libcuda.so.1") at create
# time), so they build, load and explain themselves on machines without CUDA too.
plugin_LTLIBRARIES += plugins/wan/wan13b_cuda.la plugins/wan/wan14b_dist.la

# One source for both (plugin_wan.c), the 14B build selected by -DHERU_WAN_14B.
plugins_wan_wan13b_cuda_la_SOURCES = plugins/wan/plugin_wan.c plugins/wan/plugin_shell.c \
	plugins/wan/plugin_shell.h
plugins_wan_wan13b_cuda_la_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
plugins_wan_wan13b_cuda_la_LDFLAGS = $(HERU_PLUGIN_LINK)
plugins_wan_wan13b_cuda_la_LIBADD = $(JANSSON_LIBS) $(LIBS)

plugins_wan_wan14b_dist_la_SOURCES = plugins/wan/plugin_wan.c plugins/wan/plugin_shell.c \
	plugins/wan/plugin_shell.h
plugins_wan_wan14b_dist_la_CPPFLAGS = $(AM_CPPFLAGS) -DHERU_WAN_14B
plugins_wan_wan14b_dist_la_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
plugins_wan_wan14b_dist_la_LDFLAGS = $(HERU_PLUGIN_LINK)
plugins_wan_wan14b_dist_la_LIBADD = $(JANSSON_LIBS) $(LIBS)

# ---- pipe: the StreamDiffusionV2 frame-to-frame pipeline (wan_pipeline*.c) --------------
# The pipeline lives in its own convenience library (not libwan.la) because the plugins
# build it with the CUDA engines when configure found CUDA (HERU_WAN_PIPELINE_CUDA), while
# the tests and CUDA-less builds use the CPU-only copy.
WANPIPE_SRC = plugins/wan/wan_pipeline.c plugins/wan/wan_pipeline.h \
	plugins/wan/wan_pipeline_internal.h plugins/wan/wan_pipeline_files.c \
	plugins/wan/wan_resize.c plugins/wan/wan_resize.h
noinst_LTLIBRARIES += libwanpipe.la
libwanpipe_la_SOURCES = $(WANPIPE_SRC)
libwanpipe_la_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/plugins/wan
libwanpipe_la_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(PTHREAD_CFLAGS)
WANPIPE_BACKEND = plugins/wan/wan_pipeline_backend.c plugins/wan/wan_pipeline_backend.h
plugins_wan_wan13b_cuda_la_SOURCES += $(WANPIPE_BACKEND)
plugins_wan_wan14b_dist_la_SOURCES += $(WANPIPE_BACKEND)
if HAVE_CUDA
# The plugins' copy knows how to reach the CUDA engines, which live in their own module
# wan_cuda_engine.so (installed in $(plugindir)/wan-cuda/, not a plugin): the plugins link no
# CUDA library and dlopen the module only when a CUDA instance is built.
noinst_LTLIBRARIES += libwanpipecuda.la
libwanpipecuda_la_SOURCES = $(WANPIPE_SRC)
libwanpipecuda_la_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/plugins/wan -DHERU_WAN_PIPELINE_CUDA \
	-DWAN_CUDA_ENGINE_BUILD='"$(abs_top_builddir)/plugins/wan/.libs/wan_cuda_engine.so"' \
	-DWAN_CUDA_ENGINE_INSTALL='"$(wancudadir)/wan_cuda_engine.so"'
libwanpipecuda_la_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(PTHREAD_CFLAGS)
WANPIPE_PLUGIN_LIBS = libwanpipecuda.la libwan.la -ldl

wancudadir = $(plugindir)/wan-cuda
wancuda_LTLIBRARIES = plugins/wan/wan_cuda_engine.la
plugins_wan_wan_cuda_engine_la_SOURCES = plugins/wan/wan_pipeline_cuda.c \
	plugins/wan/cuda/dit_cuda_engine.c
plugins_wan_wan_cuda_engine_la_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir) -I$(top_srcdir)/plugins/wan \
	$(CUDA_CFLAGS) -DHERU_DIT_CUDA_ENGINE
plugins_wan_wan_cuda_engine_la_CFLAGS = $(AM_CFLAGS) -Wno-strict-prototypes
plugins_wan_wan_cuda_engine_la_LDFLAGS = -module -avoid-version -shared -no-undefined \
	-export-symbols-regex '^wan_cuda_engine$$'
plugins_wan_wan_cuda_engine_la_LIBADD = libwanvaecuda.la libwant5cuda.la libwancuda.la libwan.la \
	$(CUDA_LIBS) $(JANSSON_LIBS) $(PTHREAD_LIBS) -lstdc++ -lm
# the pipeline on CUDA against the CPU reference pipeline (tiny model; exits 77 without a GPU)
GPU_TESTS += tests/gpu_wan_pipeline
check_PROGRAMS += tests/gpu_wan_pipeline
tests_gpu_wan_pipeline_SOURCES = tests/gpu_wan_pipeline.c
tests_gpu_wan_pipeline_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/plugins/wan $(CUDA_CFLAGS) \
	-DWAN_TOP_SRCDIR='"$(abs_top_srcdir)"'
tests_gpu_wan_pipeline_CFLAGS = $(AM_CFLAGS) -Wno-strict-prototypes $(JANSSON_CFLAGS)
tests_gpu_wan_pipeline_LDADD = libwanpipecuda.la libwan.la -ldl $(CUDA_LIBS) $(JANSSON_LIBS) \
	$(PTHREAD_LIBS) -lm
# the wan_cuda_engine.so the test dlopens (from the build tree) must be built first
EXTRA_tests_gpu_wan_pipeline_DEPENDENCIES = plugins/wan/wan_cuda_engine.la
else
EXTRA_DIST += plugins/wan/wan_pipeline_cuda.c tests/gpu_wan_pipeline.c
WANPIPE_PLUGIN_LIBS = libwanpipe.la libwan.la
endif
plugins_wan_wan13b_cuda_la_LIBADD += $(WANPIPE_PLUGIN_LIBS) $(PTHREAD_LIBS) -lm
plugins_wan_wan14b_dist_la_LIBADD += $(WANPIPE_PLUGIN_LIBS) $(PTHREAD_LIBS) -lm
# check_plugin (server/sdk.mk) compiles plugin_shell.c, which now calls the backend.
tests_check_plugin_SOURCES += $(WANPIPE_BACKEND)
tests_check_plugin_LDADD += libwanpipe.la libwan.la $(PTHREAD_LIBS) -lm

check_PROGRAMS += tests/check_wan_pipeline tests/check_wan_resize
TESTS += tests/check_wan_pipeline tests/check_wan_resize tests/integration/test_wan_cpu.py
tests_check_wan_resize_SOURCES = tests/check_wan_resize.c
tests_check_wan_resize_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/plugins/wan
tests_check_wan_resize_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_wan_resize_LDADD = libwanpipe.la libwan.la $(CHECK_LIBS) $(JANSSON_LIBS) $(PTHREAD_LIBS) -lm
dist_noinst_SCRIPTS += tests/integration/test_wan_cpu.py tests/gpu/wan_pipeline_e2e.sh \
	tests/gpu/make_tiny_t5.py
tests_check_wan_pipeline_SOURCES = tests/check_wan_pipeline.c
tests_check_wan_pipeline_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/plugins/wan \
	-DWAN_TOP_SRCDIR='"$(abs_top_srcdir)"'
tests_check_wan_pipeline_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(JANSSON_CFLAGS)
tests_check_wan_pipeline_LDADD = libwanpipe.la libwan.la $(CHECK_LIBS) $(JANSSON_LIBS) \
	$(PTHREAD_LIBS) -lm
# heru-wan random-vae: VAE/TAEHV random weights for pipeline weights folders
heru_wan_SOURCES += plugins/wan/cli_pipeline.c
TESTS += tests/random_vae.sh
dist_noinst_SCRIPTS += tests/random_vae.sh
# ---- end pipe ----------------------------------------------------------------------------
