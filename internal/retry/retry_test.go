package retry_test

import (
	"context"
	"errors"
	"io/fs"
	"testing"
	"time"

	"github.com/seqmirror/seqmirror/internal/retry"
)

func TestDo(t *testing.T) {
	errHard := errors.New("hard")
	tests := []struct {
		name      string
		results   []error // attempt i returns results[i] (nil past the end)
		retries   int
		retryable func(error) (string, bool)
		wantCalls int
		wantErr   error // errors.Is target; nil: success
		wantGave  int   // attempts in *Exhausted, 0: not exhausted
	}{
		{name: "first succeeds", results: nil, retries: 3, wantCalls: 1},
		{name: "second succeeds", results: []error{retry.Again("moved")}, retries: 3, wantCalls: 2},
		{name: "hard error is not retried", results: []error{errHard}, retries: 3, wantCalls: 1, wantErr: errHard},
		{name: "wrapped retry error is retried", results: []error{fmtWrap(retry.Again("moved"))}, retries: 1, wantCalls: 2},
		{name: "gives up after retries", results: []error{retry.Again("a"), retry.Again("b"), retry.Again("c")}, retries: 2, wantCalls: 3, wantGave: 3},
		{name: "no retries", results: []error{retry.Again("a")}, retries: 0, wantCalls: 1, wantGave: 1},
		{name: "policy widens what is retried", results: []error{fs.ErrNotExist}, retries: 1, wantCalls: 2,
			retryable: func(err error) (string, bool) { return "gone", errors.Is(err, fs.ErrNotExist) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			var waits []time.Duration
			p := retry.Policy{Retries: tt.retries, Backoff: time.Millisecond, Retryable: tt.retryable,
				OnRetry: func(why string, attempt int, wait time.Duration) { waits = append(waits, wait) }}
			err := retry.Do(context.Background(), p, func(attempt int) error {
				if attempt != calls {
					t.Fatalf("attempt %d, want %d", attempt, calls)
				}
				calls++
				if attempt < len(tt.results) {
					return tt.results[attempt]
				}
				return nil
			})
			if calls != tt.wantCalls {
				t.Errorf("calls = %d, want %d", calls, tt.wantCalls)
			}
			for i := 1; i < len(waits); i++ {
				if waits[i] != 2*waits[i-1] {
					t.Errorf("waits %v do not double", waits)
				}
			}
			var ex *retry.Exhausted
			switch {
			case tt.wantGave > 0:
				if !errors.As(err, &ex) || ex.Attempts != tt.wantGave {
					t.Fatalf("err = %v, want exhausted after %d", err, tt.wantGave)
				}
				if _, ok := retry.Reason(err); !ok {
					t.Errorf("exhausted error does not wrap the last *Error")
				}
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) || errors.As(err, &ex) {
					t.Fatalf("err = %v, want %v as is", err, tt.wantErr)
				}
			case err != nil:
				t.Fatalf("err = %v, want success", err)
			}
		})
	}
}

func fmtWrap(err error) error { return errors.Join(errors.New("context"), err) }

// A cancel during the wait ends Do with the cancel's cause, at once.
func TestDoCancelledDuringWait(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	stop := errors.New("stopped")
	start := time.Now()
	err := retry.Do(ctx, retry.Policy{Retries: 5, Backoff: time.Hour}, func(int) error {
		cancel(stop)
		return retry.Again("moved")
	})
	if !errors.Is(err, stop) || time.Since(start) > time.Minute {
		t.Fatalf("err = %v after %v, want the cancel cause at once", err, time.Since(start))
	}
}

func TestMaxBackoffCapsTheWait(t *testing.T) {
	var waits []time.Duration
	p := retry.Policy{Retries: 5, Backoff: time.Microsecond, MaxBackoff: 4 * time.Microsecond,
		OnRetry: func(_ string, _ int, wait time.Duration) { waits = append(waits, wait) }}
	_ = retry.Do(context.Background(), p, func(int) error { return retry.Again("not yet") })
	want := []time.Duration{1, 2, 4, 4, 4}
	if len(waits) != len(want) {
		t.Fatalf("waits %v, want %d of them", waits, len(want))
	}
	for i, w := range want {
		if waits[i] != w*time.Microsecond {
			t.Errorf("wait %d = %v, want %v", i, waits[i], w*time.Microsecond)
		}
	}
}
