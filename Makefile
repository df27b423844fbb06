# Ciao: build, test, check, fuzz and bench. `make help` lists the targets.

GO        ?= go
PKGS      ?= ./...
BIN       ?= $(CURDIR)/bin
FUZZTIME  ?= 60s
GOBIN     ?= $(shell $(GO) env GOPATH)/bin
STATICCHECK_VERSION ?= v0.8.2

.PHONY: help build deps test unit check fuzz fuzz-short bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build every command into ./bin
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./ciao-scheduler ./ciao-launcher ./ciao-controller ./ciao-cli ./ssntp/ciao-cert ./ssntp/ssntp-bench \
		./osprepare/cmd/ciao-osprepare ./ciao-scheduler/ciao-scheduler-load \
		./ciao-launcher/cmd/launcher-bench ./ciao-launcher/cmd/vm-bench ./ciao-controller/cmd/controller-bench

deps: ## install the OS packages Ciao and its tests use (osprepare; root or sudo)
	@./scripts/install-test-deps.sh

test: deps check unit fuzz-short ## everything CI runs: OS packages, checks, unit and integration tests with -race, short fuzz runs

unit: ## go test -race on every package
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

check: ## gofmt, go vet, staticcheck and import boundaries
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	@test -x $(GOBIN)/staticcheck || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(GOBIN)/staticcheck $(PKGS)
	@./scripts/check-imports.sh

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

clean: ## remove build output
	rm -rf $(BIN)
