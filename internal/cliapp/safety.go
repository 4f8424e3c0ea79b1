package cliapp

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/snapshot"
	"github.com/urfave/cli/v2"
)

// Flags of publish's safety rails.
var (
	publishMaxDeleteFlag = &cli.Float64Flag{Name: "max-delete", Value: 50, Usage: "refuse (exit 6) a snapshot that leaves out more than `PCT` percent of the served snapshot's files (100: no limit; --force overrides)"}
	excludeFlag          = &cli.StringSliceFlag{Name: "exclude", Usage: "leave paths matching `PATTERN` out of the snapshot (repeatable; rsync-like: a leading / anchors at the source root, a trailing / matches directories only, * ? [...] within a name, ** across names; docs/operating.md)"}
	takeOverFlag         = &cli.BoolFlag{Name: "take-over", Usage: "publish into a root that mirror-sync writes, making it a master's root (refused otherwise, exit 6)"}
)

// ageHelp says what --min-age accepts.
const ageHelp = "give a number and a unit, e.g. 30m, 12h, 7d or 1d12h (units: s, m, h, d = 24h)"

// parseAge parses a --min-age value: a Go duration ("90m", "1h30m"),
// optionally led by a number of days ("7d", "1d12h", "1.5d").
func parseAge(s string) (time.Duration, bool) {
	days, rest := 0.0, s
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		n, err := strconv.ParseFloat(s[:i], 64)
		if err != nil || math.IsNaN(n) || math.IsInf(n, 0) || math.Abs(n) > 1e5 || s[:i] == "" {
			return 0, false
		}
		days, rest = n, s[i+1:]
		if rest == "" {
			return time.Duration(days * 24 * float64(time.Hour)), true
		}
		if strings.HasPrefix(rest, "-") || strings.HasPrefix(rest, "+") {
			return 0, false
		}
	}
	d, err := time.ParseDuration(rest)
	if err != nil {
		return 0, false
	}
	if days < 0 {
		d = -d
	}
	return time.Duration(days*24*float64(time.Hour)) + d, true
}

// minAge reads --min-age.
func minAge(c *cli.Context) (time.Duration, error) {
	s := c.String("min-age")
	d, ok := parseAge(s)
	if !ok {
		return 0, Usage("--min-age %q is not a duration: %s", s, ageHelp)
	}
	if d < 0 {
		return 0, Usage("--min-age must not be negative, got %s", d)
	}
	return d, nil
}

// publishSafety reads publish's --max-delete and --exclude into opt.
func publishSafety(c *cli.Context, opt *snapshot.PublishOptions) error {
	md := c.Float64("max-delete")
	if !(md >= 0 && md <= 100) { // also refuses NaN
		return Usage("--max-delete is a percentage from 0 to 100, got %g", md)
	}
	opt.MaxDelete = md / 100 // 0: any delete is refused
	x, err := snapshot.ParseExcludes(c.StringSlice("exclude"))
	if err != nil {
		return Usage("--exclude: %v", err)
	}
	opt.Exclude, opt.TakeOver = x, c.Bool("take-over")
	return nil
}

// filterOpts are rsync options that would change which files a run copies:
// a snapshot holds exactly what its manifest lists, so they are refused in
// --rsync-opt (a run they take files from fails its checks, confusingly).
var filterOpts = []string{"--exclude", "--include", "--filter", "--files-from", "--cvs-exclude", "-f", "-F", "-C"}

// checkRsyncOpts refuses filter options in --rsync-opt.
func checkRsyncOpts(opts []string) error {
	for _, o := range opts {
		name, _, _ := strings.Cut(o, "=")
		for _, f := range filterOpts {
			short := len(f) == 2 && strings.HasPrefix(o, f)
			if name == f || short || (strings.HasPrefix(f, "--") && strings.HasPrefix(name, f)) {
				return Usage("--rsync-opt %s: rsync filter options are not allowed: a snapshot holds exactly what its manifest lists (leave paths out on the master, with publish --exclude)", o)
			}
		}
	}
	return nil
}

// rsyncPort returns the port a --rsync-opt=--port=N names, or 0.
func rsyncPort(opts []string) int {
	port := 0
	for _, o := range opts {
		if v, ok := strings.CutPrefix(o, "--port="); ok {
			if n, err := strconv.Atoi(v); err == nil && n > 0 && n < 65536 {
				port = n
			}
		}
	}
	return port
}

// lagText describes how a mirror compares with its upstream, for status.
func lagText(s export.Status) string {
	switch {
	case s.Snapshot > *s.UpstreamSnapshot:
		return fmt.Sprintf("this mirror is ahead by %s: the upstream is behind", plural(s.Snapshot-*s.UpstreamSnapshot, "snapshot"))
	}
	return fmt.Sprintf("behind by %s, %.0fs", plural(*s.LagSnapshots, "snapshot"), *s.LagSeconds)
}
