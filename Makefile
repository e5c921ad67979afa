# signald — the two commands that matter are `make run` and `make test`.
GO            ?= go
BIN           := bin/signald
# Tool versions are pinned so that every machine lints the same way.
STATICCHECK   := honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOVULNCHECK   := golang.org/x/vuln/cmd/govulncheck@v1.9.0
ADDR          ?= :8080

.PHONY: all run build test test-short test-js test-browser check-rules deps lint vuln fuzz bench chaos docker clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/signald

## run: build and start signald on $(ADDR) with the embedded store, in dev mode.
run: build
	SIGNALD_ADDR=$(ADDR) SIGNALD_LOG_FORMAT=text ./$(BIN) serve --dev

## deps: install what the tests need and the machine lacks (redis-server,
## haproxy, promtool).
deps:
	@scripts/install-deps.sh

## test: the alert rules (check-rules), go vet, every Go test with -race
## against a private redis-server, then the TypeScript SDK's tests and the
## demo page's browser tests (test-js).
test: deps check-rules
	scripts/with-redis.sh sh -c '$(GO) vet ./... && $(GO) test -race -count=1 -timeout 20m ./...'
	scripts/test-js.sh

## test-js: the TypeScript SDK's tests and the demo page's browser tests
## (Debian's Chromium), on memory and Redis; installs Node, Chromium and the
## npm dependencies where missing.
test-js:
	scripts/test-js.sh

## test-browser: the demo page's browser tests only.
test-browser:
	scripts/test-js.sh browser

## test-short: every test but the system tests and the long chaos run (they
## skip themselves under -short), without -race: the quick loop while editing.
test-short: deps
	scripts/with-redis.sh $(GO) test -short -count=1 ./...

## check-rules: promtool checks the alerts of deploy/prometheus and runs
## their unit tests (alerts_test.yaml).
check-rules: deps
	promtool check rules deploy/prometheus/alerts.yaml
	promtool test rules deploy/prometheus/alerts_test.yaml

## lint: go vet, gofmt and staticcheck.
lint:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) run $(STATICCHECK) ./...

## vuln: govulncheck: known vulnerabilities that the code reaches, in the
## modules it uses and the Go release that builds it (needs the Go
## vulnerability database, online).
vuln:
	$(GO) run $(GOVULNCHECK) ./...

## fuzz: a short run of every fuzz target.
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecodeRequest -fuzztime 30s ./internal/protocol
	$(GO) test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime 30s ./internal/auth

## bench: the standard load run (memory and Redis mode) and the Go microbenchmarks;
## writes docs/benchmarks.md. About four minutes.
bench: deps
	scripts/bench.sh

## chaos: the long fault-injection run (3 instances, 150 users, 120 s, every
## fault kind; see cmd/signald-chaos); fails unless lost=duplicated=inconsistent=0.
chaos: deps build
	$(GO) run ./cmd/signald-chaos -signald $(BIN) -instances 3 -users 150 -duration 120s -faults all

## docker: a small static image (needs a Docker engine).
docker:
	docker build -f deploy/Dockerfile -t signald:dev .

clean:
	rm -rf bin
