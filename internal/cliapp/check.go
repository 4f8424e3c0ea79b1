package cliapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/sign"
	"github.com/seqmirror/seqmirror/internal/transport"
	"github.com/seqmirror/seqmirror/seqfile"
	"github.com/urfave/cli/v2"
)

// Monitoring-plugin exit codes (Nagios, Icinga, Zabbix), which `check`
// uses instead of the tools' table.
const (
	PluginOK       = 0
	PluginWarning  = 1
	PluginCritical = 2
	PluginUnknown  = 3
)

var pluginNames = [...]string{"OK", "WARNING", "CRITICAL", "UNKNOWN"}

// pluginResult ends a check whose one line is printed: Run exits with its
// code and prints nothing more.
type pluginResult struct{ code int }

func (p pluginResult) Error() string { return "check: " + pluginNames[p.code] }

// CheckHelp is the check command's description.
const CheckHelp = `Reads ADDR's seq/begin, seq/end, current, status.json and seq/checked, over the
same transport as --upstream (a local path, rsync, or http(s)://, where current
is read from seq/current: nothing else is needed on the client), and prints ONE
line in the monitoring-plugin format, with perfdata:

   SEQMIRROR OK - serves 12, fresh, lag 0 snapshots 0s | snapshot=12 lag_snapshots=0 lag_seconds=0s;3600;21600 ...

followed, as the plugin format's long output, by the lineage status.json
records for the served snapshot (docs/protocol.md section 9): one line a
hop, master first, with when it started serving the snapshot and its lag
after the previous hop, then how long ADDR has served it:

   hop 1 master rsync://master/pub snapshot 12 since 2026-11-28T10:00:00Z master
   hop 2 tier1 https://t1/pub/ snapshot 12 since 2026-11-28T10:00:00.4Z +0.4s
   serving it for 61.2s

(--json: "lineage", each hop with "lag_seconds", and "lineage_age_seconds").

Its exit codes follow the monitoring-plugin convention (Nagios, Icinga, Zabbix),
NOT the table of the other commands:
   0  OK        fresh; or stale or updating within the thresholds
   1  WARNING   stale past --warn-lag, updating past --warn-updating, or not
                checked for --warn-checked
   2  CRITICAL  past the --crit-* thresholds; torn (current does not resolve to
                a complete snapshot, or the seq files are corrupt); serves
                nothing; ADDR unreachable
   3  UNKNOWN   bad arguments; --against unreachable (the lag cannot be known)

Lag is measured against --against if given (the upstream's newest snapshot and
since when it has served one ADDR lacks: the mtime of its oldest such manifest),
else against ADDR's own record of its last poll (seq/checked). A --warn-lag or
--crit-lag value is a number of snapshots (e.g. 3) or a duration (e.g. 90m);
repeat the flag to give both; either being reached trips it; giving the flag
replaces its default. --warn-checked and
--crit-checked (off by default) trip when ADDR's mirror-sync has not read its
upstream for that long (a dead cron), or never has (a master has no record).

To clone a git repository from a mirror on this machine, resolve current first:
   git clone "$(readlink -f /srv/mirror/current)/scm/repo.git"`

func checkCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "against", Usage: "measure the lag against this upstream `ADDR` (path, rsync or http(s) address)"},
		&cli.StringSliceFlag{Name: "warn-lag", Value: cli.NewStringSlice("1h"), Usage: "WARNING at this lag: `N` snapshots or a duration (repeatable)"},
		&cli.StringSliceFlag{Name: "crit-lag", Value: cli.NewStringSlice("6h"), Usage: "CRITICAL at this lag: `N` snapshots or a duration (repeatable)"},
		&cli.DurationFlag{Name: "warn-updating", Value: time.Hour, Usage: "WARNING when an update has run (or died) for `D`"},
		&cli.DurationFlag{Name: "crit-updating", Value: 6 * time.Hour, Usage: "CRITICAL when an update has run (or died) for `D`"},
		&cli.DurationFlag{Name: "warn-checked", Usage: "WARNING when ADDR's mirror-sync last read its upstream `D` ago (0: off)"},
		&cli.DurationFlag{Name: "crit-checked", Usage: "CRITICAL when ADDR's mirror-sync last read its upstream `D` ago (0: off)"},
		jsonFlag,
		&cli.StringFlag{Name: "rsync", Value: "rsync", Usage: "rsync `PROGRAM`: a name looked up in $PATH, or a path"},
		&cli.StringSliceFlag{Name: "rsync-opt", Usage: "extra rsync `OPTION` (repeatable), e.g. --rsync-opt=--port=8873"},
		&cli.StringFlag{Name: "rsh", Usage: "remote shell `COMMAND` for host:path addresses"},
		&cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "rsync and http(s): give up when no data moves for `D`"},
		&cli.DurationFlag{Name: "contimeout", Value: 10 * time.Second, Usage: "rsync daemons and http(s): give up connecting after `D`"},
		caFileFlag, trustKeyFlag,
	}
	return &cli.Command{
		Name:         "check",
		Usage:        "monitoring plugin: is ADDR serving a whole, fresh snapshot? (exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)",
		ArgsUsage:    "ADDR",
		Description:  CheckHelp,
		Flags:        flags,
		Action:       checkAction,
		OnUsageError: func(c *cli.Context, err error, _ bool) error { return checkUnknown(c, "usage: %v", err) },
	}
}

// checkUnknown prints an UNKNOWN line and ends the check with exit 3.
func checkUnknown(c *cli.Context, format string, a ...any) error {
	fmt.Fprintf(c.App.Writer, "SEQMIRROR UNKNOWN - %s\n", clean(fmt.Sprintf(format, a...)))
	return pluginResult{PluginUnknown}
}

// thresholds of one level (warning or critical); zero fields are off.
type thresholds struct {
	snaps    uint64
	lag      time.Duration
	updating time.Duration
	checked  time.Duration
}

// parseLag reads --warn-lag or --crit-lag values into t.
func parseLag(t *thresholds, flag string, vals []string) error {
	for _, v := range vals {
		if n, err := strconv.ParseUint(v, 10, 64); err == nil && n > 0 {
			t.snaps = n
			continue
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("--%s %q: want a number of snapshots (e.g. 3) or a duration (e.g. 90m)", flag, v)
		}
		t.lag = d
	}
	return nil
}

func checkThresholds(c *cli.Context) (warn, crit thresholds, err error) {
	if err = parseLag(&warn, "warn-lag", c.StringSlice("warn-lag")); err != nil {
		return warn, crit, err
	}
	if err = parseLag(&crit, "crit-lag", c.StringSlice("crit-lag")); err != nil {
		return warn, crit, err
	}
	warn.updating, crit.updating = c.Duration("warn-updating"), c.Duration("crit-updating")
	warn.checked, crit.checked = c.Duration("warn-checked"), c.Duration("crit-checked")
	for _, d := range []time.Duration{warn.updating, crit.updating, warn.checked, crit.checked} {
		if d < 0 {
			return warn, crit, errors.New("durations must not be negative")
		}
	}
	return warn, crit, nil
}

func checkAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return checkUnknown(c, "usage: mirror-sync check ADDR [flags] (one address, a path, rsync://host/module or https://host/path)")
	}
	warn, crit, err := checkThresholds(c)
	if err != nil {
		return checkUnknown(c, "usage: %v", err)
	}
	e := envFor(c)
	tr, err := trust(c)
	if err != nil {
		return checkUnknown(c, "%v", err)
	}
	rep := probeAddr(c.Context, e, c.Args().First(), tr)
	if rep.code != PluginCritical && c.String("against") != "" {
		rep.compare(c.Context, e, c.String("against"))
	} else if rep.code != PluginCritical {
		rep.fromPoll()
	}
	rep.judge(warn, crit)
	if c.Bool("json") {
		if err := e.printJSON(rep.json()); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(e.out, rep.line(warn, crit))
		rep.printPartial(e.out)
		rep.printLineage(e.out)
		rep.printSignature(e.out)
	}
	if rep.code == PluginOK {
		return nil
	}
	return pluginResult{rep.code}
}

// checkReport is what check found.
type checkReport struct {
	addr      string
	now       time.Time
	code      int
	reasons   []string // why the code is not OK
	state     string
	problem   string
	snapshot  uint64
	begin     uint64
	end       uint64
	upAddr    string
	upSnap    *uint64
	behindAt  time.Time // since when ADDR lacks a snapshot its upstream serves
	updating  *time.Duration
	checked   *time.Time
	lastError string
	lastAt    *time.Time
	poll      *export.Poll
	lineage   []export.Hop // from status.json, for the snapshot served
	linNote   string
	partial   *export.Partial // the served snapshot's filter chain (partial mirrors)
	// trust verifies ADDR's signature statements (--trust-key; nil: none);
	// signature is ADDR's mode (status.json's, or "verified" when trust
	// verified them), expires its timestamp's expiry.
	trust     *sign.Trust
	signature string
	expires   *time.Time
}

// severity orders plugin codes: OK < UNKNOWN < WARNING < CRITICAL.
var severity = [...]int{PluginOK: 0, PluginWarning: 2, PluginCritical: 3, PluginUnknown: 1}

func (r *checkReport) raise(code int, format string, a ...any) {
	if severity[code] > severity[r.code] {
		r.code = code
	}
	r.reasons = append(r.reasons, fmt.Sprintf(format, a...))
}

// probeAddr reads the state of the root at addr.
func probeAddr(ctx context.Context, e *env, addr string, tr *sign.Trust) *checkReport {
	r := &checkReport{addr: addr, now: e.now(), trust: tr}
	up, err := openAddr(e, addr, "")
	if err != nil {
		r.state = "unreachable"
		r.raise(PluginCritical, "cannot open %s: %v", addr, err)
		return r
	}
	defer up.Close()
	if !r.readCounters(ctx, up) {
		return r
	}
	p, ok := up.(transport.Prober)
	if !ok {
		return r
	}
	r.readFiles(ctx, p)
	return r
}

// readCounters reads seq/end, seq/begin and current (one rsync run).
func (r *checkReport) readCounters(ctx context.Context, up transport.Upstream) bool {
	o := transport.Observe(ctx, up)
	r.end, r.begin, r.snapshot = o.End, o.Begin, o.Snapshot
	err := errors.Join(o.Unreachable, o.Corrupt)
	switch {
	case errors.Is(err, transport.ErrUnavailable), errors.Is(err, transport.ErrRefused):
		r.state = "unreachable"
		r.raise(PluginCritical, "%s unreachable: %v", r.addr, err)
	case o.Corrupt != nil:
		r.state, r.problem = export.StateTorn, err.Error()
		r.raise(PluginCritical, "torn: %v", err)
	case err != nil:
		r.state = "unreachable"
		r.raise(PluginCritical, "cannot read %s: %v", r.addr, err)
	case r.snapshot == 0:
		r.state = export.StateEmpty
		r.raise(PluginCritical, "serves no snapshot")
	case r.begin != r.end:
		r.state = export.StateUpdating
	default:
		r.state = export.StateFresh
	}
	return err == nil && r.snapshot != 0
}

// maxStatusJSON bounds the status.json check reads.
const maxStatusJSON = 1 << 20

var seqBeginName = export.SeqName + "/" + seqfile.Begin

// readFiles checks that current resolves to a complete snapshot, and reads
// when the update began, status.json and the poll record.
func (r *checkReport) readFiles(ctx context.Context, p transport.Prober) {
	dir := export.CurrentTarget(r.snapshot)
	man := transport.ManifestName(r.snapshot)
	infos, err := p.Stat(ctx, []string{dir, man, seqBeginName})
	if err != nil {
		r.raise(PluginCritical, "cannot read %s: %v", r.addr, err)
		return
	}
	if !infos[dir].Dir || !infos[man].Regular {
		r.state = export.StateTorn
		r.problem = fmt.Sprintf("current points to snapshot %d, which is not complete", r.snapshot)
		r.raise(PluginCritical, "torn: %s", r.problem)
		return
	}
	if fi, ok := infos[seqBeginName]; ok && r.state == export.StateUpdating {
		d := max(0, r.now.Sub(fi.ModTime))
		r.updating = &d
	}
	sigName := man + export.SignatureExt[len(export.ManifestExt):]
	filterName := transport.FilterName(r.snapshot)
	files, err := p.ReadSmall(ctx, []string{export.StatusName, export.SeqName + "/" + export.CheckedName, filterName, sigName, export.TimestampName}, maxStatusJSON)
	if err != nil {
		r.raise(PluginCritical, "cannot read %s: %v", r.addr, err)
		return
	}
	r.addRecords(files)
	if f, ok := files[filterName]; ok {
		r.addFilter(f.Data)
	}
	r.judgeSigned(files[sigName].Data, files[export.TimestampName].Data)
}

// addRecords takes last_error from status.json and the poll record from
// seq/checked, if they are there and valid.
func (r *checkReport) addRecords(files map[string]transport.SmallFile) {
	if f, ok := files[export.StatusName]; ok {
		var st export.Status
		if json.Unmarshal(f.Data, &st) == nil && st.LastError != "" {
			r.lastError, r.lastAt = clean(st.LastError), st.LastErrorAt
		}
		r.signature = clean(st.Signature)
		r.addLineage(f.Data)
	}
	if f, ok := files[export.SeqName+"/"+export.CheckedName]; ok {
		if p, err := export.ParsePoll(f.Data); err == nil {
			t := f.ModTime.UTC()
			r.checked, r.poll = &t, &p
		}
	}
}

// addLineage takes the lineage from status.json (data), if it is valid
// and about the snapshot ADDR serves.
func (r *checkReport) addLineage(data []byte) {
	hops, err := export.DecodeLineage(data)
	switch {
	case err != nil:
		r.linNote = err.Error()
	case len(hops) == 0:
	case hops[len(hops)-1].Snapshot != r.snapshot:
		r.linNote = fmt.Sprintf("status.json's lineage is about snapshot %d, not the served %d", hops[len(hops)-1].Snapshot, r.snapshot)
	default:
		r.lineage = hops
		var st struct {
			Note string `json:"lineage_note"`
		}
		if json.Unmarshal(data, &st) == nil {
			r.linNote = st.Note
		}
	}
	r.linNote = clean(r.linNote)
}

// fromPoll takes the lag from ADDR's own record of its last poll.
func (r *checkReport) fromPoll() {
	p := r.poll
	if p == nil || p.Snapshot != r.snapshot || p.UpstreamSnapshot <= r.snapshot {
		return
	}
	up := p.UpstreamSnapshot
	r.upSnap, r.behindAt = &up, *r.checked
	if p.BehindSince != nil {
		r.behindAt = *p.BehindSince
	}
}

// compare reads the upstream at addr and takes the lag from it.
func (r *checkReport) compare(ctx context.Context, e *env, addr string) {
	r.upAddr = addr
	up, err := openAddr(e, addr, "")
	if err != nil {
		r.raise(PluginUnknown, "cannot open upstream %s: %v", addr, err)
		return
	}
	defer up.Close()
	n, since, err := upstreamSince(ctx, up, r.snapshot)
	if err != nil {
		r.raise(PluginUnknown, "cannot read upstream %s: %v", addr, err)
		return
	}
	r.upSnap, r.behindAt = &n, since
}

// lag returns how far ADDR is behind, in snapshots and time.
func (r *checkReport) lag() (uint64, time.Duration) {
	if r.upSnap == nil || *r.upSnap <= r.snapshot {
		return 0, 0
	}
	var d time.Duration
	if !r.behindAt.IsZero() {
		d = max(0, r.now.Sub(r.behindAt))
	}
	return *r.upSnap - r.snapshot, d
}

// judge applies the thresholds to a root that serves a whole snapshot.
func (r *checkReport) judge(warn, crit thresholds) {
	if r.state != export.StateFresh && r.state != export.StateUpdating {
		return
	}
	if snaps, d := r.lag(); snaps > 0 {
		if r.state == export.StateFresh {
			r.state = export.StateStale
		}
		msg := fmt.Sprintf("behind by %s for %s", plural(snaps, "snapshot"), d.Truncate(time.Second))
		r.trip(warn.lagTripped(snaps, d), crit.lagTripped(snaps, d), msg)
	}
	if r.updating != nil {
		d := *r.updating
		r.trip(over(d, warn.updating), over(d, crit.updating), "updating for "+d.Truncate(time.Second).String())
	}
	if warn.checked > 0 || crit.checked > 0 {
		r.judgeChecked(warn, crit)
	}
}

func (r *checkReport) judgeChecked(warn, crit thresholds) {
	if r.checked == nil {
		r.trip(warn.checked > 0, crit.checked > 0, "no record of a poll of its upstream (seq/checked)")
		return
	}
	d := max(0, r.now.Sub(*r.checked))
	r.trip(over(d, warn.checked), over(d, crit.checked), "last checked its upstream "+d.Truncate(time.Second).String()+" ago")
}

func (r *checkReport) trip(w, c bool, msg string) {
	switch {
	case c:
		r.raise(PluginCritical, "%s", msg)
	case w:
		r.raise(PluginWarning, "%s", msg)
	}
}

func (t thresholds) lagTripped(snaps uint64, d time.Duration) bool {
	return t.snaps > 0 && snaps >= t.snaps || over(d, t.lag)
}

// over reports whether d reached the threshold t (0: off).
func over(d, t time.Duration) bool { return t > 0 && d >= t }

// line is the plugin output: status, text, perfdata.
func (r *checkReport) line(warn, crit thresholds) string {
	var b strings.Builder
	fmt.Fprintf(&b, "SEQMIRROR %s - ", pluginNames[r.code])
	if r.snapshot == 0 || r.state == export.StateTorn || r.state == "unreachable" {
		b.WriteString(clean(strings.Join(r.reasons, "; ")))
		return b.String()
	}
	snaps, d := r.lag()
	fmt.Fprintf(&b, "serves %d, %s, lag %d snapshots %ds", r.snapshot, r.state, snaps, int64(d.Seconds()))
	if r.partial != nil {
		b.WriteString(", partial")
	}
	if len(r.reasons) > 0 {
		b.WriteString(": " + clean(strings.Join(r.reasons, "; ")))
	}
	if r.code != PluginOK && r.lastError != "" {
		b.WriteString("; last run failed: " + r.lastError)
	}
	fmt.Fprintf(&b, " | snapshot=%d lag_snapshots=%s lag_seconds=%s", r.snapshot,
		perf(fmt.Sprint(snaps), "", warn.snaps, crit.snaps), perf(fmt.Sprint(int64(d.Seconds())), "s", secs(warn.lag), secs(crit.lag)))
	if r.updating != nil {
		b.WriteString(" updating_seconds=" + perf(fmt.Sprint(int64(r.updating.Seconds())), "s", secs(warn.updating), secs(crit.updating)))
	}
	if r.checked != nil {
		age := max(0, int64(r.now.Sub(*r.checked).Seconds()))
		b.WriteString(" checked_seconds=" + perf(fmt.Sprint(age), "s", secs(warn.checked), secs(crit.checked)))
	}
	return b.String()
}

// plural is "1 snapshot", "2 snapshots".
func plural(n uint64, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func secs(d time.Duration) uint64 { return uint64(d / time.Second) }

// perf formats one perfdata value with its thresholds (0: none).
func perf(v, uom string, warn, crit uint64) string {
	s := v + uom
	if warn == 0 && crit == 0 {
		return s
	}
	th := func(n uint64) string {
		if n == 0 {
			return ""
		}
		return fmt.Sprint(n)
	}
	return s + ";" + th(warn) + ";" + th(crit)
}

// clean makes text read from ADDR safe for one plugin line: no control
// characters, no '|' (which starts perfdata), at most 300 characters.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '|' {
			return ' '
		}
		return r
	}, s)
	if r := []rune(s); len(r) > 300 {
		s = string(r[:300]) + "…"
	}
	return s
}

// checkJSON is check --json's object.
type checkJSON struct {
	Status           string     `json:"status"`
	Code             int        `json:"code"`
	Address          string     `json:"address"`
	State            string     `json:"state"`
	Reasons          []string   `json:"reasons"`
	Snapshot         uint64     `json:"snapshot"`
	Begin            uint64     `json:"begin"`
	End              uint64     `json:"end"`
	Problem          string     `json:"problem,omitempty"`
	Against          string     `json:"against,omitempty"`
	UpstreamSnapshot *uint64    `json:"upstream_snapshot,omitempty"`
	LagSnapshots     uint64     `json:"lag_snapshots"`
	LagSeconds       float64    `json:"lag_seconds"`
	UpdatingSeconds  *float64   `json:"updating_seconds,omitempty"`
	Checked          *time.Time `json:"checked,omitempty"`
	LastError        string     `json:"last_error,omitempty"`
	LastErrorAt      *time.Time `json:"last_error_at,omitempty"`
	// Lineage is status.json's, with each hop's lag after the previous
	// one; LineageAgeSeconds is how long the last hop has served it.
	Lineage           []checkHop `json:"lineage,omitempty"`
	LineageAgeSeconds *float64   `json:"lineage_age_seconds,omitempty"`
	LineageNote       string     `json:"lineage_note,omitempty"`
	// Signature is ADDR's signature mode (signed, verified, unsigned),
	// TimestampExpires when its timestamp expires.
	Signature        string     `json:"signature,omitempty"`
	TimestampExpires *time.Time `json:"timestamp_expires,omitempty"`
	// Partial is the served snapshot's filter chain, if ADDR is a partial
	// mirror: its upstreams' filters, then its own.
	Partial *export.Partial `json:"partial,omitempty"`
}

func (r *checkReport) json() checkJSON {
	snaps, d := r.lag()
	j := checkJSON{Status: pluginNames[r.code], Code: r.code, Address: r.addr, State: r.state, Reasons: r.reasons,
		Snapshot: r.snapshot, Begin: r.begin, End: r.end, Problem: r.problem, Against: r.upAddr,
		UpstreamSnapshot: r.upSnap, LagSnapshots: snaps, LagSeconds: d.Seconds(), Checked: r.checked,
		LastError: r.lastError, LastErrorAt: r.lastAt}
	if j.Reasons == nil {
		j.Reasons = []string{}
	}
	if r.updating != nil {
		s := r.updating.Seconds()
		j.UpdatingSeconds = &s
	}
	j.Lineage, j.LineageAgeSeconds, j.LineageNote = r.hops(), r.lineageAge(), r.linNote
	j.Signature, j.TimestampExpires = r.signature, r.expires
	j.Partial = r.partial
	return j
}

// checkArgs lets `check ADDR --flag ...` (flags after the address, as
// monitoring command definitions write it) and `trigger URL --flag ...`
// parse: urfave/cli stops at the first argument, so the address moves to
// the end. Every flag of theirs takes a value except --json, --quiet and
// --help.
func checkArgs(args []string) []string {
	if len(args) < 3 || args[1] != "check" && args[1] != "trigger" {
		return args
	}
	for i := 2; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return args
		case !strings.HasPrefix(a, "-") || a == "-":
			out := append(append([]string{}, args[:i]...), args[i+1:]...)
			return append(out, a)
		case strings.Contains(a, "="), strings.TrimLeft(a, "-") == "json", strings.TrimLeft(a, "-") == "help", a == "-h",
			strings.TrimLeft(a, "-") == "quiet", a == "-q":
		default:
			i++ // the flag's value
		}
	}
	return args
}
