# plugins/wan/cuda.mk: build fragment (included by the top-level Makefile.am).
