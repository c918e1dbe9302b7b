# server/sdk.mk: plugin loader, smoke/bench CLIs (included by the top-level Makefile.am).
