package export_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/manifest"
	"github.com/seqmirror/seqmirror/seqfile"
)

func updateOpts() export.UpdateOptions { return export.UpdateOptions{Keep: 3} }

// counters returns seq/begin and seq/end of r.
func counters(tb testing.TB, r *export.Root) seqfile.Pair {
	tb.Helper()
	p, err := seqfile.Counters(r.FS, r.SeqDir())
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// recordedError returns status.json's last_error ("" if none or no file).
func recordedError(tb testing.TB, r *export.Root) string {
	tb.Helper()
	b, err := os.ReadFile(r.Path(export.StatusName))
	if err != nil {
		return ""
	}
	var st export.Status
	if err := json.Unmarshal(b, &st); err != nil {
		tb.Fatal(err)
	}
	return st.LastError
}

// build makes snapshot n of u in its work dir: one file, and the manifest
// as Install's Encode writes it.
func build(tb testing.TB, u *export.Update, n uint64) export.Built {
	tb.Helper()
	work, err := u.Work(n)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "f"), []byte("x"), 0o644); err != nil {
		tb.Fatal(err)
	}
	m := &manifest.Manifest{Snapshot: n}
	return export.Built{N: n, Tree: work, Manifest: work + export.ManifestExt, Encode: func(w io.Writer) error { return m.Encode(w) }}
}

func TestUpdateLifecycle(t *testing.T) {
	errRun := errors.New("the run failed")
	errRefused := errors.New("refused")
	tests := []struct {
		name       string
		check      error // UpdateOptions.Check's result
		run        func(t *testing.T, u *export.Update) error
		wantErr    error
		wantServed uint64
		wantSeq    seqfile.Pair
		wantStatus string // recorded last_error
	}{
		{name: "install", run: func(t *testing.T, u *export.Update) error {
			return u.Install(context.Background(), build(t, u, 2))
		}, wantServed: 2, wantSeq: seqfile.Pair{Begin: 2, End: 2}},
		{name: "nothing new writes nothing", run: func(t *testing.T, u *export.Update) error { return nil },
			wantServed: 1, wantSeq: seqfile.Pair{Begin: 1, End: 1}},
		{name: "started then nothing new settles", run: func(t *testing.T, u *export.Update) error {
			_, err := u.Work(2)
			return err
		}, wantServed: 1, wantSeq: seqfile.Pair{Begin: 2, End: 2}},
		{name: "failure is recorded and begin stays above end", run: func(t *testing.T, u *export.Update) error {
			if _, err := u.Work(2); err != nil {
				t.Fatal(err)
			}
			return errRun
		}, wantErr: errRun, wantServed: 1, wantSeq: seqfile.Pair{Begin: 2, End: 1}, wantStatus: errRun.Error()},
		{name: "refusal is not recorded", check: errRefused, wantErr: errRefused, wantServed: 1, wantSeq: seqfile.Pair{Begin: 1, End: 1}},
		{name: "stopped before install installs nothing", run: func(t *testing.T, u *export.Update) error {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return u.Install(ctx, build(t, u, 2))
		}, wantErr: context.Canceled, wantServed: 1, wantSeq: seqfile.Pair{Begin: 2, End: 1}, wantStatus: "stopped before the commit: context canceled"},
		{name: "flip to a complete snapshot", run: func(t *testing.T, u *export.Update) error {
			addSnapshot(t, u.Root(), 5, time.Time{})
			if err := u.Start(); err != nil {
				t.Fatal(err)
			}
			return u.Install(context.Background(), export.Built{N: 5})
		}, wantServed: 5, wantSeq: seqfile.Pair{Begin: 2, End: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRoot(t)
			addSnapshot(t, r, 1, time.Time{})
			flip(t, r, 1)
			setSeq(t, r, 1, 1)
			opt := updateOpts()
			if tt.check != nil {
				opt.Check = func() error { return tt.check }
			}
			u, err := r.Begin(context.Background(), opt)
			if err == nil {
				if u.Served() != 1 {
					t.Errorf("Served = %d, want 1", u.Served())
				}
				_, err = u.Done(tt.run(t, u))
			}
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if cur, _ := r.Current(); cur != tt.wantServed {
				t.Errorf("current = %d, want %d", cur, tt.wantServed)
			}
			if got := counters(t, r); got != tt.wantSeq {
				t.Errorf("seq = %+v, want %+v", got, tt.wantSeq)
			}
			if got := recordedError(t, r); got != tt.wantStatus {
				t.Errorf("status.json last_error = %q, want %q", got, tt.wantStatus)
			}
			if tt.wantErr == nil && tt.wantServed > 1 && (!r.Complete(tt.wantServed) || !exists(r.ManifestPath(tt.wantServed))) {
				t.Errorf("snapshot %d not complete", tt.wantServed)
			}
			// Done released the lock, whatever happened.
			l, err := r.Lock()
			if err != nil {
				t.Fatalf("lock after Done: %v", err)
			}
			l.Unlock()
		})
	}
}

// A killed run's leftovers are removed by Begin; a counter pair left at
// begin > end by a run killed after its flip is completed by Done.
func TestUpdateRepairsKilledRun(t *testing.T) {
	r := newRoot(t)
	addSnapshot(t, r, 1, time.Time{})
	flip(t, r, 1)
	setSeq(t, r, 2, 1)
	junk := filepath.Join(r.WorkDir(), "2")
	if err := os.MkdirAll(junk, 0o755); err != nil {
		t.Fatal(err)
	}
	u, err := r.Begin(context.Background(), updateOpts())
	if err != nil {
		t.Fatal(err)
	}
	if exists(junk) {
		t.Errorf("Begin left %s", junk)
	}
	if _, err := u.Done(nil); err != nil {
		t.Fatal(err)
	}
	if got := counters(t, r); got != (seqfile.Pair{Begin: 2, End: 2}) {
		t.Errorf("seq = %+v, want 2/2", got)
	}
}

// OnDone's writes run after a successful completion, and a failing one is
// recorded as the run's failure; after a failed run they do not run.
func TestUpdateOnDone(t *testing.T) {
	errWrite := errors.New("record failed")
	for _, tt := range []struct {
		name    string
		runErr  error
		hook    error
		wantRan bool
		wantErr error
	}{
		{name: "success", wantRan: true},
		{name: "failed run", runErr: io.ErrUnexpectedEOF, wantErr: io.ErrUnexpectedEOF},
		{name: "failed write", hook: errWrite, wantRan: true, wantErr: errWrite},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRoot(t)
			u, err := r.Begin(context.Background(), updateOpts())
			if err != nil {
				t.Fatal(err)
			}
			ran := false
			u.OnDone(func() error { ran = true; return tt.hook })
			if _, err := u.Done(tt.runErr); !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("Done = %v, want %v", err, tt.wantErr)
			}
			if ran != tt.wantRan {
				t.Errorf("OnDone ran = %v, want %v", ran, tt.wantRan)
			}
			if tt.wantErr != nil && recordedError(t, r) == "" {
				t.Errorf("failure not recorded")
			}
		})
	}
}

// Done after an Install completes that install (end = the begin it set),
// not an interrupted run's.
func TestUpdateDoneAfterInstall(t *testing.T) {
	r := newRoot(t)
	var logs strings.Builder
	opt := updateOpts()
	opt.Log = slog.New(slog.NewTextHandler(&logs, nil))
	u, err := r.Begin(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Done(u.Install(context.Background(), build(t, u, 1))); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "interrupted") {
		t.Errorf("Done took the install for an interrupted run:\n%s", logs.String())
	}
	if got := counters(t, r); got != (seqfile.Pair{Begin: 1, End: 1}) {
		t.Errorf("seq = %+v, want 1/1", got)
	}
}

// A run that started and found nothing new completes its own counters: no
// word of an interrupted run.
func TestUpdateStartedNothingNewLogsNoInterruption(t *testing.T) {
	r := newRoot(t)
	var logs strings.Builder
	opt := updateOpts()
	opt.Log = slog.New(slog.NewTextHandler(&logs, nil))
	u, err := r.Begin(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Done(nil); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "interrupted") {
		t.Errorf("Done logged an interruption:\n%s", logs.String())
	}
	if got := counters(t, r); got.Begin != got.End {
		t.Errorf("seq = %+v, want begin = end", got)
	}
}

// Install writes the snapshot pointer (seq/current) right after the flip;
// Done repairs a pointer a killed run left behind current, before end.
func TestUpdatePointer(t *testing.T) {
	r := newRoot(t)
	u, err := r.Begin(context.Background(), updateOpts())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Done(u.Install(context.Background(), build(t, u, 1))); err != nil {
		t.Fatal(err)
	}
	if p, err := seqfile.Read(r.FS, r.PointerPath()); err != nil || p != 1 {
		t.Fatalf("seq/current = %d, %v after install; want 1", p, err)
	}
	// As if killed between the flip to 2 and the pointer.
	addSnapshot(t, r, 2, time.Time{})
	flip(t, r, 2)
	setSeq(t, r, 2, 1)
	u, err = r.Begin(context.Background(), updateOpts())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Done(nil); err != nil {
		t.Fatal(err)
	}
	if p, err := seqfile.Read(r.FS, r.PointerPath()); err != nil || p != 2 {
		t.Fatalf("seq/current = %d, %v after the next run; want 2", p, err)
	}
	if got := counters(t, r); got != (seqfile.Pair{Begin: 2, End: 2}) {
		t.Errorf("seq = %+v, want 2/2", got)
	}
}

// Served runs once an update that installed a snapshot is over (end
// bumped, status.json records it) and before the prune removes the old
// snapshots; a run that installed nothing does not call it.
func TestUpdateServedBeforePrune(t *testing.T) {
	r := newRoot(t)
	var served []uint64
	opt := export.UpdateOptions{Keep: 1, MinAge: 0}
	opt.Served = func(n uint64) {
		served = append(served, n)
		st, err := r.Status()
		if err != nil {
			t.Fatal(err)
		}
		snaps, err := r.Snapshots()
		if err != nil {
			t.Fatal(err)
		}
		if p := counters(t, r); !p.Idle() || st.Snapshot != n || len(snaps) < 2 && n > 1 {
			t.Errorf("Served(%d): counters %+v, status.json serves %d, snapshots %v; want idle, %d, the old one not pruned yet", n, p, st.Snapshot, snaps, n)
		}
	}
	for n := uint64(1); n <= 2; n++ {
		u, err := r.Begin(context.Background(), opt)
		if err != nil {
			t.Fatal(err)
		}
		if err := u.Start(); err != nil {
			t.Fatal(err)
		}
		if err := u.Install(context.Background(), build(t, u, n)); err != nil {
			t.Fatal(err)
		}
		if _, err := u.Done(nil); err != nil {
			t.Fatal(err)
		}
	}
	u, err := r.Begin(context.Background(), opt) // a no-op run
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Done(nil); err != nil {
		t.Fatal(err)
	}
	if snaps, _ := r.Snapshots(); len(served) != 2 || served[0] != 1 || served[1] != 2 || len(snaps) != 1 {
		t.Fatalf("Served calls %v, snapshots after %v; want [1 2] and only 2 kept", served, snaps)
	}
}
