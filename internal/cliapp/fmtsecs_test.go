package cliapp

import (
	"testing"
	"time"
)

// fmtSecs prints seconds to the millisecond, never a float's long tail.
func TestFmtSecs(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    time.Duration
		want string
	}{
		{"a float's tail", 4831 * time.Millisecond, "4.831"},
		{"rounded to the millisecond", 1234567 * time.Microsecond, "1.235"},
		{"whole", 61 * time.Second, "61"},
		{"zero", 0, "0"},
		{"negative", -300 * time.Millisecond, "-0.3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := fmtSecs(tc.d); got != tc.want {
				t.Errorf("fmtSecs(%v) = %q, want %q", tc.d, got, tc.want)
			}
		})
	}
}
