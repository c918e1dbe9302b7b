# plugins/motion/local.mk: motion.so, the example conditioner (heru.motion/1); included
# from plugins/mock/local.mk.
plugin_LTLIBRARIES += plugins/motion/motion.la
plugins_motion_motion_la_SOURCES = plugins/motion/motion.c
plugins_motion_motion_la_LDFLAGS = $(HERU_PLUGIN_LINK)
