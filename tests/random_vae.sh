#!/bin/sh
# random_vae.sh: heru-wan random-vae writes the tensors the VAE / TAEHV loaders read, with the
# names and shapes of the checkpoints (compared with the tiny fixtures' listing),
# deterministic per seed; bad usage exits 2, a bad config exits 1 naming it.
top_builddir=${top_builddir:-.}
top_srcdir=${top_srcdir:-.}
hw=$top_builddir/heru-wan
fix=$top_srcdir/tests/fixtures/wan/vae
[ -x "$hw" ] || { echo "SKIP: heru-wan not built"; exit 77; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/randvae.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$hw" random-vae --config "$fix/tiny_config.json" --out "$tmp/v.safetensors" \
	--taehv-out "$tmp/t.safetensors" --seed 3 > "$tmp/log" 2>&1 || { cat "$tmp/log"; fail "random-vae"; }
list() { "$hw" inspect "$1" | awk 'NF == 3 {print $1, $3}' | sort; }
list "$fix/tiny_vae.safetensors" > "$tmp/want"
list "$tmp/v.safetensors" > "$tmp/have"
cmp -s "$tmp/want" "$tmp/have" || { diff "$tmp/want" "$tmp/have" | head; fail "VAE names/shapes differ from the fixture"; }
# TAEHV: the same names (the TGrow conv that patch_tgrow_layers trims is written trimmed)
list "$fix/tiny_taehv.safetensors" | cut -d' ' -f1 > "$tmp/want"
list "$tmp/t.safetensors" | cut -d' ' -f1 > "$tmp/have"
cmp -s "$tmp/want" "$tmp/have" || { diff "$tmp/want" "$tmp/have" | head; fail "TAEHV names differ from the fixture"; }
# the same seed gives the same bytes; another seed other values
"$hw" random-vae --config "$fix/tiny_config.json" --out "$tmp/v2.safetensors" --seed 3 > /dev/null || fail "second run"
cmp -s "$tmp/v.safetensors" "$tmp/v2.safetensors" || fail "same seed, different file"
"$hw" random-vae --config "$fix/tiny_config.json" --out "$tmp/v3.safetensors" --seed 4 > /dev/null || fail "seed 4"
cmp -s "$tmp/v.safetensors" "$tmp/v3.safetensors" && fail "seeds 3 and 4 wrote the same file"
# usage errors
"$hw" random-vae > /dev/null 2>&1; [ $? -eq 2 ] || fail "no --out should exit 2"
"$hw" random-vae --out "$tmp/x" --seed nope > /dev/null 2>&1; [ $? -eq 2 ] || fail "bad --seed should exit 2"
"$hw" random-vae --out "$tmp/x" --config "$tmp/missing.json" > /dev/null 2> "$tmp/err"; [ $? -eq 1 ] || fail "missing config should exit 1"
[ -e "$tmp/x" ] && fail "a failed run wrote its output"
grep -q "missing.json" "$tmp/err" || fail "the error does not name the config: $(cat "$tmp/err")"
echo "PASS"
