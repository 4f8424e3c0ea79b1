package retry

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Error marks an attempt that failed because what it read moved under it
// (the source changed while publish copied it, the upstream published
// while mirror-sync copied): the same work, done again a little later, may
// succeed. Why says what moved, in words fit for a log or an error.
type Error struct{ Why string }

func (e *Error) Error() string { return e.Why }

// Again returns an *Error saying why the attempt should be made again.
func Again(why string) error { return &Error{Why: why} }

// Againf is Again with a format.
func Againf(format string, args ...any) error { return &Error{Why: fmt.Sprintf(format, args...)} }

// Reason reports whether err is (or wraps) an *Error, and its Why.
func Reason(err error) (string, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Why, true
	}
	return "", false
}

// Exhausted is the error Do returns when every attempt failed with a
// retryable error: the last one, how many attempts were made and why the
// last failed. Callers wrap it with their own words (what to do next).
type Exhausted struct {
	Attempts int
	Why      string
	Err      error // the last attempt's error
}

func (e *Exhausted) Error() string {
	return fmt.Sprintf("%s (gave up after %d attempts)", e.Why, e.Attempts)
}

func (e *Exhausted) Unwrap() error { return e.Err }

// Policy is how often and how patiently Do retries.
type Policy struct {
	// Retries is the number of attempts after the first (0: none).
	Retries int
	// Backoff is the wait before the first retry, doubled before each
	// next one.
	Backoff time.Duration
	// MaxBackoff, if not 0, caps the doubled wait (a poll that keeps
	// asking until a deadline: publish's quorum wait).
	MaxBackoff time.Duration
	// Retryable reports whether an attempt's error is worth another
	// attempt, and why; nil means Reason (an *Error anywhere in the chain).
	Retryable func(error) (why string, ok bool)
	// OnRetry, if set, is told of each retry before its wait (to log it).
	OnRetry func(why string, attempt int, wait time.Duration)
}

// Do runs op (attempt counts from 0) until it returns nil or an error the
// policy does not retry, which Do returns as is, or until the retries are
// spent, when it returns an *Exhausted wrapping the last error. A context
// cancelled during a wait ends Do with the context's cause.
func Do(ctx context.Context, p Policy, op func(attempt int) error) error {
	retryable := p.Retryable
	if retryable == nil {
		retryable = Reason
	}
	wait := p.Backoff
	for attempt := 0; ; attempt++ {
		err := op(attempt)
		if err == nil {
			return nil
		}
		why, ok := retryable(err)
		if !ok {
			return err
		}
		if attempt >= p.Retries {
			return &Exhausted{Attempts: attempt + 1, Why: why, Err: err}
		}
		if p.OnRetry != nil {
			p.OnRetry(why, attempt+1, wait)
		}
		if err := Sleep(ctx, wait); err != nil {
			return err
		}
		wait *= 2
		if p.MaxBackoff > 0 && wait > p.MaxBackoff {
			wait = p.MaxBackoff
		}
	}
}

// Sleep waits d, or until ctx is done (it then returns ctx's cause).
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}
