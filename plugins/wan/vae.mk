# plugins/wan/vae.mk: Wan2.1 causal 3D VAE and TAEHV decoder (fp32 C reference), their tests
# and fixtures (included by the top-level Makefile.am).

libwan_la_SOURCES += \
	plugins/wan/vae_ops.c plugins/wan/vae_ops.h \
	plugins/wan/vae_config.c plugins/wan/vae_config.h \
	plugins/wan/vae_source.c plugins/wan/vae_source.h \
	plugins/wan/vae_model.c plugins/wan/vae_model.h plugins/wan/vae_model_internal.h \
	plugins/wan/taehv_model.c plugins/wan/taehv_model.h plugins/wan/taehv_model_internal.h
heru_wan_SOURCES += plugins/wan/cli_vae.c

VAE_TEST_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/plugins/wan $(JANSSON_CFLAGS) $(CHECK_CFLAGS)
VAE_TEST_LDADD = libwan.la $(JANSSON_LIBS) $(CHECK_LIBS) $(PTHREAD_LIBS) -lm

# check_vae also runs the heru-wan CLI (vae-encode, vae-decode) on the fixtures.
check_PROGRAMS += tests/check_vae tests/check_taehv
TESTS += tests/check_vae tests/check_taehv

tests_check_vae_SOURCES = tests/check_vae.c tests/check_vae_fixture.c tests/check_vae_fixture.h
tests_check_vae_CPPFLAGS = $(VAE_TEST_CPPFLAGS)
tests_check_vae_LDADD = $(VAE_TEST_LDADD)
EXTRA_tests_check_vae_DEPENDENCIES = heru-wan$(EXEEXT)

tests_check_taehv_SOURCES = tests/check_taehv.c tests/check_vae_fixture.c \
	tests/check_vae_fixture.h
tests_check_taehv_CPPFLAGS = $(VAE_TEST_CPPFLAGS)
tests_check_taehv_LDADD = $(VAE_TEST_LDADD)

dist_noinst_DATA += \
	tests/fixtures/wan/vae/tiny_config.json \
	tests/fixtures/wan/vae/tiny_vae.safetensors \
	tests/fixtures/wan/vae/tiny_taehv.safetensors \
	tests/fixtures/wan/vae/tiny_golden.safetensors
EXTRA_DIST += tests/reference/wan_vae_ref.py plugins/wan/cuda/vae_notes.md

# ---- CUDA engine (only with CUDA): own convenience libraries, since cuda.mk (which defines
# libwancuda.la and the .cu rule) is included after this fragment. The .cu library has no
# per-target flags so cuda.mk's suffix rule builds it.
VAE_CUDA_FILES = plugins/wan/cuda/vae_cuda.c plugins/wan/cuda/vae_cuda.h \
	plugins/wan/cuda/vae_conv_be.c plugins/wan/cuda/vae_conv_be.h \
	plugins/wan/cuda/vae_kernels.h
if HAVE_CUDA
noinst_LTLIBRARIES += libwanvaecuda.la libwanvaecudak.la
libwanvaecudak_la_SOURCES = plugins/wan/cuda/vae_kernels.cu
libwanvaecuda_la_SOURCES = $(VAE_CUDA_FILES)
libwanvaecuda_la_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir) -I$(top_srcdir)/plugins/wan $(CUDA_CFLAGS)
libwanvaecuda_la_CFLAGS = $(AM_CFLAGS) -Wno-strict-prototypes
libwanvaecuda_la_LIBADD = libwanvaecudak.la
plugins/wan/cuda/vae_kernels.lo: plugins/wan/cuda/vae_kernels.h plugins/wan/cuda/cuda_check.h

heru_wan_CPPFLAGS += -DHERU_WAN_VAE_CUDA -I$(top_srcdir) $(CUDA_CFLAGS)
heru_wan_LDADD += libwanvaecuda.la libwancuda.la $(CUDA_LIBS) -lstdc++

GPU_TESTS += tests/gpu_vae
check_PROGRAMS += tests/gpu_vae
tests_gpu_vae_SOURCES = tests/gpu_vae.c tests/check_vae_fixture.c tests/check_vae_fixture.h
tests_gpu_vae_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir) -I$(top_srcdir)/plugins/wan \
	$(CUDA_CFLAGS) $(JANSSON_CFLAGS)
tests_gpu_vae_CFLAGS = $(AM_CFLAGS) -Wno-strict-prototypes
tests_gpu_vae_LDADD = libwanvaecuda.la libwancuda.la libwan.la $(CUDA_LIBS) $(JANSSON_LIBS) \
	$(PTHREAD_LIBS) -lstdc++ -lm
else
EXTRA_DIST += $(VAE_CUDA_FILES) plugins/wan/cuda/vae_kernels.cu tests/gpu_vae.c
endif
