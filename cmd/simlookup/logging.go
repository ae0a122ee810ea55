package main

import (
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/lmittmann/tint"
	"github.com/mattn/go-isatty"
)

// isTerminal reports whether w is a terminal (colour, progress bars).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	return isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())
}

// newLogger returns the process logger: tint (colour text) on a terminal,
// JSON otherwise, unless format says "text" or "json".
func newLogger(format, level string, w io.Writer) *slog.Logger {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		lv = slog.LevelInfo
	}
	switch {
	case format == "json" || (format != "text" && !isTerminal(w)):
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lv}))
	default:
		return slog.New(tint.NewHandler(w, &tint.Options{Level: lv, TimeFormat: time.TimeOnly, NoColor: !isTerminal(w)}))
	}
}
