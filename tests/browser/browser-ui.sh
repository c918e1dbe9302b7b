#!/bin/sh
# tests/browser/browser-ui.sh: end-to-end test of the web UI in headless Chromium against a
# real herud on the mock backend (the steps are in ui.test.mjs).
#
# Needs Chromium (/usr/bin/chromium, or $CHROMIUM) and Node.js with npm; skips (77) without
# them. playwright-core is installed with `npm ci` into the BUILD tree (tests/browser/
# node_modules there), never into the source tree, which `make distcheck` makes read-only.
# Artifacts (screenshots) go to $top_builddir/tests/artifacts/.
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-$(pwd)}
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
export CHROMIUM

for tool in node npm; do
  command -v "$tool" >/dev/null 2>&1 || { echo "SKIP: $tool not found (tools/install-deps --test installs it)"; exit 77; }
done
[ -x "$CHROMIUM" ] || { echo "SKIP: $CHROMIUM not found (tools/install-deps --test installs chromium)"; exit 77; }

HERUD=${HERUD:-$top_builddir/herud}
[ -x "$HERUD" ] || { echo "FAIL: herud is not built at $HERUD"; exit 99; }
[ -f "${HERU_PLUGIN_DIR:-}/mock.so" ] || [ -n "${HERU_TEST_ANY_PLUGIN_DIR:-}" ] ||
  { echo "FAIL: no mock.so in HERU_PLUGIN_DIR='${HERU_PLUGIN_DIR:-}'"; exit 99; }
export HERUD

src="$top_srcdir/tests/browser"
node "$src/protocol.test.mjs" || exit 1

dir="$top_builddir/tests/browser"
mkdir -p "$dir" || exit 99
if [ ! -f "$dir/node_modules/playwright-core/package.json" ] ||
   ! cmp -s "$src/package-lock.json" "$dir/node_modules/.heru-lock"; then
  if [ ! "$src" -ef "$dir" ]; then
    rm -f "$dir/package.json" "$dir/package-lock.json"
    cp "$src/package.json" "$src/package-lock.json" "$dir/" || exit 99
    chmod u+w "$dir/package.json" "$dir/package-lock.json"
  fi
  echo "installing playwright-core into $dir/node_modules (npm ci)"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) ||
    { echo "FAIL: npm ci failed in $dir (the npm registry must be reachable once; later runs use npm's cache)"; exit 99; }
  cp "$src/package-lock.json" "$dir/node_modules/.heru-lock" && chmod u+w "$dir/node_modules/.heru-lock"
fi

HERU_TEST_MODULES="$dir" HERU_ARTIFACTS="$top_builddir/tests/artifacts" \
  exec node "$src/ui.test.mjs"
