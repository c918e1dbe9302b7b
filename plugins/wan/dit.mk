# plugins/wan/dit.mk: build fragment (included by the top-level Makefile.am).
