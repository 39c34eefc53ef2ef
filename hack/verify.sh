#!/usr/bin/env bash
# Fails when anything generated from the source is stale: formatting, go.mod/go.sum, and the
# controller-gen outputs. Works on a dirty tree: it regenerates a copy of the working tree and
# compares, so uncommitted work is checked as it is, not against HEAD.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0

unformatted=$(git ls-files -co --exclude-standard -z -- '*.go' | xargs -0 gofmt -l)
if [ -n "$unformatted" ]; then
  echo "verify: gofmt needed on:"; echo "$unformatted"; status=1
fi

if ! go mod tidy -diff; then
  echo "verify: go.mod/go.sum are not tidy; run 'go mod tidy'"; status=1
fi

# Two copies of the files git sees (tracked and untracked, not ignored; deleted ones left out):
# one as it is, one regenerated. Any difference is stale output, a generated file missing from
# the tree, or an orphan that generation no longer produces.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/tree" "$work/generated"
git ls-files -co --exclude-standard -z | while IFS= read -r -d '' f; do
  if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
done > "$work/files"
for dest in "$work/tree" "$work/generated"; do
  xargs -0 -r cp -P --parents -t "$dest" < "$work/files"
done
if ! (cd "$work/generated" && make --no-print-directory generate CONTROLLER_GEN="$CONTROLLER_GEN" >/dev/null); then
  echo "verify: make generate failed"; exit 1
fi
if ! stale=$(diff -r -q "$work/tree" "$work/generated"); then
  echo "verify: generated files are stale, missing or orphaned; run 'make generate' (and remove orphans):"
  echo "$stale" | sed "s|$work/tree|tree|g; s|$work/generated|generated|g; s/^/  /"
  status=1
fi
exit $status
