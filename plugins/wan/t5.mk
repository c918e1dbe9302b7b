# plugins/wan/t5.mk: build fragment (included by the top-level Makefile.am).
