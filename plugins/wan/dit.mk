# plugins/wan/dit.mk: the Wan2.1 causal DiT: fp32 C reference ops, model loading, KV cache
# bookkeeping, the streaming driver and scheduler (in libwan.la), the heru-wan dit-forward and
# stream subcommands, and their tests (goldens: tests/reference/wan_dit_ref.py).
libwan_la_SOURCES += \
	plugins/wan/ops_ref.c plugins/wan/ops_ref.h \
	plugins/wan/wan_sched.c plugins/wan/wan_sched.h \
	plugins/wan/dit_kv.c plugins/wan/dit_kv.h \
	plugins/wan/dit_model.c plugins/wan/dit_model.h \
	plugins/wan/dit_cpu.c plugins/wan/dit_cpu.h \
	plugins/wan/dit_stream.c plugins/wan/dit_stream.h \
	plugins/wan/wan_rng.c plugins/wan/wan_rng.h
heru_wan_SOURCES += plugins/wan/cli_dit.c

check_PROGRAMS += tests/check_sched tests/check_dit_ops tests/check_dit
TESTS += tests/check_sched tests/check_dit_ops tests/check_dit
tests_check_sched_SOURCES = tests/check_sched.c
tests_check_sched_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/plugins/wan
tests_check_sched_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_sched_LDADD = libwan.la $(CHECK_LIBS) $(JANSSON_LIBS) $(PTHREAD_LIBS) -lm
tests_check_dit_ops_SOURCES = tests/check_dit_ops.c
tests_check_dit_ops_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/plugins/wan
tests_check_dit_ops_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_check_dit_ops_LDADD = libwan.la $(CHECK_LIBS) $(JANSSON_LIBS) $(PTHREAD_LIBS) -lm
# check_dit drives the real subcommands (cli_dit.c) against the PyTorch goldens.
tests_check_dit_SOURCES = tests/check_dit.c tests/dit_test_util.c tests/dit_test_util.h \
	plugins/wan/cli_dit.c
tests_check_dit_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/plugins/wan
tests_check_dit_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS) $(JANSSON_CFLAGS)
tests_check_dit_LDADD = libwan.la $(CHECK_LIBS) $(JANSSON_LIBS) $(PTHREAD_LIBS) -lm
EXTRA_DIST += tests/reference/wan_dit_ref.py
dist_noinst_DATA += \
	tests/fixtures/wan/dit/config.json \
	tests/fixtures/wan/dit/forward_in.safetensors \
	tests/fixtures/wan/dit/forward_out.safetensors \
	tests/fixtures/wan/dit/stream_in_s1.safetensors \
	tests/fixtures/wan/dit/stream_in_s2.safetensors \
	tests/fixtures/wan/dit/stream_out_s1_batch_sink.safetensors \
	tests/fixtures/wan/dit/stream_out_s1_batch_nosink.safetensors \
	tests/fixtures/wan/dit/stream_out_s1_nobatch_sink.safetensors \
	tests/fixtures/wan/dit/stream_out_s1_nobatch_nosink.safetensors \
	tests/fixtures/wan/dit/stream_out_s2_batch_sink.safetensors \
	tests/fixtures/wan/dit/stream_out_s2_batch_nosink.safetensors \
	tests/fixtures/wan/dit/stream_out_s2_nobatch_sink.safetensors \
	tests/fixtures/wan/dit/stream_out_s2_nobatch_nosink.safetensors \
	tests/fixtures/wan/dit/stream_out_s2_batch_kv5_sink2.safetensors
