# seqmirror — see README.md. `make demo` and `make test` are the two set-up commands.
GO      ?= go
BIN     := bin
GOFLAGS ?=
export GOFLAGS

.PHONY: all build demo test vet fuzz-short bench bench-1m bench-go soak crash clean deps
.PHONY: bench-rsyncd bench-http bench-serve bench-network bench-watch test-race install mem bench-cow bench-scale

all: build

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -X github.com/seqmirror/seqmirror/internal/cliapp.Version=$(VERSION)

# Static binaries (no cgo): no dynamic loader at start, which is a quarter of
# a no-op mirror-sync poll (docs/performance.md). urfave_cli_no_docs leaves
# out urfave/cli's man and markdown writers (genman has its own build), whose
# markdown package's init is 0.4 ms of every run.
BUILD_TAGS := urfave_cli_no_docs
build:
	CGO_ENABLED=0 $(GO) build -tags $(BUILD_TAGS) -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

# make install [PREFIX=/usr/local] [DESTDIR=]: both tools and the volunteer
# script in PREFIX/bin, their man pages (generated from the CLI definitions)
# in PREFIX/share/man/man1.
PREFIX  ?= /usr/local
DESTDIR ?=
install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0755 $(BIN)/publish $(BIN)/publish-etcd $(BIN)/mirror-sync $(DESTDIR)$(PREFIX)/bin/
	install -m 0755 docs/volunteer-mirror.sh $(DESTDIR)$(PREFIX)/bin/seqmirror-volunteer-mirror
	$(GO) run ./internal/tools/genman $(DESTDIR)$(PREFIX)/share/man/man1

# Installs what a fresh Debian machine lacks for the tests (the real peers
# rsync, git and nginx; flock; shellcheck for the documented scripts;
# systemd-analyze for the documented units, minisign for the signatures'
# interop tests, headless Chromium and chromedriver for the status page's
# browser test, etcd for the highly available masters' tests, mkfs.btrfs,
# mkfs.xfs and btrfs for the copy-on-write tests on loop-mounted
# filesystems; ~60 s and ~140 packages on a fresh machine); as a user
# other than root it says what to install instead.
DEPS_BIN := rsync git flock shellcheck nginx systemd-analyze chromium chromedriver minisign etcd mkfs.btrfs mkfs.xfs btrfs
DEPS_PKG := rsync git util-linux shellcheck nginx systemd chromium chromium-driver minisign etcd-server btrfs-progs xfsprogs
deps:
	@missing=; for b in $(DEPS_BIN); do command -v $$b >/dev/null 2>&1 || [ -x /usr/sbin/$$b ] || missing="$$missing $$b"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "installing $(DEPS_PKG) (missing:$$missing)" >&2; \
	    apt-get update -qq && apt-get install -y -qq $(DEPS_PKG) >/dev/null; \
	  else echo "make $(MAKECMDGOALS) needs$$missing: run 'apt-get install $(DEPS_PKG)' as root, then make again" >&2; exit 1; fi; fi

demo: build
	./scripts/demo.sh

# scripts/check-make.sh: every .PHONY name has a rule, no sudo in the
# Makefile or scripts, nothing refers to a directory outside the repository.
vet:
	./scripts/check-make.sh
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
# mirror-sync run walks, links, fetches and manifest decoding concurrently;
# serve answers requests concurrently; the daemon syncs, probes, forwards
# and answers triggers at once).
# internal/reliab, whose crash and torture loops mostly run the binaries,
# and internal/transport/rsync, whose tests mostly wait for rsync processes
# and daemons, are left out (they pass under -race too, in ~2 minutes and
# ~1 minute), to keep `make test` near 8 minutes on a fresh 2-core machine.
test-race:
	SEQMIRROR_REQUIRE_PEERS=1 $(GO) test -race -count=1 -timeout 20m ./internal/fsys/... ./seqfile/... ./manifest/... ./internal/export/... ./internal/tree/... ./internal/retry/... ./snapshot/... ./internal/mirror/... ./internal/transport ./internal/transport/web/... ./internal/server/... ./client/... ./internal/daemon/... ./internal/trigger/... ./internal/quorum/... ./internal/ha/... ./internal/statuspage/... ./testutil/...

FUZZTIME ?= 3s
fuzz-short:
	./scripts/fuzz.sh $(FUZZTIME)

# Long reliability runs (internal/reliab; short versions run in `make test`).
# soak: the coherence torture for 5 minutes over the local and the rsync
# transport (and the naive-rsync control), hostile upstreams over both,
# readers during 60 syncs, every fault sweep. crash: >= 500 SIGKILL points
# across publish and mirror-sync, and SIGTERM/SIGINT points (TestCrashSignal*)
# for publish and mirror-sync over a path, over rsync and in classic mode.
# Both include the copy-on-write variants on a loop-mounted btrfs
# (TestCrashCoW, TestCrashSignalCoW, TestInjectedFaultsCoW; root).
RELIAB := SEQMIRROR_LONG=1 SEQMIRROR_REQUIRE_PEERS=1 $(GO) test -count=1 -timeout 90m -v ./internal/reliab/
soak: deps
	$(RELIAB) -run 'TestCoherenceTorture|TestReadersNeverBlock|TestInjectedFaults|TestHostileUpstream'

crash: deps
	$(RELIAB) -run 'TestCrash'

# Peak RSS of mirror-sync (every path) and of verify over a manifest of 2M
# directory records, and of publish (initial, 1% changed, forced) of a
# tree of 1M small files, each bounded at 100 MiB (~1 hour; on disk, since
# the tests need more inodes than /dev/shm has). SEQMIRROR_MEM_DIRS=N and
# SEQMIRROR_MEM_FILES=N for other counts.
mem: deps
	$(RELIAB) -run 'TestMemoryManyDirs|TestMemoryPublish'

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# seqmirror vs rsync side by side on a tree made by scripts/gentree.py;
# prints one table of ratios (docs/performance.md). Not part of `make test`.
# BENCH_N files.
BENCH_N ?= 100000
bench: deps
	./scripts/bench.sh $(BENCH_N)

# The 1M-file case (~18 GB per full copy; needs ~40 GB free): one repetition,
# peak RSS of each seqmirror run; the rsync side of the two initial copies and
# the unflushed rsync runs are skipped (RSYNC_INITIAL=1 RSYNC_NOSYNC=1 to add).
bench-1m: deps
	REPS=$${REPS:-1} NOOP_REPS=$${NOOP_REPS:-3} RSYNC_INITIAL=$${RSYNC_INITIAL:-0} RSYNC_NOSYNC=$${RSYNC_NOSYNC:-0} ./scripts/bench.sh 1000000

clean:
	rm -rf $(BIN) demo

# A 1% change on a loop-mounted btrfs (a sparse image in /tmp/perf):
# publish and mirror-sync on the copy-on-write path and on the hard-link
# farm vs rsync --link-dest on the same filesystem, one table
# (docs/performance.md, "Copy-on-write"). Root only; BENCH_N files.
bench-cow: deps
	./scripts/bench-cow.sh $(or $(N),$(BENCH_N))

# The cost curve: every operation (publish and mirror-sync: initial, 1%,
# no-op; over a local path, an rsync daemon and nginx) of seqmirror and
# rsync side by side at SIZES files (default 10k, 100k, 500k and 1M), on
# ext4 (BENCH_ROOT, default /tmp/perf/scale) and on a loop-mounted btrfs;
# one table per filesystem and the log-log plot docs/bench-scale.svg
# (docs/performance.md, "The cost curve"). Root for btrfs; hours at 1M
# (SIZES=..., FSES=ext4, VIAS=... for less; ONLY_PLOT=1 redraws from the
# CSV). Not part of `make test`.
bench-scale: deps
	./scripts/bench-scale.sh

# mirror-sync vs plain rsync from one rsync daemon on 127.0.0.1, on BENCH_N
# files (or N=...; docs/performance.md).
bench-rsyncd: deps
	./scripts/bench-rsyncd.sh $(or $(N),$(BENCH_N))

# mirror-sync over HTTP from a stock nginx serving the master's export root
# vs plain rsync from a daemon, on BENCH_N files; then the no-op poll over
# rsync at 1M files (NOOP_1M=0 to leave it out: it needs ~40 GB free and
# ~12 min).
NOOP_1M ?= 1
bench-http: deps build
	VIA=http ./scripts/bench-rsyncd.sh $(or $(N),$(BENCH_N))
	if [ "$(NOOP_1M)" = 1 ]; then CASES=a REPEAT=$${REPEAT:-1} ./scripts/bench-rsyncd.sh 1000000; fi

# publish --watch: the time from `git push` returning to the new snapshot
# being served, one commit a push into a bare repository in the source,
# for the default 1s quiet window and a 100ms one, alone in the source and
# beside 10,000 other files; mean, p50 and max of WATCH_PUSHES pushes each
# (docs/performance.md, "Publish on change"). Not part of `make test`.
WATCH_PUSHES ?= 20
bench-watch:
	$(GO) test ./internal/e2e -run '^$$' -bench 'BenchmarkWatchPushLatency' -benchtime $(WATCH_PUSHES)x -count 1

# seqmirror's serve against nginx (the block serve nginx-config prints) on
# one export root of BENCH_SERVE_N small files, the same Go load generator
# on both (internal/tools/loadgen): req/s and p99 in one table
# (docs/performance.md). SECS, CONC, ROUNDS tune it. Not part of `make test`.
BENCH_SERVE_N ?= 20000
bench-serve: deps
	./scripts/bench-serve.sh $(BENCH_SERVE_N)

# One master and 50 `mirror-sync daemon` processes in 3 tiers (5, 15, 30) on
# 127.0.0.1, every link through toxiproxy (in-process: 20-80 ms, 100 Mbit/s),
# a 10k-file tree: arrival times of 20 publishes with triggers and of
# NETBENCH_POLL publishes with 60 s polling only, failover, catch-up after a
# restart, quorum publish; one Markdown table on stdout and the plot in
# NETBENCH_SVG (docs/performance.md, "Mirror network"). ~25 minutes; needs
# ~10 GB free in $$TMPDIR. NETBENCH_FLAGS for more (go run
# ./internal/tools/netbench -h), e.g. the quick run
# NETBENCH_FLAGS='-tier1 3 -fanout 1,1 -files 2000 -publishes 3 -skip poll -interval 15s'.
# Not part of `make test`.
NETBENCH_SVG  ?= docs/bench-network.svg
NETBENCH_POLL ?= 3
NETBENCH_FLAGS ?=
# NETBENCH_FS=btrfs puts every root on a btrfs loop image (root; ~24 GB
# sparse in $$TMPDIR): each sync snapshots the served subvolume instead of
# linking every unchanged file; NETBENCH_FS=btrfs-each gives each root a
# btrfs of its own, as on separate machines (scripts/bench-network.sh).
NETBENCH_FS ?=
bench-network: build
	NETBENCH_FS=$(NETBENCH_FS) GO=$(GO) ./scripts/bench-network.sh $(BIN) $(NETBENCH_SVG) $(NETBENCH_POLL) $(NETBENCH_FLAGS)
