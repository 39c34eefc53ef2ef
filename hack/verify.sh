#!/usr/bin/env bash
# Fails when anything generated from the source is stale: formatting, go.mod/go.sum, and the
# controller-gen outputs. Works on a dirty tree: it regenerates a copy of the working tree and
# compares, so uncommitted work is checked as it is, not against HEAD.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0

unformatted=$(gofmt -l $(git ls-files -co --exclude-standard -- '*.go'))
if [ -n "$unformatted" ]; then
  echo "verify: gofmt needed on:"; echo "$unformatted"; status=1
fi

if ! go mod tidy -diff; then
  echo "verify: go.mod/go.sum are not tidy; run 'go mod tidy'"; status=1
fi

copy=$(mktemp -d)
trap 'rm -rf "$copy"' EXIT
git ls-files -co --exclude-standard -z | xargs -0 -I{} cp --parents {} "$copy" 2>/dev/null || true
(cd "$copy" && make --no-print-directory generate CONTROLLER_GEN="$CONTROLLER_GEN" >/dev/null)
# Files only in the working tree (ignored build output and the like) are not generated: skip them.
stale=$(diff -r -q -x .git -x bin . "$copy" 2>&1 | grep -v '^Only in \.' || true)
if [ -n "$stale" ]; then
  echo "verify: generated files are stale; run 'make generate':"
  echo "$stale" | sed 's/^/  /'
  status=1
fi
exit $status
