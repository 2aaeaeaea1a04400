#!/bin/sh
# Install Prism (@stoplight/prism-cli) into .ci/node for the conformance tests
# (tests/test_prism.py). Idempotent: quick when it is already installed.
# Prints the path of the prism executable on its last line.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
prefix="$here/node"
prism="$prefix/node_modules/.bin/prism"
version="${PRISM_VERSION:-5.16.0}"
if ! command -v npm >/dev/null 2>&1; then
    echo "prism.sh: npm is not installed; install Node.js (>= 18) to run the Prism conformance tests" >&2
    exit 1
fi
if [ -x "$prism" ] && "$prism" --version 2>/dev/null | grep -qx "$version"; then
    echo "$prism"
    exit 0
fi
mkdir -p "$prefix"
# A registry that does not answer must not hang CI: give up after 10 minutes.
timeout 600 npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error "@stoplight/prism-cli@$version" >&2
"$prism" --version >/dev/null
echo "$prism"
