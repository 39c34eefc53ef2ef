#!/usr/bin/env bash
# Generates the VerticalPodAutoscaler and VerticalPodAutoscalerCheckpoint CRDs from the upstream
# Go types (k8s.io/autoscaler/vertical-pod-autoscaler, the version in go.mod) into config/crd/vpa.
# controller-gen always reports one error for these types — HistogramCheckpoint.BucketWeights is a
# map with int keys, which the field's own markers already describe (an object that keeps
# unknown fields) — and upstream generates its CRDs the same way. Any other error fails.
set -euo pipefail
cd "$(dirname "$0")/.."
gen=${1:?usage: hack/gen-vpa-crd.sh <controller-gen>}
out=config/crd/vpa
rm -rf "$out" && mkdir -p "$out"
log=$("$gen" crd:allowDangerousTypes=true paths=k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1 output:crd:artifacts:config="$out" 2>&1) || true
unexpected=$(printf '%s\n' "$log" | grep -v -e 'map keys must be strings or implement encoding.TextMarshaler, not int' \
  -e '^Error: not all generators ran successfully' -e "^run \`controller-gen" -e '^$' || true)
if [ -n "$unexpected" ]; then
  echo "gen-vpa-crd: controller-gen failed:"; echo "$unexpected"; exit 1
fi
for kind in verticalpodautoscalers verticalpodautoscalercheckpoints; do
  [ -s "$out/autoscaling.k8s.io_$kind.yaml" ] || { echo "gen-vpa-crd: $kind CRD not generated"; exit 1; }
done
