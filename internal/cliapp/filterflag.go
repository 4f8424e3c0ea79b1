package cliapp

import (
	"flag"
	"fmt"
	"slices"

	"github.com/seqmirror/seqmirror/internal/config"
	"github.com/seqmirror/seqmirror/internal/filter"
	"github.com/urfave/cli/v2"
)

// The two flags of a partial mirror's filter. They fill one rule list, in
// the order given on the command line (or, from the configuration file,
// in the order of its lines), because the first rule that matches decides.
var (
	mirrorIncludeFlag = &ruleFlag{name: "include", include: true, usage: "partial mirror: keep paths matching `PATTERN` (repeatable, with --exclude: the first pattern that matches decides, in the order given; rsync-like: a leading / anchors at the snapshot's top, a trailing / matches directories only, * ? [...] within a name, ** across names; a directory left out takes its contents; docs/operating.md section 18)"}
	mirrorExcludeFlag = &ruleFlag{name: "exclude", usage: "partial mirror: leave out paths matching `PATTERN` (repeatable; see --include)"}
)

// filterKeys are the flags of the filter, as configuration keys.
var filterKeys = []string{mirrorIncludeFlag.name, mirrorExcludeFlag.name}

// ruleFlag is --include or --exclude: each value is one rule appended to
// the rule list the two flags share on one flag set (ruleList). Its Apply
// makes a new value for each flag set, so that apps and their runs share
// nothing.
type ruleFlag struct {
	name, usage string
	include     bool
}

// ruleList is the rule list of one flag set, in canonical form ("+ P",
// "- P"), checked as each rule is set.
type ruleList struct{ rules []string }

// ruleValue is one of the two flags' flag.Value on one flag set.
type ruleValue struct {
	include bool
	list    *ruleList
}

func (v *ruleValue) String() string {
	if v == nil || v.list == nil {
		return ""
	}
	return fmt.Sprint(v.list.rules)
}

func (v *ruleValue) Set(s string) error {
	r, err := filter.Exclude(s)
	if v.include {
		r, err = filter.Include(s)
	}
	if err != nil {
		return err
	}
	v.list.rules = append(v.list.rules, r.String())
	return nil
}

// Get returns the shared list (cli.Context.Value).
func (v *ruleValue) Get() any { return v.list }

// Apply implements cli.Flag: the value shares the list of the other
// filter flag if it is on set already.
func (f *ruleFlag) Apply(set *flag.FlagSet) error {
	list := &ruleList{}
	for _, other := range filterKeys {
		if fl := set.Lookup(other); fl != nil {
			if v, ok := fl.Value.(*ruleValue); ok {
				list = v.list
			}
		}
	}
	set.Var(&ruleValue{include: f.include, list: list}, f.name, f.usage)
	return nil
}

func (f *ruleFlag) String() string          { return cli.FlagStringer(f) }
func (f *ruleFlag) Names() []string         { return []string{f.name} }
func (f *ruleFlag) IsSet() bool             { return false }
func (f *ruleFlag) TakesValue() bool        { return true }
func (f *ruleFlag) GetUsage() string        { return f.usage }
func (f *ruleFlag) GetValue() string        { return "" }
func (f *ruleFlag) GetDefaultText() string  { return "" }
func (f *ruleFlag) GetEnvVars() []string    { return nil }
func (f *ruleFlag) IsSliceFlag() bool       { return true }
func (f *ruleFlag) IsVisible() bool         { return true }
func (f *ruleFlag) GetCategory() string     { return "" }
func (f *ruleFlag) IsDefaultVisible() bool  { return false }
func (f *ruleFlag) GetDefaultValue() string { return "" }

// rules is the rule list c's flags (and configuration file) gave, nil if
// c's command has no filter flags.
func rules(c *cli.Context) *ruleList {
	l, _ := c.Value(mirrorIncludeFlag.name).(*ruleList)
	return l
}

// ownFilter is the filter of c's --include and --exclude (nil: none).
func ownFilter(c *cli.Context) (*filter.Filter, error) {
	l := rules(c)
	if l == nil || len(l.rules) == 0 {
		return nil, nil
	}
	f, err := filter.Parse(l.rules)
	if err != nil {
		return nil, Usage("--include/--exclude: %v", err)
	}
	return f, nil
}

// setFilterFromConfig sets the rule list of c from the configuration
// file's include and exclude lines, in line order (values: each key's
// lines), unless the command line gave either flag. It reports whether
// it handled key, so that the caller skips it.
func setFilterFromConfig(c *cli.Context, values map[string][]config.Entry, fromCommandLine map[string]bool, reload bool) error {
	l := rules(c)
	if l == nil || fromCommandLine[mirrorIncludeFlag.name] || fromCommandLine[mirrorExcludeFlag.name] {
		return nil
	}
	var lines []config.Entry
	for _, k := range filterKeys {
		lines = append(lines, values[k]...)
	}
	if len(lines) == 0 && !reload {
		return nil
	}
	slices.SortFunc(lines, func(a, b config.Entry) int { return a.Line - b.Line })
	l.rules = nil
	for _, e := range lines {
		if err := c.Set(e.Key, e.Value); err != nil {
			return fmt.Errorf("%s: %w", e.Key, err)
		}
	}
	return nil
}
