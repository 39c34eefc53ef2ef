# Lockstep: elastic autoscaling for Kubernetes. `make help` lists the targets.
SHELL := /usr/bin/env bash -o pipefail
.DEFAULT_GOAL := help

BIN   := $(CURDIR)/bin
TOOLS := $(BIN)/tools
export GOBIN := $(TOOLS)

CONTROLLER_TOOLS_VERSION := v0.23.0
GOLANGCI_LINT_VERSION    := v2.15.0
HELM_VERSION             := v3.22.0
CONTROLLER_GEN := $(TOOLS)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
GOLANGCI_LINT  := $(TOOLS)/golangci-lint-$(GOLANGCI_LINT_VERSION)
HELM           := $(TOOLS)/helm-$(HELM_VERSION)
TESTBED_CLI    := go run ./test/testbed/cmd/testbed

# Images: one per binary, tagged with the chart's appVersion, created at the last commit's time.
VERSION      := $(shell awk '/^appVersion:/ {gsub(/"/, "", $$2); print $$2}' chart/Chart.yaml)

# Every Go build here except the race detector's is static and path-trimmed, like the images'
# binaries and the test bed's: the Go build cache then holds one compiled copy of each package
# for the linters' type information, the integration tests, the images and the test bed's
# components (test/testbed/build aligns their dependency versions with go.mod). On a fresh
# machine that saves compiling the dependencies several times over.
export CGO_ENABLED := 0
export GOFLAGS := -trimpath $(GOFLAGS)

# Integration tests start real control planes; two cores fit two test packages at once.
TEST_FLAGS ?= -count=1 -p 2 -timeout 45m

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build every cmd/* binary into bin/ (static, reproducible: the images' binaries).
	go run ./hack/image --out "" --bin-dir $(BIN) $$(go list ./cmd/...)

.PHONY: image
image: ## Build one OCI image archive per binary into bin/images/ (no container engine; same inputs, same digests).
	go run ./hack/image --out $(BIN)/images --bin-dir $(BIN) --tag $(VERSION) \
		--source-date-epoch $$(git log -1 --format=%ct 2>/dev/null || echo 0) $$(go list ./cmd/...)

.PHONY: testbed
testbed: ## Build the test bed (control plane, kwok, metrics-server, and the real node's kubelet, containerd, runc, CNI plugins, pause image) into bin/testbed/ (skips what exists).
	@# runc links Debian's libseccomp (pods with the RuntimeDefault seccomp profile).
	@pkg-config --exists libseccomp 2>/dev/null || { echo "installing libseccomp-dev and pkg-config for runc"; \
		$$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -qq && \
		$$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -qq --no-install-recommends libseccomp-dev pkg-config; }
	$(TESTBED_CLI) build --root $(BIN)/testbed

.PHONY: test
test: verify lint testbed $(HELM) image ## Verify, lint, unit tests with the race detector, then integration tests on the test bed.
	unit=$$(hack/packages.sh unit) && env -u LOCKSTEP_UNIT_ONLY CGO_ENABLED=1 LOCKSTEP_IMAGES=$(BIN)/images go test -race -count=1 $$unit
	bed=$$(hack/packages.sh bed) && env -u LOCKSTEP_UNIT_ONLY LOCKSTEP_HELM=$(HELM) LOCKSTEP_IMAGES=$(BIN)/images go test $(TEST_FLAGS) $$bed

.PHONY: unit
unit: ## Run only the tests that need no test bed (quick; tests that need it are skipped).
	LOCKSTEP_UNIT_ONLY=1 go test -count=1 ./...

.PHONY: e2e
e2e: testbed build ## Run the end-to-end scenarios (build tag e2e): cronhpa failover, then the sales event at full length under real load against the baseline.
	env -u LOCKSTEP_UNIT_ONLY go test -tags e2e $(TEST_FLAGS) -v -run 'TestFailover' ./cronhpa/test/failover/
	@# Alone, so that nothing else competes with the load for the two cores.
	env -u LOCKSTEP_UNIT_ONLY LOCKSTEP_LOAD_OUT=$(BIN) go test -tags e2e $(TEST_FLAGS) -v -run 'TestFullSalesEvent' ./test/load/scenario/

.PHONY: bench
bench: testbed build ## Run benchmarks against the test bed and print their figures (about 15 minutes).
	go test -run '^$$' -bench . -benchmem -benchtime 1x -timeout 60m ./... | grep -E '^(Benchmark|goos|pkg|ok|FAIL|---)'

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code, CRDs (config/crd and chart/crds) and RBAC with controller-gen.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./cronhpa/apis/...
	$(CONTROLLER_GEN) crd paths=./cronhpa/apis/... output:crd:artifacts:config=config/crd
	$(CONTROLLER_GEN) rbac:roleName=lockstep-cronhpa paths=./cronhpa/... output:rbac:artifacts:config=config/rbac/cronhpa
	$(CONTROLLER_GEN) rbac:roleName=lockstep-metrics-adapter paths=./metrics-adapter/rbac output:rbac:artifacts:config=config/rbac/metrics-adapter
	hack/gen-vpa-crd.sh $(CONTROLLER_GEN)
	hack/gen-karpenter-crds.sh
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./node-autoscaler/alibabacloud/apis/...
	$(CONTROLLER_GEN) crd paths=./node-autoscaler/alibabacloud/apis/... output:crd:artifacts:config=config/crd/node-autoscaler
	$(CONTROLLER_GEN) rbac:roleName=lockstep-node-autoscaler paths=./node-autoscaler output:rbac:artifacts:config=config/rbac/node-autoscaler
	$(CONTROLLER_GEN) rbac:roleName=lockstep-vpa-inplace paths=./vpa-inplace/... output:rbac:artifacts:config=config/rbac/vpa-inplace
	@mkdir -p chart/crds chart/files && rm -f chart/crds/*.yaml && cp config/crd/*.yaml chart/crds/
	cp config/rbac/cronhpa/role.yaml chart/files/cronhpa-role.yaml
	cp config/rbac/metrics-adapter/role.yaml chart/files/metrics-adapter-role.yaml
	cp config/rbac/vpa-inplace/role.yaml chart/files/vpa-inplace-role.yaml
	cat config/crd/vpa/*.yaml > chart/files/vpa-crds.yaml
	cp config/rbac/node-autoscaler/role.yaml chart/files/node-autoscaler-role.yaml
	cat config/crd/karpenter/*.yaml > chart/files/karpenter-crds.yaml
	cat config/crd/karpenter-kwok/*.yaml > chart/files/karpenter-kwok-crds.yaml
	cat config/crd/node-autoscaler/*.yaml > chart/files/ecsnodeclass-crd.yaml
	go run ./hack/chartvalues chart

.PHONY: verify
verify: $(CONTROLLER_GEN) ## Fail if generated files, go.mod/go.sum or formatting are out of date.
	CONTROLLER_GEN=$(CONTROLLER_GEN) hack/verify.sh

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint, and shellcheck on the shell scripts (installed with apt if missing).
	$(GOLANGCI_LINT) run ./...
	@command -v shellcheck >/dev/null || { echo "installing shellcheck"; \
		$$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -qq && \
		$$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -qq --no-install-recommends shellcheck; }
	shellcheck .ci/run hack/*.sh test/kind/*.sh

.PHONY: demo
demo: testbed build ## Play the sales event under real load on a local cluster, Lockstep against a CPU-only baseline; writes bin/demo.png and stays up until Ctrl-C.
	go run ./test/demo --root $(BIN)/testbed --out $(BIN) --kubeconfig-out $(BIN)/kubeconfig $(DEMO_FLAGS)

.PHONY: kind-load-test
kind-load-test: image $(HELM) ## Play the sales event in a kind cluster (needs Docker, kind, kubectl and the internet; not run by CI): bin/kind/kind-load-test.png.
	go run ./hack/image --out $(BIN)/kind/images --bin-dir $(BIN)/kind/bin --tag kind \
		--source-date-epoch $$(git log -1 --format=%ct 2>/dev/null || echo 0) ./test/load/cmd/demo-api ./test/kind/loadtest
	HELM=$(HELM) test/kind/kind-load-test.sh

.PHONY: clean
clean: ## Remove built binaries except the test bed and tools caches.
	rm -f $(filter-out $(BIN)/testbed $(BIN)/tools,$(wildcard $(BIN)/*))

$(CONTROLLER_GEN):
	@mkdir -p $(TOOLS)
	GOWORK=off go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(TOOLS)/controller-gen $@

$(HELM):
	@mkdir -p $(TOOLS)
	GOWORK=off go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	mv $(TOOLS)/helm $@

.PHONY: helm
helm: $(HELM) ## Build helm into bin/tools (the chart tests use it).

$(GOLANGCI_LINT):
	@mkdir -p $(TOOLS)
	GOWORK=off go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(TOOLS)/golangci-lint $@
