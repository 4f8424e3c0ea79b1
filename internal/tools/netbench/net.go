package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
)

// node is the master or one mirror: its root, its HTTP port, its place in
// the tree and its links.
type node struct {
	name     string
	tier     int // 0: the master
	root     string
	port     int
	parent   *node
	alt      *node // the failover upstream, or nil
	children []*node
	upURL    string // the parent through this node's link
	altURL   string // the alt upstream through a link, or ""
	trigURL  string // this node's trigger endpoint through its link
	proc     *proc
	watch    *watcher
}

func (m *node) addr() string { return fmt.Sprintf("127.0.0.1:%d", m.port) }

// proc is one child process, in a process group of its own.
type proc struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// network is the master, the mirrors, the proxies and the processes.
type network struct {
	cfg     config
	dir     string
	source  string
	secret  string
	master  *node
	mirrors []*node
	tiers   [][]*node // tiers[0]: tier 1
	proxy   *toxiproxy.ApiServer
	proxies []*toxiproxy.Proxy
	procs   []*proc
	rng     *rand.Rand
	linkN   int
	port    int // the last port freePort handed out
}

func newNetwork(cfg config, dir string) *network {
	return &network{cfg: cfg, dir: dir, source: filepath.Join(dir, "source"),
		secret: filepath.Join(dir, "trigger.secret"),
		rng:    rand.New(rand.NewPCG(uint64(cfg.seed), 14)),
		proxy:  toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())}
}

// build lays out the tree: roots, ports and the links (proxies) between
// tiers.
func (n *network) build() error {
	var err error
	n.master = &node{name: "master", root: filepath.Join(n.dir, "master")}
	if n.master.port, err = n.freePort(); err != nil {
		return err
	}
	parents := []*node{n.master}
	counts := append([]int{n.cfg.tier1}, n.cfg.fanout...)
	for t, per := range counts {
		var tier []*node
		for _, p := range parents {
			for range per {
				m := &node{name: fmt.Sprintf("t%d-%02d", t+1, len(tier)+1), tier: t + 1, parent: p}
				m.root = filepath.Join(n.dir, m.name)
				if m.port, err = n.freePort(); err != nil {
					return err
				}
				p.children = append(p.children, m)
				tier = append(tier, m)
			}
		}
		n.tiers = append(n.tiers, tier)
		n.mirrors = append(n.mirrors, tier...)
		parents = tier
	}
	if err := n.makeRoots(); err != nil {
		return err
	}
	return n.link()
}

// makeRoots runs -root-cmd with each root's path, the master's first.
func (n *network) makeRoots() error {
	if n.cfg.rootCmd == "" {
		return nil
	}
	for _, m := range append([]*node{n.master}, n.mirrors...) {
		out, err := exec.Command(n.cfg.rootCmd, m.root).CombinedOutput()
		if err != nil {
			return fmt.Errorf("-root-cmd %s %s: %w: %s", n.cfg.rootCmd, m.root, err, out)
		}
	}
	return nil
}

// link makes each mirror's proxies: to its parent (latency and bandwidth),
// to its alt upstream (a sibling of its parent, the same), and in front of
// its own port for triggers (latency only).
func (n *network) link() error {
	for _, m := range n.mirrors {
		lat := n.cfg.latency[0] + time.Duration(n.rng.Int64N(int64(n.cfg.latency[1]-n.cfg.latency[0])+1))
		var err error
		if m.upURL, err = n.addLink(m.parent.addr(), lat, n.cfg.rateKBs); err != nil {
			return err
		}
		m.upURL += "/"
		if m.trigURL, err = n.addLink(m.addr(), lat, 0); err != nil {
			return err
		}
		if m.tier >= 2 && n.cfg.failover == "on" {
			sib := siblingOf(m.parent, n.tiers[m.tier-2])
			if sib != nil {
				m.alt = sib
				if m.altURL, err = n.addLink(sib.addr(), lat, n.cfg.rateKBs); err != nil {
					return err
				}
				m.altURL += "/"
			}
		}
	}
	return nil
}

// siblingOf is the node after p in its tier (cyclic), or nil if p is alone.
func siblingOf(p *node, tier []*node) *node {
	for i, x := range tier {
		if x == p && len(tier) > 1 {
			return tier[(i+1)%len(tier)]
		}
	}
	return nil
}

// addLink starts a toxiproxy in front of target with one-way latency lat
// (and jitter) on the downstream stream and, if rate > 0, a bandwidth
// limit in KB/s; it returns the proxy's URL, http://HOST:PORT.
func (n *network) addLink(target string, lat time.Duration, rate int64) (string, error) {
	n.linkN++
	p := toxiproxy.NewProxy(n.proxy, fmt.Sprintf("link%d", n.linkN), "127.0.0.1:0", target)
	if err := p.Start(); err != nil {
		return "", fmt.Errorf("toxiproxy in front of %s: %w", target, err)
	}
	n.proxies = append(n.proxies, p)
	toxics := []string{fmt.Sprintf(`{"name":"lat","type":"latency","stream":"downstream","attributes":{"latency":%d,"jitter":%d}}`,
		lat.Milliseconds(), n.cfg.jitter.Milliseconds())}
	if rate > 0 {
		toxics = append(toxics, fmt.Sprintf(`{"name":"bw","type":"bandwidth","stream":"downstream","attributes":{"rate":%d}}`, rate))
	}
	for _, t := range toxics {
		if _, err := p.Toxics.AddToxicJson(strings.NewReader(t)); err != nil {
			return "", fmt.Errorf("toxiproxy toxic %s: %w", t, err)
		}
	}
	return "http://" + p.Listen, nil
}

// freePort returns a port on 127.0.0.1 that nothing listens on, below the
// kernel's ephemeral range (32768 and up here): a port picked by listening
// on :0 and closing can be taken by an outgoing connection's source port
// before the daemon binds it ("address already in use").
func (n *network) freePort() (int, error) {
	if n.port == 0 {
		n.port = 20000
	}
	for n.port < 32000 {
		n.port++
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", n.port))
		if err == nil {
			l.Close()
			return n.port, nil
		}
	}
	return 0, errors.New("free port: none free in 20001-32000")
}

// tool is the path of one of the binaries.
func (n *network) tool(name string) string { return filepath.Join(n.cfg.bin, name) }

// start runs a command in a process group of its own, its output appended
// to the log file logName in the work directory.
func (n *network) start(logName string, args ...string) (*proc, error) {
	logPath := filepath.Join(n.dir, "logs", logName+".log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", args[0], err)
	}
	p := &proc{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	n.procs = append(n.procs, p)
	return p, nil
}

// signal sends sig to p's process group.
func (p *proc) signal(sig syscall.Signal) {
	if p != nil && p.cmd.Process != nil {
		_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	}
}

// stop ends p: SIGTERM, then SIGKILL after 10 s.
func (p *proc) stop() {
	if p == nil {
		return
	}
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.signal(syscall.SIGKILL)
		<-p.done
	}
}

// kill ends p with SIGKILL and waits for it.
func (p *proc) kill() {
	if p == nil {
		return
	}
	p.signal(syscall.SIGKILL)
	<-p.done
}

// tail is the end of p's log, for an error.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(bytes.TrimSpace(b))
}

// waitListening waits until addr accepts connections or p exits.
func waitListening(ctx context.Context, p *proc, addr string) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited (%v) before listening on %s:\n%s", filepath.Base(p.cmd.Path), p.err, addr, p.tail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("nothing listens on %s after 20 s:\n%s", addr, p.tail())
}

// serveMaster starts `publish serve` on the master's root.
func (n *network) serveMaster(ctx context.Context) error {
	p, err := n.start("master-serve", n.tool("publish"), "serve", "--root", n.master.root, "--listen", n.master.addr(), "--quiet")
	if err != nil {
		return err
	}
	n.master.proc = p
	return waitListening(ctx, p, n.master.addr())
}

// daemonMode is how the daemons run in a phase.
type daemonMode struct {
	triggers bool
	interval time.Duration
}

// startDaemon starts m's `mirror-sync daemon`.
func (n *network) startDaemon(ctx context.Context, m *node, mode daemonMode) error {
	args := []string{n.tool("mirror-sync"), "daemon", "--upstream", m.upURL}
	if m.altURL != "" {
		args = append(args, "--upstream", m.altURL)
	}
	args = append(args, "--root", m.root, "--listen", m.addr(), "--name", m.name,
		"--interval", mode.interval.String(), "--keep", strconv.Itoa(n.cfg.keepSnaps), "--min-age", "0", "--workers", strconv.Itoa(n.cfg.workers))
	if n.cfg.verbose {
		args = append(args, "-v")
	}
	if mode.triggers {
		args = append(args, "--secret-file", n.secret)
		for _, c := range m.children {
			args = append(args, "--downstream", c.trigURL)
		}
	}
	if err := os.MkdirAll(m.root, 0o755); err != nil {
		return err
	}
	p, err := n.start(m.name, args...)
	if err != nil {
		return err
	}
	m.proc = p
	return waitListening(ctx, p, m.addr())
}

// startAll starts every mirror's daemon.
func (n *network) startAll(ctx context.Context, mode daemonMode) error {
	for _, m := range n.mirrors {
		if err := n.startDaemon(ctx, m, mode); err != nil {
			return fmt.Errorf("%s: %w", m.name, err)
		}
	}
	return nil
}

// stopAll stops every mirror's daemon (SIGTERM, in parallel).
func (n *network) stopAll() {
	done := make(chan struct{})
	for _, m := range n.mirrors {
		go func() { m.proc.stop(); done <- struct{}{} }()
	}
	for range n.mirrors {
		<-done
	}
}

// close kills every process still running and stops the proxies.
func (n *network) close() {
	for _, p := range n.procs {
		p.signal(syscall.SIGKILL)
	}
	for _, p := range n.procs {
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
		}
	}
	for _, p := range n.proxies {
		p.Stop()
	}
}

// run runs a command to its end and returns its stdout, its duration and
// its exit code (an error only when it could not run).
func (n *network) run(ctx context.Context, args ...string) (string, time.Duration, int, error) {
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	t0 := time.Now()
	err := cmd.Run()
	d := time.Since(t0)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.String() + errb.String(), d, ee.ExitCode(), nil
	}
	if err != nil {
		return "", d, -1, fmt.Errorf("%s: %w", strings.Join(args, " "), err)
	}
	return out.String(), d, 0, nil
}

// daemonTakesUpstreams reports whether this build's daemon takes
// --upstream more than once (failover).
func (n *network) daemonTakesUpstreams(ctx context.Context) bool {
	out, _, _, err := n.run(ctx, n.tool("mirror-sync"), "daemon", "--help")
	return err == nil && strings.Contains(out, "--upstream ADDR [ --upstream ADDR ]")
}

// itoa is strconv.Itoa for uint64 snapshot numbers.
func itoa(v uint64) string { return strconv.FormatUint(v, 10) }
