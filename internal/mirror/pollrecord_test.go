package mirror_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/export"
	"github.com/seqmirror/seqmirror/internal/mirror"
	"github.com/seqmirror/seqmirror/testutil"
)

// clock is a settable time source for Options.Now.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func lastPoll(tb testing.TB, r *export.Root) export.Poll {
	tb.Helper()
	p, ok := r.LastPoll()
	if !ok {
		tb.Fatal("no poll record in seq/checked")
	}
	return p
}

// Every run that reads its upstream records it in seq/checked, a no-op
// poll included (only the file's mtime moves), so a monitor can tell a
// dead cron from an idle master; a mirror that stays behind keeps the time
// it first found itself behind.
func TestPollRecorded(t *testing.T) {
	w := newWorld(t, baseFiles())
	n1 := w.publish(t)
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	opt := opts()
	opt.Now = clk.now
	_, err := w.sync(t, opt)
	testutil.Must(t, err)
	p := lastPoll(t, w.mir)
	if p.UpstreamSnapshot != n1 || p.Snapshot != n1 || p.BehindSince != nil || !p.Checked.Equal(clk.t) || p.Upstream != w.up.Dir {
		t.Fatalf("after the first sync: %+v", p)
	}
	content, err := os.ReadFile(w.mir.CheckedPath())
	testutil.Must(t, err)

	clk.t = clk.t.Add(time.Hour) // a no-op poll: same content, new mtime
	res, err := w.sync(t, opt)
	testutil.Must(t, err)
	if res.Changed {
		t.Fatal("not a no-op")
	}
	if p := lastPoll(t, w.mir); !p.Checked.Equal(clk.t) {
		t.Fatalf("no-op poll at %s left checked at %s", clk.t, p.Checked)
	}
	again, err := os.ReadFile(w.mir.CheckedPath())
	testutil.Must(t, err)
	if string(again) != string(content) {
		t.Fatalf("no-op poll rewrote the record: %q -> %q", content, again)
	}

	for _, f := range []string{"x/1", "x/2", "x/3", "x/4", "x/5"} {
		testutil.Must(t, os.Remove(filepath.Join(w.src, f)))
	}
	n2 := w.publish(t) // refused by --max-delete: the mirror stays behind
	behind := clk.t.Add(time.Minute)
	for i, at := range []time.Time{behind, behind.Add(time.Hour)} {
		clk.t = at
		if _, err := w.sync(t, opt); !errors.Is(err, mirror.ErrTooManyDeletes) {
			t.Fatalf("sync %d = %v", i, err)
		}
		p := lastPoll(t, w.mir)
		if p.UpstreamSnapshot != n2 || p.Snapshot != n1 || p.BehindSince == nil || !p.BehindSince.Equal(behind) || !p.Checked.Equal(at) {
			t.Fatalf("refused sync %d: %+v, want behind since %s", i, p, behind)
		}
	}
	opt.Force = true
	_, err = w.sync(t, opt)
	testutil.Must(t, err)
	if p := lastPoll(t, w.mir); p.Snapshot != n2 || p.BehindSince != nil {
		t.Fatalf("after catching up: %+v", p)
	}
}

// A run that never reaches its upstream records nothing: the record ages.
func TestPollNotRecordedWithoutUpstream(t *testing.T) {
	w := newWorld(t, baseFiles())
	w.publish(t)
	_, err := w.sync(t, opts())
	testutil.Must(t, err)
	before := lastPoll(t, w.mir)
	testutil.Must(t, os.Rename(w.up.Dir, w.up.Dir+".gone"))
	time.Sleep(10 * time.Millisecond)
	if _, err := w.sync(t, opts()); err == nil {
		t.Fatal("sync from a missing upstream succeeded")
	}
	if after := lastPoll(t, w.mir); !after.Checked.Equal(before.Checked) {
		t.Fatalf("a run that did not reach its upstream moved checked: %s -> %s", before.Checked, after.Checked)
	}
}

// BenchmarkSyncNoop measures the no-op poll over a local upstream: lock,
// read the upstream's counters and current, find ROOT level, record the
// poll.
func BenchmarkSyncNoop(b *testing.B) {
	w := newWorld(b, baseFiles())
	w.publish(b)
	_, err := w.sync(b, opts())
	testutil.Must(b, err)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if res, err := w.sync(b, opts()); err != nil || res.Changed {
			b.Fatalf("no-op sync = %+v, %v", res, err)
		}
	}
}
