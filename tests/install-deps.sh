#!/bin/bash
# tests/install-deps.sh: what tools/install-deps would install on Debian and on Ubuntu, through
# its --dry-run mode and fake os-release files (HERU_OS_RELEASE). dpkg-query, npx, apt-get and
# sudo are replaced by shims first in PATH: every package counts as missing, npx answers a
# canned `playwright-core install --dry-run`, and nothing is installed or downloaded.
#
# The Ubuntu browser step runs only without /usr/bin/chromium; where that exists, the cases
# that need it absent run inside a private mount namespace that hides it (root with unshare),
# else they are left out (said in the log).
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
deps="$top_srcdir/tools/install-deps"
[ -x "$deps" ] || { echo "FAIL: $deps is missing"; exit 99; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/heru-install-deps.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "not ok - $*"; failures=$((failures + 1)); }
pass() { echo "ok - $*"; }

pw_version=$(sed -n 's/.*"playwright-core": *"\([^"]*\)".*/\1/p' "$top_srcdir/tests/browser/package.json")
[ -n "$pw_version" ] || { echo "FAIL: no playwright-core version in tests/browser/package.json"; exit 99; }

# ---- shims ----
mkdir -p "$tmp/bin" "$tmp/pw"
cat >"$tmp/bin/dpkg-query" <<'EOF'
#!/bin/sh
# FAKE_DPKG_ALL=1: every package is installed
[ -n "${FAKE_DPKG_ALL:-}" ] && { printf 'install ok installed'; exit 0; }
exit 1
EOF
cat >"$tmp/bin/npx" <<EOF
#!/bin/sh
echo "npx \$*" >>"$tmp/calls"
[ -z "\${FAKE_NPX_OFFLINE:-}" ] || exit 1
case " \$* " in
  *" --with-deps "*) [ -z "\${FAKE_NPX_FAIL:-}" ] || exit 1 ;;
  *" --dry-run "*) printf 'Chrome for Testing (playwright chromium v1228)\n  Install location:    %s\n\nFFmpeg\n  Install location:    %s\n' \\
                     "$tmp/pw/chromium-1228" "$tmp/pw/ffmpeg-1011" ;;
esac
exit 0
EOF
for tool in apt-get sudo; do
  printf '#!/bin/sh\necho "%s $*" >>"%s/calls"\nexit 1\n' "$tool" "$tmp" >"$tmp/bin/$tool"
done
chmod +x "$tmp/bin/"*
printf 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n' >"$tmp/debian"
printf 'PRETTY_NAME="Ubuntu 24.04.1 LTS"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\n' >"$tmp/ubuntu"
printf 'NAME="Linux Mint"\nID=linuxmint\nID_LIKE="ubuntu debian"\n' >"$tmp/mint"

# run OS-RELEASE ARGS...: install-deps with the shims; sets $out (stdout and stderr), $rc, $calls
run() {
  local osr=$1
  shift
  rm -f "$tmp/calls"
  out=$(PATH="$tmp/bin:$PATH" HERU_OS_RELEASE="$tmp/$osr" "$deps" "$@" 2>&1)
  rc=$?
  calls=$(cat "$tmp/calls" 2>/dev/null)
}
# the apt-get package list of a dry run
apt_list() { printf '%s\n' "$out" | sed -n 's/^install-deps: would install \(.*\) (apt-get)$/ \1 /p'; }

cases() {
# ---- options ----
run debian --bogus
if [ $rc -eq 2 ] && printf '%s' "$out" | grep -q "unknown option '--bogus'"; then
  pass "an unknown option is refused"; else fail "--bogus: rc $rc: $out"; fi
rm -f "$tmp/calls"
out=$(PATH="$tmp/bin:$PATH" HERU_OS_RELEASE="$tmp/nonexistent" "$deps" --dry-run 2>&1); rc=$?
if [ $rc -eq 2 ] && printf '%s' "$out" | grep -q "cannot read HERU_OS_RELEASE=$tmp/nonexistent"; then
  pass "an unreadable HERU_OS_RELEASE is refused"; else fail "unreadable os-release: rc $rc: $out"; fi

# ---- Debian ----
run debian --dry-run
l=$(apt_list)
if [ $rc -eq 0 ] && [[ $l == *" libevent-dev "* ]] && [[ $l != *" chromium "* ]] &&
   [[ $l != *" valgrind "* ]] && [ -z "$calls" ]; then
  pass "Debian, build only: the build packages, no test tools, nothing run"
else fail "Debian build: rc $rc, apt list '$l', calls '$calls': $out"; fi
run debian --test --dry-run
l=$(apt_list)
if [ $rc -eq 0 ] && [[ $l == *" chromium "* ]] && [[ $l == *" valgrind "* ]] && [ -z "$calls" ]; then
  pass "Debian --test: the chromium package, no playwright download"
else fail "Debian --test: rc $rc, apt list '$l', calls '$calls': $out"; fi

# ---- Ubuntu ----
for osr in ubuntu mint; do
  run $osr --test --dry-run
  l=$(apt_list)
  if [ $rc -eq 0 ] && [[ $l == *" valgrind "* ]] && [[ $l != *" chromium "* ]] &&
     [[ $calls != *apt-get* ]]; then
    pass "$osr --test: no chromium package"
  else fail "$osr --test: rc $rc, apt list '$l', calls '$calls': $out"; fi
done
CHROMIUM=/bin/sh run ubuntu --test --dry-run
if [ $rc -eq 0 ] && [ -z "$calls" ] && [[ $out != *playwright* ]]; then
  pass "Ubuntu with CHROMIUM set: no playwright download"
else fail "Ubuntu with CHROMIUM: rc $rc, calls '$calls': $out"; fi
}

# The browser step itself, as on an Ubuntu without /usr/bin/chromium: a dry run names the
# npx command with the pinned version, and says so when that Chromium is already complete.
browser_step() {
  unset CHROMIUM
  run ubuntu --test --dry-run
  want="would run npx --prefer-offline --yes playwright-core@$pw_version install --with-deps --no-shell chromium"
  if [ $rc -eq 0 ] && [[ $out == *"$want"* ]] && [[ $out == *"into $tmp/pw/chromium-1228"* ]] &&
     [[ $calls == *"npx --prefer-offline --yes playwright-core@$pw_version install --dry-run --no-shell chromium"* ]] &&
     [[ $calls != *"--with-deps"* ]]; then
    pass "Ubuntu without /usr/bin/chromium: would run npx playwright-core@$pw_version install --with-deps"
  else fail "Ubuntu browser step: rc $rc, calls '$calls': $out"; fi
  mkdir -p "$tmp/pw/chromium-1228" && touch "$tmp/pw/chromium-1228/INSTALLATION_COMPLETE"
  run ubuntu --test --dry-run
  if [ $rc -eq 0 ] && [[ $out == *"Chromium for the browser test is installed in $tmp/pw/chromium-1228"* ]] &&
     [[ $out != *"would run"* ]]; then
    pass "Ubuntu with playwright's Chromium complete: nothing to download"
  else fail "Ubuntu, Chromium installed: rc $rc, calls '$calls': $out"; fi
  rm -rf "$tmp/pw/chromium-1228"
  # npx cannot answer (offline): a complete Chromium of any revision is kept, else installing
  # is tried (and would fail there, saying what it needs)
  mkdir -p "$tmp/pw/chromium-1111" && touch "$tmp/pw/chromium-1111/INSTALLATION_COMPLETE"
  PLAYWRIGHT_BROWSERS_PATH="$tmp/pw" FAKE_NPX_OFFLINE=1 run ubuntu --test --dry-run
  if [ $rc -eq 0 ] && [[ $out == *"keeping the one in $tmp/pw"* ]] && [[ $out != *"would run"* ]]; then
    pass "Ubuntu offline with a Chromium in playwright's cache: kept"
  else fail "Ubuntu offline, Chromium cached: rc $rc, calls '$calls': $out"; fi
  rm -rf "$tmp/pw/chromium-1111"
  PLAYWRIGHT_BROWSERS_PATH="$tmp/pw" FAKE_NPX_OFFLINE=1 run ubuntu --test --dry-run
  if [ $rc -eq 0 ] && [[ $out == *"$want (Chromium for the browser test, from Playwright's CDN)"* ]]; then
    pass "Ubuntu offline without a Chromium: would still try to install it"
  else fail "Ubuntu offline, no Chromium: rc $rc, calls '$calls': $out"; fi
  # for real (the shims install nothing): the packages are there, the browser step runs npx
  FAKE_DPKG_ALL=1 run ubuntu --test
  if [ $rc -eq 0 ] && [[ $out == *"installing Chromium for the browser test"* ]] &&
     [[ $calls == *"npx --prefer-offline --yes playwright-core@$pw_version install --with-deps --no-shell chromium"* ]] &&
     [[ $calls != *apt-get* ]] && [[ $calls != *sudo* ]]; then
    pass "Ubuntu, for real: runs npx playwright-core install --with-deps, no apt-get of its own"
  else fail "Ubuntu for real: rc $rc, calls '$calls': $out"; fi
  FAKE_DPKG_ALL=1 FAKE_NPX_FAIL=1 run ubuntu --test
  if [ $rc -eq 1 ] && [[ $out == *"failed (it needs the npm registry and Playwright's CDN"* ]]; then
    pass "Ubuntu, npx failing: exit 1 saying what it needs"
  else fail "Ubuntu, npx failing: rc $rc, calls '$calls': $out"; fi
}
if [ "${HERU_IN_NS:-}" = 1 ]; then  # the re-run below, with /usr/bin/chromium hidden
  browser_step
  exit $failures
fi
cases
if [ ! -x /usr/bin/chromium ]; then
  browser_step
else
  unset CHROMIUM
  run ubuntu --test --dry-run
  if [ $rc -eq 0 ] && [ -z "$calls" ]; then
    pass "Ubuntu with /usr/bin/chromium: no playwright download"
  else fail "Ubuntu with /usr/bin/chromium: rc $rc, calls '$calls': $out"; fi
  if [ "$(id -u)" -eq 0 ] && unshare -m true 2>/dev/null; then
    HERU_IN_NS=1 top_srcdir="$top_srcdir" unshare -m sh -c \
      'mount --bind /dev/null /usr/bin/chromium && exec bash "$0"' "$0"
    failures=$((failures + $?))
  else
    echo "# the Ubuntu browser step needs /usr/bin/chromium absent: left out (not root, or no unshare)"
  fi
fi

[ $failures -eq 0 ] || { echo "FAIL: $failures case(s) of tools/install-deps"; exit 1; }
echo "install-deps: all cases passed"
