package rsync

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/seqmirror/seqmirror/internal/transport/upstream"
	"github.com/seqmirror/seqmirror/internal/tree"
)

// safetyArgs keep rsync from making anything a snapshot may not hold,
// whatever the upstream sends: devices and specials (fifos, sockets) are
// skipped, never created, and no setuid, setgid or sticky bit is set. They
// come after Options.Rsync.Extra, so an extra option cannot undo them. The --info
// flags make rsync report what it skipped (see skip).
var safetyArgs = []string{"--no-devices", "--no-specials", "--chmod=ugo-s,-t", "--info=nonreg1,skip1"}

// connectedMarker is the line --debug=proto prints once the daemon has
// answered the client's greeting: the end of connecting.
const connectedMarker = "(Client) Protocol versions:"

// durations returns the I/O and connect timeouts, defaults applied.
func (u *Upstream) durations() (to, cto time.Duration) {
	to, cto = u.opt.Timeout, u.opt.ConTimeout
	if to <= 0 {
		to = DefaultTimeout
	}
	if cto <= 0 {
		cto = DefaultConTimeout
	}
	return to, cto
}

func seconds(d time.Duration) string {
	return strconv.Itoa(max(1, int(d.Round(time.Second)/time.Second)))
}

// baseArgs are the options every run gets.
func (u *Upstream) baseArgs() []string {
	to, cto := u.durations()
	args := []string{"--timeout=" + seconds(to)}
	if u.Addr.Kind == Daemon {
		// TCP_NODELAY: the daemon protocol is a chain of small messages,
		// each of which Nagle holds back until the last one is acked
		// (and Linux delays acks by up to 40ms): a few such waits are most
		// of a poll's time. --rsync-opt=--sockopts=... overrides it.
		args = append(args, "--contimeout="+seconds(cto), "--sockopts=TCP_NODELAY")
	}
	if u.Addr.Kind == Shell && u.opt.Rsync.Rsh != "" {
		args = append(args, "--rsh="+u.opt.Rsync.Rsh)
	}
	args = append(append(args, u.opt.Rsync.Extra...), safetyArgs...)
	if u.watchConnect() {
		args = append(args, "--debug=proto")
	}
	return args
}

// watchConnect reports whether runs are watched until the daemon answers
// (connectedMarker): daemon addresses, unless an extra option silences
// rsync (-q), which would hide the marker.
func (u *Upstream) watchConnect() bool {
	if u.Addr.Kind != Daemon {
		return false
	}
	for _, a := range u.opt.Rsync.Extra {
		if a == "--quiet" || (len(a) > 1 && a[0] == '-' && a[1] != '-' && strings.ContainsRune(a, 'q') && !strings.Contains(a, "=")) {
			return false
		}
	}
	return true
}

// skip is an entry rsync left out of a transfer, as its output reported it:
// not a regular file (a device, fifo or socket, or a symlink where -l was
// not given), or over --max-size. rsync exits 0 for these.
type skip struct {
	name  string // as rsync printed it: relative to the transfer's source
	big   bool   // over --max-size (limit); else not a regular file
	limit int64  // the run's --max-size, or -1
	kind  string // what it is upstream ("a fifo"), if known
	size  int64  // its size upstream, or -1 if unknown
}

// what says what was wrong with the entry (not naming it).
func (s skip) what() string {
	switch {
	case s.big && s.size >= 0:
		return fmt.Sprintf("it is %d bytes upstream, over the limit of %d", s.size, s.limit)
	case s.big:
		return fmt.Sprintf("it is larger upstream than the limit of %d bytes", s.limit)
	case s.kind != "":
		return "it is " + s.kind + " upstream, not a regular file"
	}
	return "it is not a regular file upstream (a device, fifo or socket)"
}

// quoteName quotes a name rsync reported, shortened, for a message.
func quoteName(s string) string {
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return strconv.Quote(s)
}

// skipError is an rsync run that left entries out. It wraps
// tree.ErrHashMismatch (what came is not what the manifest lists);
// callers for whom that is wrong read skips and say otherwise.
type skipError struct {
	skips []skip // the first few
	total int
}

func (e *skipError) Error() string {
	msg := fmt.Sprintf("rsync did not transfer %s: %s", quoteName(e.skips[0].name), e.skips[0].what())
	if e.total > 1 {
		msg += fmt.Sprintf(" (and %d more entries)", e.total-1)
	}
	return msg
}

func (e *skipError) Unwrap() error { return tree.ErrHashMismatch }

// output is what a run printed on stdout, read as it comes.
type output struct {
	progress  func(int64, int)
	connected func() // called at connectedMarker
	skips     []skip
	nskips    int
	lines     []string // other lines (the first few): --list-only's listing
	allLines  bool     // keep every other line, not only the first few
}

const keepLines = 64

// line takes one line (or --info=progress2 record).
func (o *output) line(l string) {
	switch {
	case strings.HasPrefix(l, connectedMarker):
		if o.connected != nil {
			o.connected()
		}
	case strings.HasPrefix(l, `skipping non-regular file "`) && strings.HasSuffix(l, `"`):
		o.addSkip(skip{name: l[len(`skipping non-regular file "`) : len(l)-1]})
	case strings.HasSuffix(l, " is over max-size"):
		o.addSkip(skip{name: strings.TrimSuffix(l, " is over max-size"), big: true})
	default:
		if o.progress != nil {
			if b, p, ok := ParseProgressLine(l); ok {
				o.progress(b, p)
				return
			}
		}
		if o.allLines || len(o.lines) < keepLines {
			o.lines = append(o.lines, l)
		}
	}
}

func (o *output) addSkip(s skip) {
	o.nskips++
	if len(o.skips) < keepLines {
		s.name, s.size, s.limit = unescape(s.name), -1, -1
		o.skips = append(o.skips, s)
	}
}

// read splits r into records ended by '\r' or '\n' and hands them to line.
func (o *output) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
			return i + 1, data[:i], nil
		}
		if atEOF && len(data) > 0 {
			return len(data), data, nil
		}
		return 0, nil, nil
	})
	for sc.Scan() {
		if l := sc.Text(); l != "" {
			o.line(l)
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

// unescape undoes rsync's \#ooo escapes of unprintable bytes in names.
func unescape(s string) string {
	if !strings.Contains(s, `\#`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+5 <= len(s) && s[i+1] == '#' {
			if n, err := strconv.ParseUint(s[i+2:i+5], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 4
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// connectWatch kills a run whose daemon has not answered within the
// connect timeout: rsync's own --contimeout covers only the TCP connect,
// so a server that accepts and stays silent would hold the run for the
// whole I/O timeout.
type connectWatch struct {
	mu    sync.Mutex
	timer *time.Timer
	done  bool // answered, or the run ended
	fired bool
}

func (w *connectWatch) start(d time.Duration, kill func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer = time.AfterFunc(d, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if !w.done {
			w.done, w.fired = true, true
			kill()
		}
	})
}

// stop ends the watch (the daemon answered, or the run ended); it reports
// whether the watch had fired.
func (w *connectWatch) stop() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
	if w.timer != nil {
		w.timer.Stop()
	}
	return w.fired
}

// run runs rsync with the base options and args. With progress set it adds
// --info=progress2 and feeds the reports to it. It returns the entries
// rsync skipped; if rsync exited 0 having skipped some, the error is a
// *skipError, its first entry described (describe) where its source path
// can be told. After a timeout (the daemon did not answer in time, or I/O
// stalled) every later run of u fails at once: one run of mirror-sync
// waits for a silent upstream once, not once per step or retry.
func (u *Upstream) run(ctx context.Context, progress func(int64, int), args ...string) ([]skip, error) {
	out, err := u.exec(ctx, progress, args)
	if err != nil || out.nskips == 0 {
		return out.skips, err
	}
	s := &out.skips[0]
	s.limit = maxSizeArg(args)
	if src, ok := sourceOf(args, s.name); ok {
		s.kind, s.size = u.describe(ctx, src)
	}
	return out.skips, &skipError{skips: out.skips, total: out.nskips}
}

// exec runs rsync once (see run).
func (u *Upstream) exec(ctx context.Context, progress func(int64, int), args []string) (*output, error) {
	return u.execInto(ctx, &output{progress: progress}, args)
}

// execInto is exec collecting into out.
func (u *Upstream) execInto(ctx context.Context, out *output, args []string) (*output, error) {
	if u.dead != nil {
		return out, fmt.Errorf("%w (not waiting for it again in this run)", u.dead)
	}
	bin := u.opt.Rsync.Binary
	if bin == "" {
		bin = "rsync"
	}
	all := u.baseArgs()
	if out.progress != nil {
		all = append(all, "--info=progress2")
	}
	all = append(all, args...)
	cmd := exec.CommandContext(ctx, bin, all...)
	cmd.Env = append(os.Environ(), "LC_ALL=C") // English messages, which vanished() reads
	// Own process group, so that cancelling also stops rsync's ssh child.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	stderr := &tailBuffer{max: 4096}
	cmd.Stderr = stderr
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	watch := &connectWatch{}
	out.connected = func() { watch.stop() }
	done := make(chan struct{})
	go func() {
		defer close(done)
		out.read(pr)
	}()
	err := cmd.Start()
	if err == nil {
		if u.watchConnect() {
			_, cto := u.durations()
			watch.start(cto, func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
		}
		err = cmd.Wait()
	}
	fired := watch.stop()
	pw.Close()
	<-done
	return out, u.runError(ctx, bin, err, fired, stderr)
}

// runError maps the outcome of one run to an error (nil if it succeeded),
// remembering timeouts in u.dead.
func (u *Upstream) runError(ctx context.Context, bin string, err error, fired bool, stderr *tailBuffer) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("rsync: %w", context.Cause(ctx))
	}
	if fired {
		_, cto := u.durations()
		u.dead = fmt.Errorf("%w (%w): %s did not answer within the connect timeout (%s)", upstream.ErrUnavailable, upstream.ErrTimedOut, u, cto)
		return u.dead
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() > 0 {
		xe := &ExitError{Code: ee.ExitCode(), Stderr: string(stderr.b)}
		if xe.Code == 30 || xe.Code == 35 {
			u.dead = fmt.Errorf("%w (%w)", xe, upstream.ErrTimedOut)
			return u.dead
		}
		return xe
	}
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("run %s: %w (install rsync, or give the path of its binary)", bin, err)
	}
	return fmt.Errorf("run %s: %w: %s", bin, err, strings.TrimSpace(string(stderr.b)))
}

// maxSizeArg is the value of a --max-size=N in args, or -1.
func maxSizeArg(args []string) int64 {
	n := int64(-1)
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--max-size="); ok {
			if x, err := strconv.ParseInt(v, 10, 64); err == nil {
				n = x
			}
		}
	}
	return n
}

// sourceOf is the rsync source path of an entry a run with args reported
// as name: args end with the source and the destination; a directory
// source (trailing '/') holds name below it, unless --no-relative dropped
// its directories; a single-file source is the entry itself.
func sourceOf(args []string, name string) (string, bool) {
	if len(args) < 2 {
		return "", false
	}
	src := args[len(args)-2]
	for _, a := range args {
		if a == "--no-relative" {
			return "", false
		}
	}
	if strings.HasSuffix(src, "/") {
		return src + name, true
	}
	return src, true
}

// describe asks rsync (--list-only) what the upstream entry at src is: its
// type (as "a fifo") and size. It is used only to word an error; it returns
// "" and -1 when it cannot tell.
func (u *Upstream) describe(ctx context.Context, src string) (string, int64) {
	out, err := u.exec(ctx, nil, []string{"--list-only", "--no-motd", src})
	if err != nil {
		return "", -1
	}
	for _, l := range out.lines {
		f := strings.Fields(l)
		if len(f) < 2 || len(f[0]) != 10 {
			continue
		}
		size, err := strconv.ParseInt(strings.ReplaceAll(f[1], ",", ""), 10, 64)
		if err != nil {
			size = -1
		}
		return kinds[f[0][0]], size
	}
	return "", -1
}

// kinds names the types of rsync --list-only's mode strings.
var kinds = map[byte]string{'-': "a regular file", 'd': "a directory", 'l': "a symlink", 'p': "a fifo",
	's': "a socket", 'c': "a character device", 'b': "a block device"}
