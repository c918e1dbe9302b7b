#!/bin/sh
# tests/browser/browser-ui.sh: end-to-end test of the web UI in headless Chromium against a
# real herud on the mock backend (the steps are in ui.test.mjs).
#
# Needs Node.js with npm and a Chromium; skips (77) without them. The Chromium is $CHROMIUM
# when set, else Debian's /usr/bin/chromium, else the one playwright-core downloaded for its
# pinned version (tools/install-deps --test does that on Ubuntu, whose chromium package is a
# snap wrapper: `npx playwright-core install chromium` into ~/.cache/ms-playwright, or
# $PLAYWRIGHT_BROWSERS_PATH). playwright-core is installed with `npm ci` into the BUILD tree
# (tests/browser/node_modules there), never into the source tree, which `make distcheck`
# makes read-only. Artifacts (screenshots) go to $top_builddir/tests/artifacts/.
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-$(pwd)}

for tool in node npm; do
  command -v "$tool" >/dev/null 2>&1 || { echo "SKIP: $tool not found (tools/install-deps --test installs it)"; exit 77; }
done
pw_cache=${PLAYWRIGHT_BROWSERS_PATH:-${XDG_CACHE_HOME:-${HOME:-/nonexistent}/.cache}/ms-playwright}
if [ -n "${CHROMIUM:-}" ]; then
  [ -x "$CHROMIUM" ] || { echo "SKIP: CHROMIUM=$CHROMIUM is not an executable"; exit 77; }
elif [ -x /usr/bin/chromium ]; then
  CHROMIUM=/usr/bin/chromium
else
  # playwright-core's own Chromium; its exact path is asked after npm ci below. Without any
  # in its cache, skip before touching the network (PLAYWRIGHT_BROWSERS_PATH=0 keeps them
  # inside node_modules: asked after npm ci too).
  CHROMIUM=
  if [ "$pw_cache" != 0 ] && ! ls "$pw_cache"/chromium-*/INSTALLATION_COMPLETE >/dev/null 2>&1; then
    echo "SKIP: no Chromium: /usr/bin/chromium is absent and playwright-core has none in $pw_cache (tools/install-deps --test installs one; or set CHROMIUM)"
    exit 77
  fi
fi

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

if [ -z "$CHROMIUM" ]; then
  CHROMIUM=$(cd "$dir" && node -e "process.stdout.write(require('playwright-core').chromium.executablePath())") ||
    { echo "FAIL: cannot ask playwright-core in $dir for its Chromium"; exit 99; }
  pw_version=$(cd "$dir" && node -p "require('playwright-core/package.json').version")
  [ -x "$CHROMIUM" ] || {
    echo "SKIP: playwright-core $pw_version's Chromium is not installed at $CHROMIUM (tools/install-deps --test, or npx playwright-core@$pw_version install chromium, installs it)"
    exit 77
  }
  echo "browser: playwright-core $pw_version's Chromium, $CHROMIUM"
else
  echo "browser: $CHROMIUM"
fi
export CHROMIUM

HERU_TEST_MODULES="$dir" HERU_ARTIFACTS="$top_builddir/tests/artifacts" \
  exec node "$src/ui.test.mjs"
