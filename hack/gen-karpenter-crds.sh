#!/usr/bin/env bash
# Copies the CustomResourceDefinitions of the Karpenter core this module builds with (go.mod's
# sigs.k8s.io/karpenter) into config/crd/karpenter (NodePool, NodeClaim, NodeOverlay,
# CapacityBuffer) and config/crd/karpenter-kwok (KWOKNodeClass, for the kwok provider), so that
# the chart and the tests install exactly the API the binary was built against.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(go list -m -f '{{.Dir}}' sigs.k8s.io/karpenter)
if [ -z "$dir" ] || [ ! -d "$dir/pkg/apis/crds" ]; then
  echo "gen-karpenter-crds: sigs.k8s.io/karpenter is not in the module cache (run go mod download)" >&2
  exit 1
fi
for pair in "pkg/apis/crds:config/crd/karpenter" "kwok/apis/crds:config/crd/karpenter-kwok"; do
  src=${pair%%:*} dest=${pair#*:}
  rm -rf "$dest" && mkdir -p "$dest"
  for f in "$dir/$src"/*.yaml; do
    install -m 0644 "$f" "$dest/$(basename "$f")"
  done
done
