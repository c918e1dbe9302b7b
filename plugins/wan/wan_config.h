/* wan_config.h: Wan2.1 DiT hyper-parameters: the 1.3b and 14b presets (spec §1) or a
 * Wan2.1 config.json (so tests can use tiny models). */
#ifndef HERU_WAN_CONFIG_H
#define HERU_WAN_CONFIG_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct wan_dit_config {
	int dim, ffn_dim, num_heads, head_dim, num_layers, in_dim, out_dim, text_len, text_dim,
		freq_dim;
	double eps;
};

/* SPEC: "1.3b", "14b" (case-insensitive), a Wan2.1 config.json path, or a folder holding
 * config.json. Keys dim, ffn_dim, num_heads, num_layers, in_dim, out_dim, text_len,
 * freq_dim, eps are required; text_dim is optional (default 4096); other keys are ignored.
 * Validates (head_dim = dim/num_heads exact and even, sizes positive and bounded, eps > 0).
 * Returns 0, or -1 with ERR and OUT untouched. */
int wan_dit_config_load(const char *spec, struct wan_dit_config *out, char *err, size_t errlen);
/* Same, from a JSON text (SOURCE names it in errors). */
int wan_dit_config_parse(const char *json, size_t len, const char *source,
			 struct wan_dit_config *out, char *err, size_t errlen);
/* The preset for "1.3b"/"14b"; -1 for any other name. */
int wan_dit_config_preset(const char *name, struct wan_dit_config *out);
/* Checks a filled config; 0 or -1 with ERR. */
int wan_dit_config_validate(const struct wan_dit_config *c, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
