#!/usr/bin/env bash
# scripts/install into a scratch prefix: every binary lands in PREFIX/bin and
# runs from there (no path into the build tree), with gyre's completion.
# Usage: tests/install_test.sh BUILD_DIR
set -euo pipefail
build_dir=$(cd "$1" && pwd)
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cd "$(dirname "$0")/.."
GYRE_BUILD_DIR=$build_dir scripts/install "$prefix" >/dev/null
status=0
for binary in gyre gyre-orchestrator gyre-agent gyre-scheduler gyre-optimizer gyre-predictor \
  gyre-gateway; do
  if ! version=$(PATH="$prefix/bin:/usr/bin:/bin" "$binary" --version); then
    echo "FAIL: $binary --version did not run from $prefix/bin" >&2
    status=1
  elif [[ "$version" != "$binary "* ]]; then
    echo "FAIL: $binary --version said: $version" >&2
    status=1
  fi
done
grep -q 'complete -F _gyre gyre' "$prefix/share/bash-completion/completions/gyre" ||
  { echo "FAIL: no bash completion installed" >&2; status=1; }
grep -q '^#compdef gyre' "$prefix/share/zsh/site-functions/_gyre" ||
  { echo "FAIL: no zsh completion installed" >&2; status=1; }
[ "$status" = 0 ] && echo "PASS: installed and ran from $prefix/bin"
exit "$status"
