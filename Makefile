# seqmirror — see README.md. `make demo` and `make test` are the two set-up commands.
GO      ?= go
BIN     := bin
GOFLAGS ?=
export GOFLAGS

.PHONY: all build demo test test-short vet fuzz-short bench bench-1m bench-go soak crash clean deps
.PHONY: bench-rsyncd test-race

all: build

# Static binaries (no cgo): no dynamic loader at start, which is a quarter of
# a no-op mirror-sync poll (docs/performance.md).
build:
	CGO_ENABLED=0 $(GO) build -o $(BIN)/ ./cmd/...

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
	$(MAKE) test-race

# The library packages again under the race detector (publish and
# mirror-sync run walks, links, fetches and manifest decoding concurrently).
# internal/reliab, whose crash and torture loops mostly run the binaries, is
# left out (it passes under -race too, in ~2 minutes).
test-race:
	SEQMIRROR_REQUIRE_PEERS=1 $(GO) test -race -count=1 -timeout 20m ./fsys/... ./seqfile/... ./manifest/... ./export/... ./snapshot/... ./mirror/... ./transport/... ./testutil/...

FUZZTIME ?= 5s
fuzz-short:
	./scripts/fuzz.sh $(FUZZTIME)

# Long reliability runs (internal/reliab; short versions run in `make test`).
# soak: the coherence torture for 5 minutes over the local and the rsync
# transport (and the naive-rsync control), hostile upstreams over both,
# readers during 60 syncs, every fault sweep. crash: >= 500 SIGKILL points
# across publish and mirror-sync, and SIGTERM/SIGINT points (TestCrashSignal*)
# for publish and mirror-sync over a path, over rsync and in classic mode.
RELIAB := SEQMIRROR_LONG=1 SEQMIRROR_REQUIRE_PEERS=1 $(GO) test -count=1 -timeout 90m -v ./internal/reliab/
soak: deps
	$(RELIAB) -run 'TestCoherenceTorture|TestReadersNeverBlock|TestInjectedFaults|TestHostileUpstream'

crash: deps
	$(RELIAB) -run 'TestCrash'

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# seqmirror vs rsync side by side on a generated tree; prints one table of
# ratios (docs/performance.md). Not part of `make test`. BENCH_N files.
BENCH_N ?= 100000
bench: deps
	./scripts/bench.sh $(BENCH_N)

# The 1M-file case (~18 GB per full copy; needs ~40 GB free): one repetition,
# peak RSS of each seqmirror run; the rsync side of the two initial copies and
# the unflushed rsync runs are skipped (RSYNC_INITIAL=1 RSYNC_NOSYNC=1 to add).
bench-1m: deps
	REPS=$${REPS:-1} NOOP_REPS=$${NOOP_REPS:-3} RSYNC_INITIAL=$${RSYNC_INITIAL:-0} RSYNC_NOSYNC=$${RSYNC_NOSYNC:-0} ./scripts/bench.sh 1000000

clean:
	rm -rf $(BIN) demo bench-out

# issue 3: mirror-sync vs plain rsync from one rsync daemon on 127.0.0.1 (N files, default 100000).
bench-rsyncd: build
	./scripts/bench-rsyncd.sh $(N)
