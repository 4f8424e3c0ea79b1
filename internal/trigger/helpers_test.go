package trigger

import (
	"io"
	"log/slog"
)

func ioNopCloser(r io.Reader) io.ReadCloser { return io.NopCloser(r) }

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
