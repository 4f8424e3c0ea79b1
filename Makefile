# seqmirror — see README.md. `make demo` and `make test` are the two set-up commands.
GO      ?= go
BIN     := bin
GOFLAGS ?=
export GOFLAGS

.PHONY: all build demo test test-short vet fuzz-short bench bench-go soak crash clean deps
.PHONY: bench-rsyncd

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...

# Installs what a fresh Debian machine lacks for the tests (rsync, git).
deps:
	@command -v rsync >/dev/null 2>&1 && command -v git >/dev/null 2>&1 || { \
	  echo "installing rsync and git" >&2; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq rsync git >/dev/null; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq rsync git >/dev/null; fi; }

demo: build
	./scripts/demo.sh

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# All tests, with the race detector off for speed on 2 cores; SEQMIRROR_REQUIRE_PEERS
# makes tests fail (not skip) when rsync or git is missing.
# The short fuzz runs first so that go test's summary closes the output.
test: deps vet fuzz-short
	SEQMIRROR_REQUIRE_PEERS=1 $(GO) test -count=1 -timeout 20m ./...

FUZZTIME ?= 5s
fuzz-short:
	./scripts/fuzz.sh $(FUZZTIME)

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf $(BIN) demo bench-out

# issue 3: mirror-sync vs plain rsync from one rsync daemon on 127.0.0.1 (N files, default 100000).
bench-rsyncd: build
	./scripts/bench-rsyncd.sh $(N)
