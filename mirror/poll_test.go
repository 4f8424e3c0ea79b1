package mirror_test

import (
	"testing"
)

// BenchmarkSyncNoop measures the no-op poll over a local upstream: lock,
// read the upstream's counters and current, find ROOT level, record the
// poll.
func BenchmarkSyncNoop(b *testing.B) {
	w := newWorld(b, baseFiles())
	w.publish(b)
	_, err := w.sync(b, opts())
	must(b, err)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if res, err := w.sync(b, opts()); err != nil || res.Changed {
			b.Fatalf("no-op sync = %+v, %v", res, err)
		}
	}
}
