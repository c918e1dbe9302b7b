# plugins/wan/vae.mk: build fragment (included by the top-level Makefile.am).
