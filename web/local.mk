# web/local.mk: the browser UI (plain HTML/CSS/JS modules served by herud; no build step) and
# its end-to-end test in headless Chromium (tests/browser/, see README "Browser UI").

# `make install` puts the UI under $(pkgdatadir)/web (herud --web-root can point there).
webdir = $(pkgdatadir)/web
dist_web_DATA = web/index.html web/style.css
webjsdir = $(webdir)/js
dist_webjs_DATA = \
	web/js/app.js web/js/connection.js web/js/controls.js \
	web/js/protocol.js web/js/record.js web/js/stream.js web/js/ticker.js

TESTS += tests/browser/browser-ui.sh
# what tools/install-deps --test would install on Debian and on Ubuntu (dry runs, no network)
TESTS += tests/install-deps.sh
EXTRA_DIST += tests/install-deps.sh
EXTRA_DIST += \
	tests/browser/browser-ui.sh tests/browser/ui.test.mjs tests/browser/protocol.test.mjs \
	tests/browser/package.json tests/browser/package-lock.json

# The test installs playwright-core into the build tree and leaves screenshots there.
clean-local: clean-local-browser
clean-local-browser:
	-rm -rf tests/browser/node_modules tests/artifacts
	-test "$(srcdir)" = "." || rm -f tests/browser/package.json tests/browser/package-lock.json
.PHONY: clean-local-browser
