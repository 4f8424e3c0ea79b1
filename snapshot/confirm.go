package snapshot

import (
	"context"
	"io"

	"github.com/seqmirror/seqmirror/internal/fsys"
	"github.com/seqmirror/seqmirror/internal/retry"
	"github.com/seqmirror/seqmirror/internal/tree"
	"github.com/seqmirror/seqmirror/manifest"
)

// confirmer confirms an attempt's listing while the attempt builds.
//
// The listing must be confirmed: if every entry (directories included,
// whose mtimes move when entries come and go) stayed the same from the
// moment it was listed until the copy is done, each was unchanged over an
// interval containing the instant the listing ended, so the listing is the
// tree as it was at that instant. Linked files come from the served
// snapshot, never from the source, and each copied file is checked on its
// own after its copy (attempt.copy), so the snapshot is then exactly the
// source as of that instant.
//
// The inotify watch the walk set up confirms it for nothing (no event
// queued by the end of the copy); where it cannot vouch (changeWatch), a
// second listing started after the first ended does, beside the linking
// (it needs nothing from the copy). Either cancels the attempt at the
// first difference.
type confirmer struct {
	f        fsys.FS
	source   string
	watch    *changeWatch
	relisted chan error // the second listing's verdict; nil: the watch confirms
	cancel   context.CancelCauseFunc
	done     bool  // wait returned once
	err      error // its verdict
}

// confirm starts confirming the listing, beside the build: a.actx, the
// context the attempt builds with, is cancelled at the first change seen.
func (a *attempt) confirm() {
	if a.opt.AfterList != nil {
		a.opt.AfterList()
	}
	actx, cancel := context.WithCancelCause(a.ctx)
	a.actx, a.conf = actx, &confirmer{f: a.f, source: a.source, watch: a.watch, cancel: cancel}
	if a.watch.ok() {
		a.watch.notify(cancel)
		return
	}
	a.opt.Log.Debug("confirming the listing by listing the source again", "why", a.watch.why())
	relisted := make(chan error, 1)
	a.conf.relisted = relisted
	go func() {
		err := confirmListing(actx, a.f, a.source, a.skip, a.spool.open())
		if err != nil {
			cancel(err)
		}
		relisted <- err
	}()
}

// wait returns the verdict: nil if the listing is confirmed, a retry.Error
// if the source changed, another error if it could not be confirmed. It
// waits for the second listing, if any, and stops the watch's
// notification; a second call returns the same verdict.
func (c *confirmer) wait() error {
	if c.done {
		return c.err
	}
	c.done = true
	if c.relisted != nil {
		c.err = <-c.relisted
	} else {
		c.err = c.watch.check(c.f, c.source)
	}
	return c.err
}

// explain ends the confirmation and returns the attempt's error err, or,
// if the source changed, the change, which explains any failure it caused
// (a copy that found its file gone, a build it cancelled).
func (c *confirmer) explain(err error) error {
	c.cancel(context.Canceled)
	cerr := c.wait()
	if _, changed := retry.Reason(cerr); err != nil && changed {
		return cerr
	}
	return err
}

// confirmListing lists source again, streaming, and reports a retry.Error
// if it differs in anything the snapshot records from the listing the
// records of listed yield (the spooled first listing), also streamed.
func confirmListing(ctx context.Context, f fsys.FS, source string, skip func(string) bool, listed manifest.Iterator) error {
	l, err := tree.NewLister(ctx, f, source, tree.WalkOptions{Skip: skip})
	if err != nil {
		return retry.Again(err.Error())
	}
	defer l.Close()
	for {
		a, aerr := l.Next()
		e, eerr := listed.Next()
		switch {
		case aerr != nil && aerr != io.EOF:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return retry.Again(aerr.Error())
		case eerr != nil && eerr != io.EOF:
			return eerr
		case aerr == io.EOF && eerr == io.EOF:
			return nil
		case aerr == io.EOF || eerr == io.EOF:
			return retry.Again("files were added or removed while copying")
		case a.Path != e.Path:
			return retry.Again("files were added or removed while copying")
		case a.Type != e.Type || a.Mode != e.Mode || a.Size != e.Size || a.MTime != e.MTime || a.Target != e.Target:
			return retry.Again(a.Path + " changed while copying")
		}
	}
}
