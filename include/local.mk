# include/local.mk: the public plugin SDK, installed with heru-plugin.pc.
heruinclude_HEADERS += include/heru/plugin.h
pkgconfig_DATA += include/heru-plugin.pc
