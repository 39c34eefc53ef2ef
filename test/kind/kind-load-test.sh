#!/usr/bin/env bash
# The kind load test (`make kind-load-test`): the sales event of `make demo`, Lockstep's recipe
# against the CPU-only baseline with the same load, played in a kind cluster by a Job running the
# same scenario code (test/kind/loadtest). Only the cluster and the images differ from the test
# bed: real nodes, Caddy's official image as the ingress, the demo API burning real CPU, and the
# HPA's default 15 s sync. node-autoscaler is not installed (kind cannot add nodes), so neither
# side spills.
#
# Needs Docker with a running engine, kind and kubectl, and the internet (kind's node image, the
# Caddy image, metrics-server's release manifest). The Makefile builds the Lockstep images
# (bin/images), the demo API and runner images (bin/kind/images) and helm before calling it.
#
# Environment: HELM, helm's path (set by the Makefile); CLUSTER, the kind cluster's name
# (default lockstep-load, created if missing); KEEP=1 keeps the cluster afterwards.
set -euo pipefail
cd "$(dirname "$0")/../.."

cluster=${CLUSTER:-lockstep-load}
helm=${HELM:?set HELM to the path of helm, as make kind-load-test does}
out=bin/kind
caddy_image=caddy:2.11
metrics_server=https://github.com/kubernetes-sigs/metrics-server/releases/download/v0.8.0/components.yaml
job=lockstep-load-test

say() { printf 'kind-load-test: %s\n' "$*"; }
fail() { say "$*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || fail "$1 is required: $2"; }

need docker "install Docker"
need kind "go install sigs.k8s.io/kind@latest"
need kubectl "https://kubernetes.io/docs/tasks/tools/"
docker info >/dev/null 2>&1 || fail "the Docker engine is not running"
for archive in bin/images/cronhpa.tar "$out/images/loadtest.tar"; do
  [ -f "$archive" ] || fail "$archive is missing: run make kind-load-test"
done

k() { kubectl --context "kind-$cluster" "$@"; }

if ! kind get clusters 2>/dev/null | grep -qx "$cluster"; then
  say "creating kind cluster $cluster"
  kind create cluster --name "$cluster" --config test/kind/cluster.yaml --wait 2m
fi
if [ "${KEEP:-0}" != 1 ]; then
  trap 'say "deleting kind cluster $cluster (KEEP=1 keeps it)"; kind delete cluster --name "$cluster"' EXIT
fi

say "loading the images"
for archive in bin/images/*.tar "$out"/images/*.tar; do
  kind load image-archive --name "$cluster" "$archive"
done
docker pull -q "$caddy_image" >/dev/null
kind load docker-image --name "$cluster" "$caddy_image"

say "installing metrics-server"
k apply -f "$metrics_server"
# kind's kubelets serve self-signed certificates.
if ! k -n kube-system get deployment metrics-server -o jsonpath='{.spec.template.spec.containers[0].args}' | grep -q kubelet-insecure-tls; then
  k -n kube-system patch deployment metrics-server --type=json \
    -p '[{"op":"add","path":"/spec/template/spec/containers/0/args/-","value":"--kubelet-insecure-tls"}]'
fi
k -n kube-system rollout status deployment/metrics-server --timeout=3m

say "installing Lockstep with helm"
"$helm" --kube-context "kind-$cluster" upgrade --install lockstep chart \
  --namespace lockstep-system --create-namespace --values test/kind/values.yaml --wait --timeout 5m

say "starting the load test"
k delete -f test/kind/loadtest.yaml --ignore-not-found --wait
k delete namespace sale-lockstep sale-baseline --ignore-not-found --wait
k apply -f test/kind/loadtest.yaml

# Wait for the Job's pod to start, then follow its log to the end.
for _ in $(seq 1 180); do
  phase=$(k get pods -l job-name="$job" -o jsonpath='{.items[0].status.phase}' 2>/dev/null || true)
  case "$phase" in Running | Succeeded | Failed) break ;; esac
  sleep 1
done
if [ -z "${phase:-}" ] || [ "$phase" = Pending ]; then
  k describe pods -l job-name="$job" >&2 || true
  fail "the load test's pod did not start"
fi
mkdir -p "$out"
k logs -f "job/$job" | tee "$out/loadtest.log" | grep -v '^LOCKSTEP-FILE'

for _ in $(seq 1 60); do
  succeeded=$(k get job "$job" -o jsonpath='{.status.succeeded}')
  failed=$(k get job "$job" -o jsonpath='{.status.failed}')
  [ "${succeeded:-0}" -ge 1 ] && break
  [ "${failed:-0}" -ge 1 ] && fail "the load test failed; its log is in $out/loadtest.log"
  sleep 1
done
[ "${succeeded:-0}" -ge 1 ] || fail "the load test did not finish"

for file in kind-load-test.json kind-load-test.png; do
  awk -v f="$file" '$1 == "LOCKSTEP-FILE" && $2 == f { print $3 }' "$out/loadtest.log" | base64 -d >"$out/$file"
  [ -s "$out/$file" ] || fail "$file is not in the load test's log"
done
say "the plot: $out/kind-load-test.png (the timeline: $out/kind-load-test.json)"
