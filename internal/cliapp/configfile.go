package cliapp

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/seqmirror/seqmirror/internal/config"
	"github.com/seqmirror/seqmirror/internal/transport/rsync"
	"github.com/seqmirror/seqmirror/internal/transport/web"
	"github.com/urfave/cli/v2"
)

// ConfigEnv names the configuration file when --config is not given.
const ConfigEnv = "SEQMIRROR_CONFIG"

// Flags of every command of both tools (withCommonFlags).
var (
	configFlag = &cli.StringFlag{Name: "config", DefaultText: "$" + ConfigEnv + ", else none",
		Usage: "take flags not given on the command line from the configuration `FILE`: `key = value` lines, the keys long flag names, a list flag's key repeated, relative paths relative to FILE's directory (docs/operating.md, Configuration file)"}
	logFormatFlag = &cli.StringFlag{Name: "log-format", Value: "text",
		Usage: "write log lines on stderr as `FORMAT`: text (key=value) or json (one object a line, for log collectors); under systemd, without a time of their own (the journal has it)"}
)

// reservedKeys are flags a configuration file cannot set.
var reservedKeys = []string{"config", "help", "version"}

// withCommonFlags gives app and each of its commands, at every depth,
// --config and --log-format, and beforeCommand as their first Before step.
// It copies the commands it changes (some are package variables).
func withCommonFlags(app *cli.App) *cli.App {
	app.Flags = append(slices.Clip(app.Flags), configFlag, logFormatFlag)
	app.Before = chainBefore(app.Before)
	app.Commands = commonCommands(app.Commands)
	return app
}

func commonCommands(cmds []*cli.Command) []*cli.Command {
	out := make([]*cli.Command, len(cmds))
	for i, c := range cmds {
		cc := *c
		cc.Flags = append(slices.Clip(cc.Flags), configFlag, logFormatFlag)
		cc.Before = chainBefore(cc.Before)
		cc.Subcommands = commonCommands(cc.Subcommands)
		out[i] = &cc
	}
	return out
}

// chainBefore runs beforeCommand, then next (if any).
func chainBefore(next cli.BeforeFunc) cli.BeforeFunc {
	return func(c *cli.Context) error {
		if err := beforeCommand(c); err != nil {
			if c.Command != nil && c.Command.OnUsageError != nil && ExitCode(err) == ExitUsage {
				return c.Command.OnUsageError(c, err, true) // check's: UNKNOWN, exit 3
			}
			return err
		}
		if next != nil {
			return next(c)
		}
		return nil
	}
}

// beforeCommand is what every command does before its action: take the
// flags the command line did not give from the configuration file, then
// check --log-format. A command about to hand over to a subcommand (the
// tool's, for `mirror-sync check`) leaves both to the subcommand.
func beforeCommand(c *cli.Context) error {
	if c.Command != nil && c.Args().Present() && c.Command.Command(c.Args().First()) != nil {
		return nil
	}
	if err := applyConfig(c); err != nil {
		return err
	}
	if f := c.String("log-format"); f != "text" && f != "json" {
		return Usage("--log-format is text or json, got %q", f)
	}
	return nil
}

// configPath is the configuration file of c: --config given to it or to a
// command it is a subcommand of, else $SEQMIRROR_CONFIG, else "".
func configPath(c *cli.Context) string {
	for _, x := range c.Lineage() {
		if x.Command != nil && setFlags(x)["config"] {
			return x.String("config")
		}
	}
	return os.Getenv(ConfigEnv)
}

// applyConfig sets each flag of c's command that the command line did not
// set from the configuration file's lines of that key: a list flag gets
// every value, in file order, one a line (no splitting at commas). A key
// that is a flag of another command of the tool is ignored (one file
// serves the daemon, cron runs and hooks); a key that is no flag of the
// tool, a repeated key of a flag that is no list, or a bad value is a
// usage error naming the file and line, and then no flag is changed. A
// relative path (a flag whose value is a DIR, FILE or PATH, or an ADDR that
// is a local directory) is taken relative to the file's directory.
func applyConfig(c *cli.Context) error { return loadConfig(c, false) }

// reloadConfig reads c's configuration file again, for a daemon's SIGHUP:
// as applyConfig, and a flag the file no longer sets goes back to its
// default. Flags given on the command line keep their values. On an error
// nothing is changed. Not safe concurrently with reads of c's flags: read
// them again after it returns, in the goroutine that called it; a list read
// before (c.StringSlice) may be overwritten in place, so keep a copy
// (slices.Clone) of any list kept across a reload.
func reloadConfig(c *cli.Context) error { return loadConfig(c, true) }

func loadConfig(c *cli.Context, reload bool) error {
	fromCommandLine := commandLineFlags(c) // before the first Set
	path := configPath(c)
	if path == "" && !reload {
		return nil
	}
	values := map[string][]config.Entry{}
	if path != "" {
		var err error
		if values, err = configValues(c, path); err != nil {
			return err
		}
	}
	if err := setFilterFromConfig(c, values, fromCommandLine, reload); err != nil {
		return configUsage(path, 0, err) // checked by configValues
	}
	for _, f := range c.Command.Flags {
		name := f.Names()[0]
		vals, inFile := values[name]
		_, isRule := f.(*ruleFlag) // a partial mirror's rules: setFilterFromConfig's (publish's --exclude is not one)
		if fromCommandLine[name] || slices.Contains(reservedKeys, name) || isRule || !inFile && !reload {
			continue
		}
		if err := setFlag(c, f, vals); err != nil {
			return configUsage(path, 0, fmt.Errorf("%s: %w", name, err)) // checked by configValues
		}
	}
	return nil
}

// commandLineKey is where an app keeps, for each of its commands, the
// flags its command line set (cli.App.Metadata): a reload must know them
// after the file's values are set too.
const commandLineKey = "seqmirror/cliapp.commandLine"

// commandLineFlags is the set of the flags of c's command that its command
// line set, recorded at the first call for c's command.
func commandLineFlags(c *cli.Context) map[string]bool {
	if c.App.Metadata == nil {
		c.App.Metadata = map[string]any{}
	}
	all, _ := c.App.Metadata[commandLineKey].(map[*cli.Command]map[string]bool)
	if all == nil {
		all = map[*cli.Command]map[string]bool{}
		c.App.Metadata[commandLineKey] = all
	}
	if set, ok := all[c.Command]; ok {
		return set
	}
	set := setFlags(c)
	all[c.Command] = set
	return set
}

// setFlags is the set of the flags of c's command (by first name) that
// were set, on the command line or from the environment. It reads c's
// flag set once: cli.Context.IsSet looks its flag up by a linear search
// that runs a regexp over every flag's names, so asking it for each flag
// cost a quarter of a millisecond of every run.
func setFlags(c *cli.Context) map[string]bool {
	given := map[string]bool{}
	for _, n := range c.LocalFlagNames() {
		given[n] = true
	}
	set := map[string]bool{}
	for _, f := range c.Command.Flags {
		for _, n := range f.Names() {
			if given[n] {
				set[f.Names()[0]] = true
			}
		}
	}
	return set
}

// configValues reads the file at path and returns the lines of each flag
// of c's command, their values made what the flag takes (configValue),
// after checking every line: keys, repeats, and that each value parses.
func configValues(c *cli.Context, path string) (map[string][]config.Entry, error) {
	entries, err := readConfig(path)
	if err != nil {
		return nil, err
	}
	known := toolFlags(c.App)
	own := map[string]cli.Flag{}
	for _, f := range c.Command.Flags {
		own[f.Names()[0]] = f
	}
	values := map[string][]config.Entry{}
	for _, e := range entries {
		if err := checkKey(c.App.Name, e, known); err != nil {
			return nil, configUsage(path, e.Line, err)
		}
		f, ok := own[e.Key]
		if !ok {
			continue // another command's
		}
		if prev := values[e.Key]; len(prev) > 0 && !isList(f) {
			return nil, configUsage(path, e.Line, fmt.Errorf("%s is given again (first on line %d), and only list flags repeat", e.Key, prev[0].Line))
		}
		e.Value = configValue(path, f, e.Value)
		if err := checkValue(f, e.Value); err != nil {
			return nil, configUsage(path, e.Line, fmt.Errorf("%s = %s: not a valid value for --%s%s (%w)", e.Key, e.Value, e.Key, valueKind(f), err))
		}
		values[e.Key] = append(values[e.Key], e)
	}
	return values, nil
}

// checkValue reports whether f takes v, on a flag set of its own.
func checkValue(f cli.Flag, v string) error {
	scratch := flag.NewFlagSet("config", flag.ContinueOnError)
	scratch.SetOutput(io.Discard)
	if err := f.Apply(scratch); err != nil {
		return err
	}
	return scratch.Set(f.Names()[0], v)
}

// setFlag sets f in c to the values of entries: a list to all of them (a
// string list replaced as a whole), any other flag to its one value; no
// entries: back to f's default.
func setFlag(c *cli.Context, f cli.Flag, entries []config.Entry) error {
	name := f.Names()[0]
	vals := make([]string, len(entries))
	for i, e := range entries {
		vals[i] = e.Value
	}
	if sf, ok := f.(*cli.StringSliceFlag); ok {
		if len(entries) == 0 && sf.Value != nil {
			vals = sf.Value.Value()
		}
		return c.Set(name, cli.NewStringSlice(vals...).Serialize()) // replaces, splits nothing
	}
	if len(entries) == 0 {
		return c.Set(name, defaultValue(f))
	}
	for _, v := range vals { // a list of another type gets each; others have one
		if err := c.Set(name, v); err != nil {
			return err
		}
	}
	return nil
}

// defaultValue is f's default as its flag parses it.
func defaultValue(f cli.Flag) string {
	switch f := f.(type) {
	case *cli.BoolFlag:
		return strconv.FormatBool(f.Value)
	case cli.DocGenerationFlag:
		return f.GetValue()
	}
	return ""
}

// readConfig reads and parses the file at path.
func readConfig(path string) ([]config.Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, usageError{&configFileError{path: path, err: err}}
	}
	defer f.Close()
	entries, err := config.Parse(f)
	if err != nil {
		return nil, usageError{&configFileError{path: path, err: err}}
	}
	return entries, nil
}

// checkKey refuses a key that no command of tool has as a flag, and the
// reserved ones.
func checkKey(tool string, e config.Entry, known map[string]bool) error {
	if slices.Contains(reservedKeys, e.Key) {
		return fmt.Errorf("%s cannot be set in a configuration file", e.Key)
	}
	if !known[e.Key] {
		return &unknownKeyError{tool: tool, key: e.Key, suggest: closest(e.Key, known)}
	}
	return nil
}

// configUsage is a usage error about line of the file at path.
func configUsage(path string, line int, err error) error {
	return usageError{&configFileError{path: path, line: line, err: err}}
}

// configFileError is an error about a configuration file (line 0: the
// whole file, or a line named by err itself).
type configFileError struct {
	path string
	line int
	err  error
}

func (e *configFileError) Error() string {
	if e.line > 0 {
		return fmt.Sprintf("configuration file %s: line %d: %v", e.path, e.line, e.err)
	}
	return fmt.Sprintf("configuration file %s: %v", e.path, e.err)
}

func (e *configFileError) Unwrap() error { return e.err }

// unknownKeyError is a key that is no flag of the tool.
type unknownKeyError struct {
	tool, key string
	suggest   string // the closest flag name, or ""
}

func (e *unknownKeyError) Error() string {
	return fmt.Sprintf("unknown key %q: no command of %s has a flag --%s", e.key, e.tool, e.key)
}

// configHint is hint for the errors of configuration files.
func configHint(err error) string {
	var cf *configFileError
	if !errors.As(err, &cf) {
		return ""
	}
	var uk *unknownKeyError
	switch {
	case errors.As(err, &uk) && uk.suggest != "":
		return fmt.Sprintf("did you mean %s? The keys are the long flag names of %s and its commands (%s --help, %s COMMAND --help)", uk.suggest, uk.tool, uk.tool, uk.tool)
	case errors.As(err, &uk):
		return fmt.Sprintf("the keys are the long flag names of %s and its commands (%s --help, %s COMMAND --help), without the dashes", uk.tool, uk.tool, uk.tool)
	case errors.Is(err, fs.ErrNotExist):
		return "--config (or $" + ConfigEnv + ") names a file that does not exist; give its absolute path"
	case errors.Is(err, config.ErrSyntax):
		return "one setting a line, `key = value`; `#` starts a comment; quote a value with \"...\" to keep blanks or a ` #` (docs/operating.md, Configuration file)"
	}
	return ""
}

// toolFlags is the set of the long flag names of app and its commands, at
// every depth.
func toolFlags(app *cli.App) map[string]bool {
	known := map[string]bool{}
	add := func(flags []cli.Flag) {
		for _, f := range flags {
			known[f.Names()[0]] = true
		}
	}
	add(app.Flags)
	var walk func([]*cli.Command)
	walk = func(cmds []*cli.Command) {
		for _, c := range cmds {
			add(c.Flags)
			walk(c.Subcommands)
		}
	}
	walk(app.Commands)
	return known
}

// valueKind says what f takes, for an error: ", which takes ...", or "".
func valueKind(f cli.Flag) string {
	switch f.(type) {
	case *cli.BoolFlag:
		return ", which takes true or false"
	case *cli.IntFlag, *cli.Int64Flag, *cli.UintFlag, *cli.Uint64Flag:
		return ", which takes a whole number"
	case *cli.Float64Flag:
		return ", which takes a number"
	case *cli.DurationFlag:
		return ", which takes a duration such as 90s, 30m or 12h"
	}
	return ""
}

// isList reports whether f may be given more than once.
func isList(f cli.Flag) bool {
	s, ok := f.(cli.DocGenerationSliceFlag)
	return ok && s.IsSliceFlag()
}

// configValue is v as f takes it: a relative path made relative to the
// directory of the configuration file at path. A flag names a path when
// its usage's placeholder (`DIR` in --help's "--root DIR") is DIR, FILE or
// PATH, or is ADDR and v is a local directory rather than an rsync or
// http(s) address (or a host:port).
func configValue(path string, f cli.Flag, v string) string {
	if v == "" || filepath.IsAbs(v) {
		return v
	}
	switch placeholder(f) {
	case "DIR", "FILE", "PATH":
	case "ADDR":
		if web.IsAddress(v) || rsync.IsAddress(v) {
			return v
		}
	default:
		return v
	}
	return filepath.Join(filepath.Dir(path), v)
}

// placeholder is the `NAME` in f's usage, or "".
func placeholder(f cli.Flag) string {
	d, ok := f.(cli.DocGenerationFlag)
	if !ok {
		return ""
	}
	_, rest, ok := strings.Cut(d.GetUsage(), "`")
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, "`")
	return name
}

// closest is the name in known nearest to key (at most a third of its
// letters differ), or "".
func closest(key string, known map[string]bool) string {
	best, bestD := "", len(key)/3+1
	for k := range known {
		if slices.Contains(reservedKeys, k) {
			continue
		}
		if d := editDistance(key, k); d < bestD || d == bestD && best != "" && k < best {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
