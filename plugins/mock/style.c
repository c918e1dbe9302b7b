/*
 * style.c: turn a prompt into a mock style.
 *
 * The prompt is split into lowercase words. Known words select looks (noir, sketch,
 * comic, neon, sepia, warm, cold, pixel, negative, painting, psychedelic, forest, pop,
 * dream, film); the looks combine. Every other word is hashed into a tint hue, so
 * any two prompts with different words look different, and a prompt of only unknown
 * words still gets a visible style (tint, posterize, light edges). The seed jitters
 * the hue a little and drives the film grain pattern, like a diffusion seed.
 *
 * Everything is folded into a color matrix, a palette LUT, a tone LUT and a few edge
 * and block parameters, so the per-pixel pipeline in mock.c is integer-only and the
 * same inputs give the same bytes.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "style.h"

#define WORD_MAX 32
#define WORDS_MAX 64

enum look {
	LOOK_NOIR, LOOK_SKETCH, LOOK_COMIC, LOOK_NEON, LOOK_SEPIA, LOOK_WARM, LOOK_COLD,
	LOOK_PIXEL, LOOK_NEGATIVE, LOOK_PAINT, LOOK_PSYCHEDELIC, LOOK_FOREST, LOOK_POP,
	LOOK_DREAM, LOOK_FILM, LOOK_COUNT
};

static const char *const look_names[LOOK_COUNT] = {
	"noir", "sketch", "comic", "neon", "sepia", "warm", "cold", "pixel", "negative",
	"painting", "psychedelic", "forest", "pop-art", "dream", "film"
};

static const struct {
	const char *word;
	enum look look;
} keywords[] = {
	{ "noir", LOOK_NOIR }, { "black", LOOK_NOIR }, { "monochrome", LOOK_NOIR },
	{ "grayscale", LOOK_NOIR }, { "greyscale", LOOK_NOIR }, { "charcoal", LOOK_NOIR },
	{ "sketch", LOOK_SKETCH }, { "pencil", LOOK_SKETCH }, { "drawing", LOOK_SKETCH },
	{ "ink", LOOK_SKETCH }, { "lineart", LOOK_SKETCH }, { "graphite", LOOK_SKETCH },
	{ "comic", LOOK_COMIC }, { "cartoon", LOOK_COMIC }, { "anime", LOOK_COMIC },
	{ "manga", LOOK_COMIC }, { "cel", LOOK_COMIC }, { "toon", LOOK_COMIC },
	{ "neon", LOOK_NEON }, { "cyberpunk", LOOK_NEON }, { "synthwave", LOOK_NEON },
	{ "glow", LOOK_NEON }, { "tron", LOOK_NEON },
	{ "sepia", LOOK_SEPIA }, { "vintage", LOOK_SEPIA }, { "old", LOOK_SEPIA },
	{ "antique", LOOK_SEPIA }, { "western", LOOK_SEPIA }, { "victorian", LOOK_SEPIA },
	{ "warm", LOOK_WARM }, { "sunset", LOOK_WARM }, { "fire", LOOK_WARM },
	{ "desert", LOOK_WARM }, { "autumn", LOOK_WARM }, { "golden", LOOK_WARM },
	{ "lava", LOOK_WARM },
	{ "cold", LOOK_COLD }, { "ice", LOOK_COLD }, { "winter", LOOK_COLD },
	{ "ocean", LOOK_COLD }, { "underwater", LOOK_COLD }, { "blue", LOOK_COLD },
	{ "night", LOOK_COLD }, { "snow", LOOK_COLD },
	{ "pixel", LOOK_PIXEL }, { "pixels", LOOK_PIXEL }, { "8-bit", LOOK_PIXEL },
	{ "8bit", LOOK_PIXEL }, { "retro", LOOK_PIXEL }, { "mosaic", LOOK_PIXEL },
	{ "minecraft", LOOK_PIXEL }, { "lego", LOOK_PIXEL },
	{ "negative", LOOK_NEGATIVE }, { "invert", LOOK_NEGATIVE }, { "inverted", LOOK_NEGATIVE },
	{ "x-ray", LOOK_NEGATIVE }, { "xray", LOOK_NEGATIVE },
	{ "oil", LOOK_PAINT }, { "painting", LOOK_PAINT }, { "painted", LOOK_PAINT },
	{ "watercolor", LOOK_PAINT }, { "impressionist", LOOK_PAINT }, { "gogh", LOOK_PAINT },
	{ "psychedelic", LOOK_PSYCHEDELIC }, { "rainbow", LOOK_PSYCHEDELIC },
	{ "trippy", LOOK_PSYCHEDELIC }, { "acid", LOOK_PSYCHEDELIC },
	{ "forest", LOOK_FOREST }, { "jungle", LOOK_FOREST }, { "green", LOOK_FOREST },
	{ "nature", LOOK_FOREST }, { "alien", LOOK_FOREST },
	{ "pop", LOOK_POP }, { "warhol", LOOK_POP }, { "poster", LOOK_POP },
	{ "dream", LOOK_DREAM }, { "dreamy", LOOK_DREAM }, { "ethereal", LOOK_DREAM },
	{ "fog", LOOK_DREAM }, { "mist", LOOK_DREAM }, { "ghost", LOOK_DREAM },
	{ "heaven", LOOK_DREAM },
	{ "film", LOOK_FILM }, { "grain", LOOK_FILM }, { "grainy", LOOK_FILM },
	{ "noisy", LOOK_FILM }, { "analog", LOOK_FILM },
};

/* The float description a prompt builds before it is folded into LUTs. */
struct look_params {
	float sat, hue_deg, contrast, bright;
	float tint_w, tint[3];
	float pal_w, pal_dark[3], pal_light[3];
	int posterize;
	bool invert;
	float edge_w, edge_gain, edge_color[3];
	int pixelate;
	int grain;
};

static uint32_t fnv1a(const char *s, size_t n, uint32_t h)
{
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	return h;
}

static uint32_t mix32(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return (uint32_t)x;
}

static void set3(float *d, float a, float b, float c)
{
	d[0] = a;
	d[1] = b;
	d[2] = c;
}

static void hue_to_rgb(float hue_deg, float *rgb)
{
	float h = fmodf(hue_deg, 360.0f) / 60.0f, x;
	int i = (int)h;

	x = 1.0f - fabsf(fmodf(h, 2.0f) - 1.0f);
	switch (i) {
	case 0: set3(rgb, 1, x, 0); break;
	case 1: set3(rgb, x, 1, 0); break;
	case 2: set3(rgb, 0, 1, x); break;
	case 3: set3(rgb, 0, x, 1); break;
	case 4: set3(rgb, x, 0, 1); break;
	default: set3(rgb, 1, 0, x); break;
	}
}

static void apply_look(struct look_params *p, enum look look)
{
	switch (look) {
	case LOOK_NOIR:
		p->sat = 0;
		p->contrast *= 1.45f;
		p->edge_w = fmaxf(p->edge_w, 0.3f);
		set3(p->edge_color, 0, 0, 0);
		break;
	case LOOK_SKETCH:
		p->pal_w = 1.0f;
		set3(p->pal_dark, 90, 90, 100);
		set3(p->pal_light, 250, 248, 240);
		p->edge_w = 1.0f;
		p->edge_gain = fmaxf(p->edge_gain, 3.0f);
		set3(p->edge_color, 25, 25, 35);
		break;
	case LOOK_COMIC:
		p->posterize = p->posterize ? p->posterize : 4;
		p->sat *= 1.5f;
		p->edge_w = fmaxf(p->edge_w, 0.85f);
		p->edge_gain = fmaxf(p->edge_gain, 2.0f);
		set3(p->edge_color, 0, 0, 0);
		break;
	case LOOK_NEON:
		p->pal_w = fmaxf(p->pal_w, 0.75f);
		set3(p->pal_dark, 20, 0, 60);
		set3(p->pal_light, 255, 40, 200);
		p->contrast *= 1.3f;
		p->edge_w = 1.0f;
		p->edge_gain = fmaxf(p->edge_gain, 2.5f);
		set3(p->edge_color, 40, 255, 255);
		break;
	case LOOK_SEPIA:
		p->pal_w = fmaxf(p->pal_w, 0.85f);
		set3(p->pal_dark, 40, 26, 13);
		set3(p->pal_light, 255, 236, 196);
		p->grain = p->grain > 10 ? p->grain : 10;
		break;
	case LOOK_WARM:
		p->tint_w = fmaxf(p->tint_w, 0.45f);
		set3(p->tint, 1.0f, 0.55f, 0.2f);
		p->bright += 8;
		break;
	case LOOK_COLD:
		p->tint_w = fmaxf(p->tint_w, 0.45f);
		set3(p->tint, 0.25f, 0.55f, 1.0f);
		p->bright -= 6;
		break;
	case LOOK_PIXEL:
		p->pixelate = 8;
		p->posterize = p->posterize ? p->posterize : 6;
		p->sat *= 1.2f;
		break;
	case LOOK_NEGATIVE:
		p->invert = !p->invert;
		break;
	case LOOK_PAINT:
		p->posterize = p->posterize ? p->posterize : 7;
		p->sat *= 1.45f;
		p->edge_w = fmaxf(p->edge_w, 0.2f);
		p->edge_gain = fmaxf(p->edge_gain, 1.0f);
		break;
	case LOOK_PSYCHEDELIC:
		p->hue_deg += 140.0f;
		p->sat *= 2.2f;
		p->contrast *= 1.2f;
		break;
	case LOOK_FOREST:
		p->tint_w = fmaxf(p->tint_w, 0.4f);
		set3(p->tint, 0.3f, 1.0f, 0.35f);
		break;
	case LOOK_POP:
		p->posterize = 3;
		p->sat *= 2.0f;
		p->contrast *= 1.2f;
		break;
	case LOOK_DREAM:
		p->contrast *= 0.6f;
		p->bright += 40;
		p->sat *= 0.8f;
		p->tint_w = fmaxf(p->tint_w, 0.2f);
		set3(p->tint, 0.85f, 0.75f, 1.0f);
		break;
	case LOOK_FILM:
		p->grain = 24;
		p->contrast *= 1.1f;
		break;
	default:
		break;
	}
}

/* Compose sat -> hue -> tint -> contrast/brightness into one affine map. */
static void build_matrix(struct mock_style *s, const struct look_params *p)
{
	static const float lw[3] = { 0.2126f, 0.7152f, 0.0722f };
	float m[3][3], h[3][3], r[3][3], off[3];
	float c = cosf(p->hue_deg * (float)M_PI / 180.0f);
	float sn = sinf(p->hue_deg * (float)M_PI / 180.0f);
	float sat = p->sat, tl;
	int i, j, k;

	for (i = 0; i < 3; i++)
		for (j = 0; j < 3; j++)
			m[i][j] = (i == j ? sat : 0.0f) + (1.0f - sat) * lw[j];
	h[0][0] = 0.213f + c * 0.787f - sn * 0.213f;
	h[0][1] = 0.715f - c * 0.715f - sn * 0.715f;
	h[0][2] = 0.072f - c * 0.072f + sn * 0.928f;
	h[1][0] = 0.213f - c * 0.213f + sn * 0.143f;
	h[1][1] = 0.715f + c * 0.285f + sn * 0.140f;
	h[1][2] = 0.072f - c * 0.072f - sn * 0.283f;
	h[2][0] = 0.213f - c * 0.213f - sn * 0.787f;
	h[2][1] = 0.715f - c * 0.715f + sn * 0.715f;
	h[2][2] = 0.072f + c * 0.928f + sn * 0.072f;
	for (i = 0; i < 3; i++)
		for (j = 0; j < 3; j++)
			for (r[i][j] = 0, k = 0; k < 3; k++)
				r[i][j] += h[i][k] * m[k][j];
	/* tint: blend toward luma * normalized tint color */
	tl = lw[0] * p->tint[0] + lw[1] * p->tint[1] + lw[2] * p->tint[2];
	if (tl < 0.05f)
		tl = 0.05f;
	for (i = 0; i < 3; i++)
		for (j = 0; j < 3; j++)
			r[i][j] = (1.0f - p->tint_w) * r[i][j] + p->tint_w * (p->tint[i] / tl) * lw[j];
	for (i = 0; i < 3; i++) {
		off[i] = 128.0f * (1.0f - p->contrast) + p->bright;
		for (j = 0; j < 3; j++)
			s->matrix[i][j] = (int32_t)lrintf(r[i][j] * p->contrast * 1024.0f);
		s->offset[i] = (int32_t)lrintf(off[i]);
	}
}

static void build_luts(struct mock_style *s, const struct look_params *p)
{
	int v, ch;

	for (v = 0; v < 256; v++) {
		float t = (float)v / 255.0f;
		int q = v;

		for (ch = 0; ch < 3; ch++)
			s->palette[v][ch] = (uint8_t)lrintf(p->pal_dark[ch] +
				t * (p->pal_light[ch] - p->pal_dark[ch]));
		if (p->posterize >= 2) {
			int step = (v * p->posterize) / 256;
			q = step * 255 / (p->posterize - 1);
		}
		if (p->invert)
			q = 255 - q;
		s->post[v] = (uint8_t)q;
	}
	s->palette_weight = (int32_t)lrintf(p->pal_w * 256.0f);
	s->posterize = p->posterize;
	s->edge_weight = (int32_t)lrintf(fminf(p->edge_w, 1.0f) * 256.0f);
	s->edge_gain = (int32_t)lrintf(p->edge_gain * 16.0f);
	for (ch = 0; ch < 3; ch++)
		s->edge_color[ch] = (uint8_t)lrintf(p->edge_color[ch]);
	s->pixelate = p->pixelate;
	s->grain = p->grain;
}

/* Split into lowercase words of [a-z0-9-]. Returns the count. */
static int split_words(const char *prompt, char words[][WORD_MAX])
{
	int n = 0, len = 0;
	const char *c;

	for (c = prompt;; c++) {
		char ch = *c;
		if (ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-') {
			if (len < WORD_MAX - 1)
				words[n][len++] = ch;
			continue;
		}
		if (len > 0) {
			words[n][len] = 0;
			len = 0;
			if (++n == WORDS_MAX)
				break;
		}
		if (!*c)
			break;
	}
	return n;
}

static void append_name(char *name, const char *part)
{
	size_t n = strlen(name);

	if (n + strlen(part) + 4 >= STYLE_NAME_MAX)
		return;
	snprintf(name + n, STYLE_NAME_MAX - n, "%s%s", n ? " + " : "", part);
}

void mock_style_from_prompt(struct mock_style *s, const char *prompt, uint64_t seed)
{
	char words[WORDS_MAX][WORD_MAX];
	struct look_params p;
	bool used[LOOK_COUNT] = { false };
	uint32_t unknown = 2166136261u;
	int n, i, nunknown = 0, nlooks = 0;
	size_t k;
	char part[64];

	memset(s, 0, sizeof(*s));
	memset(&p, 0, sizeof(p));
	p.sat = 1.0f;
	p.contrast = 1.0f;
	set3(p.pal_light, 255, 255, 255);
	set3(p.tint, 1, 1, 1);
	s->seed_hash = mix32(seed ^ 0x9e3779b97f4a7c15ull);
	n = prompt ? split_words(prompt, words) : 0;
	for (i = 0; i < n; i++) {
		bool known = false;
		for (k = 0; k < sizeof(keywords) / sizeof(keywords[0]); k++) {
			if (strcmp(words[i], keywords[k].word) == 0) {
				if (!used[keywords[k].look]) {
					used[keywords[k].look] = true;
					apply_look(&p, keywords[k].look);
					nlooks++;
				}
				known = true;
				break;
			}
		}
		if (!known && strlen(words[i]) > 2) { /* skip "a", "in", "of" */
			unknown = fnv1a(words[i], strlen(words[i]), unknown * 31u);
			nunknown++;
		}
	}
	if (nlooks == 0 && nunknown == 0) {
		s->identity = true;
		snprintf(s->name, sizeof(s->name), "camera (empty prompt)");
		build_matrix(s, &p);
		build_luts(s, &p);
		return;
	}
	for (i = 0; i < LOOK_COUNT; i++)
		if (used[i])
			append_name(s->name, look_names[i]);
	if (nunknown) {
		float hue = (float)(unknown % 360u), tint[3];

		hue_to_rgb(hue, tint);
		if (p.tint_w < 0.01f) {
			memcpy(p.tint, tint, sizeof(tint));
			p.tint_w = 0.4f;
		} else {
			p.hue_deg += (float)(unknown % 61u) - 30.0f;
		}
		if (nlooks == 0) {
			p.posterize = 5 + (int)(unknown / 360u % 4u);
			p.edge_w = 0.35f;
			p.edge_gain = 1.5f;
			p.sat *= 1.3f;
		}
		snprintf(part, sizeof(part), "tint %d deg", (int)hue);
		append_name(s->name, part);
	}
	/* The seed nudges the hue by up to +-15 degrees, like a diffusion seed varies
	 * the result of one prompt. */
	p.hue_deg += (float)(s->seed_hash % 31u) - 15.0f;
	build_matrix(s, &p);
	build_luts(s, &p);
}
