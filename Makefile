# Ciao: build, test, check, fuzz and bench. `make help` lists the targets.

GO        ?= go
PKGS      ?= ./...
BIN       ?= $(CURDIR)/bin
FUZZTIME  ?= 60s
GOBIN     ?= $(shell $(GO) env GOPATH)/bin
STATICCHECK_VERSION ?= v0.8.2

# _release/ is skipped by ./... (a leading underscore); its packages are
# listed explicitly.
RELEASE_PKGS = $(shell find _release -name '*.go' -printf '%h\n' | sort -u | sed 's|^|./|')
DEV_STATE ?= /var/lib/ciao-dev
DEVCLUSTER_FLAGS ?=

.PHONY: help build deps test unit check fuzz fuzz-short bench clean
.PHONY: release release-check dev-cluster dev-cluster-down dev-cluster-status acceptance acceptance-ci
# make test's acceptance run uses its own state directory, ports and
# namespace prefix, so a developer's dev cluster survives it; they are
# derived from a hash of the checkout's path (fixed for a checkout), so two
# checkouts run make test at once without touching each other's cluster.
# A lock per port slot makes a second run from the same checkout (or the
# rare checkout whose hash lands in the same slot) fail at once, naming the
# cluster that holds it, instead of tearing that cluster down.
CI_ID    := $(shell printf '%s' '$(CURDIR)' | sha256sum | cut -c1-6)
CI_SLOT  := $(shell echo $$((0x$(CI_ID) % 1000)))
CI_PORT  := $(shell echo $$((20000 + 3 * $(CI_SLOT))))
CI_STATE ?= /var/lib/ciao-acceptance-$(CI_ID)
CI_LOCK  ?= /run/lock/ciao-acceptance-$(CI_PORT).lock
CI_FLAGS ?= -state-dir $(CI_STATE) -scheduler-port $(CI_PORT) -api-port $(shell echo $$(($(CI_PORT) + 1))) \
	-webui-port $(shell echo $$(($(CI_PORT) + 2))) -net-prefix ci$(CI_ID)

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build every command into ./bin
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./ciao-scheduler ./ciao-launcher ./ciao-controller ./ciao-cli ./ssntp/ciao-cert ./ssntp/ssntp-bench \
		./networking/ciao-cnci-agent ./networking/cmd/net-bench \
		./osprepare/cmd/ciao-osprepare ./ciao-scheduler/ciao-scheduler-load \
		./ciao-launcher/cmd/launcher-bench ./ciao-launcher/cmd/vm-bench ./ciao-controller/cmd/controller-bench \
		./ciao-webui

deps: ## install the OS packages Ciao and its tests use (osprepare; root or sudo)
	@./scripts/install-test-deps.sh

test: deps check unit release-check acceptance-ci fuzz-short ## everything CI runs: OS packages, checks, unit and integration tests with -race, short fuzz runs

unit: ## go test -race on every package
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

check: ## gofmt, go vet, staticcheck and import boundaries
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	@test -x $(GOBIN)/staticcheck || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(GOBIN)/staticcheck $(PKGS)
	@./scripts/check-imports.sh

release-check: ## vet, staticcheck and go test -race of _release/ (dev cluster, release tooling; the acceptance suite skips itself)
	$(GO) vet $(RELEASE_PKGS)
	@test -x $(GOBIN)/staticcheck || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(GOBIN)/staticcheck $(RELEASE_PKGS)
	$(GO) test -race -count=1 -timeout 10m $(RELEASE_PKGS)

dev-cluster: ## as root: the single-machine dev cluster, with a container, a VM and a process running (DEV_STATE, DEVCLUSTER_FLAGS)
	$(GO) run ./_release/cmd/ciao-devcluster up -state-dir $(DEV_STATE) -repo $(CURDIR) $(DEVCLUSTER_FLAGS)

dev-cluster-down: ## remove everything make dev-cluster made, and check nothing is left
	$(GO) run ./_release/cmd/ciao-devcluster down -state-dir $(DEV_STATE)

dev-cluster-status: ## the dev cluster's daemons, pids and restarts
	$(GO) run ./_release/cmd/ciao-devcluster status -state-dir $(DEV_STATE)

release: ## VERSION=x.y.z: dist/ciao-x.y.z-linux-amd64.tar.gz, release notes from git log since the last tag, SHA256SUMS
	@test -n "$(VERSION)" || { echo "usage: make release VERSION=x.y.z"; exit 2; }
	$(GO) run ./_release/cmd/ciao-release -version $(VERSION) -repo $(CURDIR) -out $(CURDIR)/dist

acceptance: ## the acceptance suite (ciao-cli only) against the running dev cluster
	CIAO_ACCEPTANCE=1 CIAO_DEVCLUSTER_STATE=$(DEV_STATE) $(GO) test -count=1 -v -timeout 30m ./_release/acceptance

acceptance-ci: ## a dev cluster from scratch (per-checkout state and ports), the acceptance suite, then teardown with the leftover check
	@mkdir -p $(dir $(CI_LOCK)); exec 9<>$(CI_LOCK); \
	if ! flock -n 9; then \
	  echo "another acceptance cluster is running at $$(cat $(CI_LOCK)) (ports $(CI_PORT)-$$(($(CI_PORT) + 2)), lock $(CI_LOCK)); wait for it to end" >&2; exit 1; \
	fi; \
	printf '%s (pid %s)\n' '$(CI_STATE)' $$$$ >$(CI_LOCK); \
	down() { $(GO) run ./_release/cmd/ciao-devcluster down $(CI_FLAGS); }; \
	echo "acceptance cluster at $(CI_STATE), ports $(CI_PORT)-$$(($(CI_PORT) + 2))"; \
	down && $(GO) run ./_release/cmd/ciao-devcluster up -repo $(CURDIR) $(CI_FLAGS) || { down; exit 1; }; \
	CIAO_ACCEPTANCE=1 CIAO_ACCEPTANCE_TEARDOWN=1 CIAO_DEVCLUSTER_STATE=$(CI_STATE) \
	  $(GO) test -count=1 -v -timeout 30m ./_release/acceptance || { down; exit 1; }

fuzz-short: ## every fuzz target for a few seconds (FUZZTIME=3s)
	@./scripts/fuzz.sh 3s

fuzz: ## every fuzz target for FUZZTIME (default 60s)
	@./scripts/fuzz.sh $(FUZZTIME)

bench: build ## Go benchmarks and the bench commands, one line per figure
	$(GO) test -run='^$$' -bench=. -benchmem ./ssntp/... ./uuid/ ./payloads/ ./ciao-scheduler/...
	$(BIN)/ssntp-bench
	$(BIN)/ciao-scheduler-load -scheduler $(BIN)/ciao-scheduler -agents 1000 -starts 100000 -rate 10000
	$(BIN)/launcher-bench
	$(BIN)/vm-bench
	$(BIN)/controller-bench -bin-dir $(BIN)
	$(GO) test -run='^$$' -bench=InstanceList -benchtime=5x ./ciao-webui/
	$(BIN)/net-bench

clean: ## remove build output
	rm -rf $(BIN) dist
