# web/local.mk: build fragment (included by the top-level Makefile.am).
EXTRA_DIST += web
