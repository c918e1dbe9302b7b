# plugins/wan/t5.mk: the umT5 tokenizer and text encoder (included by the top-level Makefile.am).
libwan_la_SOURCES += \
	plugins/wan/tokenizer.c plugins/wan/tokenizer.h \
	plugins/wan/tokenizer_clean.c \
	plugins/wan/tokenizer_html.c plugins/wan/tokenizer_html.h \
	plugins/wan/t5_model.c plugins/wan/t5_model.h \
	plugins/wan/t5_ref.c plugins/wan/t5_ref.h
heru_wan_SOURCES += plugins/wan/cli_t5.c

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
