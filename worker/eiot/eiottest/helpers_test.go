package eiottest_test

import (
	"errors"

	"github.com/simlookup/simlookup/sign"
	"io"
	"log/slog"
)

func slogJSON(w io.Writer) *slog.Logger { return slog.New(slog.NewJSONHandler(w, nil)) }

func secret() sign.Secret { return sign.NewSecret("s") }

func errorsAs(err error, target any) bool { return errors.As(err, target) }
