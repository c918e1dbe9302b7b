# plugins/mock/local.mk: build fragment (included by the top-level Makefile.am).
