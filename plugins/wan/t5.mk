# plugins/wan/t5.mk: the umT5 tokenizer and text encoder (included by the top-level Makefile.am).
libwan_la_SOURCES += \
	plugins/wan/tokenizer.c plugins/wan/tokenizer.h plugins/wan/tokenizer_internal.h \
	plugins/wan/tokenizer_load.c \
	plugins/wan/tokenizer_clean.c \
	plugins/wan/tokenizer_html.c plugins/wan/tokenizer_html.h \
	plugins/wan/t5_model.c plugins/wan/t5_model.h \
	plugins/wan/t5_ref.c plugins/wan/t5_ref.h
heru_wan_SOURCES += plugins/wan/cli_t5.c

# The CUDA encoder: host code in libwant5cuda.la, kernels (nvcc, the .cu.lo rule of cuda.mk) in
# libwant5cudak.la; linked with ditcuda's libwancuda.la (cuBLASLt wrapper, arena, checks).
T5CUDA_HOST = plugins/wan/cuda/t5_cuda.c plugins/wan/cuda/t5_cuda.h plugins/wan/cuda/t5_kernels.h
if HAVE_CUDA
noinst_LTLIBRARIES += libwant5cuda.la libwant5cudak.la
libwant5cudak_la_SOURCES = plugins/wan/cuda/t5_kernels.cu
libwant5cuda_la_SOURCES = $(T5CUDA_HOST)
libwant5cuda_la_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir) -I$(top_srcdir)/plugins/wan $(CUDA_CFLAGS)
libwant5cuda_la_CFLAGS = $(AM_CFLAGS) -Wno-strict-prototypes
libwant5cuda_la_LIBADD = libwant5cudak.la
T5CUDA_LIBS = libwant5cuda.la libwancuda.la libwan.la $(CUDA_LIBS) -lstdc++
heru_wan_LDADD += $(T5CUDA_LIBS)
plugins/wan/cuda/t5_kernels.lo: plugins/wan/cuda/t5_kernels.h plugins/wan/cuda/cuda_check.h

GPU_TESTS += tests/gpu_t5
check_PROGRAMS += tests/gpu_t5
tests_gpu_t5_SOURCES = tests/gpu_t5.c
tests_gpu_t5_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir) -I$(top_srcdir)/plugins/wan $(CUDA_CFLAGS) \
	-DT5_TOP_SRCDIR='"$(abs_top_srcdir)"'
tests_gpu_t5_CFLAGS = $(AM_CFLAGS) -Wno-strict-prototypes
tests_gpu_t5_LDADD = libwan.la $(T5CUDA_LIBS) $(JANSSON_LIBS) $(PTHREAD_LIBS) -lm
else
EXTRA_DIST += $(T5CUDA_HOST) plugins/wan/cuda/t5_kernels.cu tests/gpu_t5.c
endif

check_PROGRAMS += tests/check_tokenizer tests/check_t5
TESTS += tests/check_tokenizer tests/check_t5
tests_check_tokenizer_SOURCES = tests/check_tokenizer.c
tests_check_tokenizer_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/plugins/wan
tests_check_tokenizer_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_tokenizer_LDADD = libwan.la $(CHECK_LIBS) $(JANSSON_LIBS) $(PTHREAD_LIBS) -lm
tests_check_t5_SOURCES = tests/check_t5.c plugins/wan/cli_t5.c
tests_check_t5_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/plugins/wan
tests_check_t5_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_t5_LDADD = libwan.la $(CHECK_LIBS) $(JANSSON_LIBS) $(PTHREAD_LIBS) -lm
if HAVE_CUDA
tests_check_t5_LDADD += $(T5CUDA_LIBS)
endif

# Fixtures: tests/reference/gen_tokenizer_fixtures.py (spm_train/spm_encode) and
# tests/reference/wan_t5_ref.py (PyTorch goldens for a tiny config).
dist_noinst_DATA += \
	tests/fixtures/wan/t5/tok_lines.txt \
	tests/fixtures/wan/t5/nfkc.model tests/fixtures/wan/t5/nfkc.ids \
	tests/fixtures/wan/t5/bytefb.model tests/fixtures/wan/t5/bytefb.ids \
	tests/fixtures/wan/t5/bytefb.tokenizer.json \
	tests/fixtures/wan/t5/ident.model tests/fixtures/wan/t5/ident.ids \
	tests/fixtures/wan/t5/t5_tiny_config.json tests/fixtures/wan/t5/t5_tiny.safetensors \
	tests/fixtures/wan/t5/t5_tiny_bf16.pth tests/fixtures/wan/t5/t5_tiny_golden.safetensors
EXTRA_DIST += tests/reference/gen_html_entities.py tests/reference/gen_tokenizer_fixtures.py \
	tests/reference/wan_t5_ref.py
