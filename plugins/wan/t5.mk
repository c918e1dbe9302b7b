# plugins/wan/t5.mk: the umT5 tokenizer and text encoder (included by the top-level Makefile.am).
noinst_LTLIBRARIES += libwant5.la
libwant5_la_SOURCES = \
	plugins/wan/tokenizer.c plugins/wan/tokenizer.h \
	plugins/wan/tokenizer_clean.c \
	plugins/wan/tokenizer_html.c plugins/wan/tokenizer_html.h
libwant5_la_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
libwant5_la_LIBADD = $(JANSSON_LIBS) -lm

check_PROGRAMS += tests/check_tokenizer
TESTS += tests/check_tokenizer
tests_check_tokenizer_SOURCES = tests/check_tokenizer.c
tests_check_tokenizer_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/plugins/wan
tests_check_tokenizer_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_tokenizer_LDADD = libwant5.la $(CHECK_LIBS)
EXTRA_DIST += tests/reference/gen_html_entities.py
dist_noinst_DATA += \
	tests/fixtures/wan/t5/tok_lines.txt \
	tests/fixtures/wan/t5/nfkc.model tests/fixtures/wan/t5/nfkc.ids \
	tests/fixtures/wan/t5/bytefb.model tests/fixtures/wan/t5/bytefb.ids \
	tests/fixtures/wan/t5/bytefb.tokenizer.json \
	tests/fixtures/wan/t5/ident.model tests/fixtures/wan/t5/ident.ids
EXTRA_DIST += tests/reference/gen_tokenizer_fixtures.py
