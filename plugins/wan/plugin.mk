# plugins/wan/plugin.mk: the wan13b_cuda / wan14b_dist plugins (included by the top-level Makefile.am).
