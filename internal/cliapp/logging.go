package cliapp

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"syscall"

	"github.com/urfave/cli/v2"
)

// JournalEnv is the variable systemd sets for a service whose stderr (or
// stdout) is a stream to the journal: "DEVICE:INODE" of that stream
// (systemd.exec(5), $JOURNAL_STREAM).
const JournalEnv = "JOURNAL_STREAM"

// newLogger is the one place a command's logger is made: log lines on
// stderr (c's app's ErrWriter) as --log-format says, errors only with
// --quiet, debug with --verbose; without a time when stderr is the
// journal, which stamps every line itself.
func newLogger(c *cli.Context) *slog.Logger {
	w := c.App.ErrWriter
	level := slog.LevelInfo
	if c.Bool("quiet") {
		level = slog.LevelError
	} else if c.Bool("verbose") {
		level = slog.LevelDebug
	}
	opt := &slog.HandlerOptions{Level: level}
	if toJournal(w, os.Getenv(JournalEnv)) {
		opt.ReplaceAttr = dropTime
	}
	if c.String("log-format") == "json" {
		return slog.New(slog.NewJSONHandler(w, opt))
	}
	return slog.New(slog.NewTextHandler(w, opt))
}

// toJournal reports whether w is the journal stream journalStream (the
// value of $JOURNAL_STREAM) names: a file, with that device and inode.
// Checking the inode, not only the variable's presence, keeps the time in
// the lines of a command that a service runs with stderr redirected to a
// file (the variable is inherited).
func toJournal(w io.Writer, journalStream string) bool {
	f, ok := w.(*os.File)
	if !ok || journalStream == "" {
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && journalStream == fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

// dropTime is a slog ReplaceAttr that leaves out the record's time.
func dropTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}
