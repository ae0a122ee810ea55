package main

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func collect(t *testing.T, read func(fn func(input) error) error) ([]input, error) {
	t.Helper()
	var got []input
	err := read(func(in input) error { got = append(got, in); return nil })
	return got, err
}

func TestReadICCIDs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    []input
		wantErr error
	}{
		{"empty", "", nil, nil},
		{"one", "8985224040001430617\n", []input{{1, "8985224040001430617"}}, nil},
		{"no final newline", "a\nb", []input{{1, "a"}, {2, "b"}}, nil},
		{"comments and blanks", "# header\n\n  123  \n#x\n456 # trailing\n   \n", []input{{3, "123"}, {5, "456"}}, nil},
		{"crlf", "1\r\n2\r\n", []input{{1, "1"}, {2, "2"}}, nil},
		{"bom", "\ufeff89\n", []input{{1, "89"}}, nil},
		{"tabs", "\t89\t\n", []input{{1, "89"}}, nil},
		{"garbage kept for the worker to judge", "89.>\nabc\n", []input{{1, "89.>"}, {2, "abc"}}, nil},
		{"too long", strings.Repeat("9", maxInputLine+1), nil, ErrLineTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := collect(t, func(fn func(input) error) error { return readICCIDs(strings.NewReader(tt.in), fn) })
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == nil && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestReadICCIDsStopsOnCallbackError(t *testing.T) {
	t.Parallel()
	stop := errors.New("stop")
	n := 0
	err := readICCIDs(strings.NewReader("1\n2\n3\n"), func(input) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("err = %v after %d values, want stop after 1", err, n)
	}
}

func TestReadCSV(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		column  string
		want    []input
		wantErr error
	}{
		{"simple", "name,iccid\na,89001\nb,89002\n", "iccid", []input{{2, "89001"}, {3, "89002"}}, nil},
		{"case and space in header", "Name , ICCID \na, 89001 \n", "iccid", []input{{2, "89001"}}, nil},
		{"bom", "\ufefficcid,x\n89,1\n", "ICCID", []input{{2, "89"}}, nil},
		{"quoted with newline", "iccid,note\n89,\"two\nlines\"\n90,x\n", "iccid", []input{{2, "89"}, {4, "90"}}, nil},
		{"short and empty rows skipped", "a,iccid\nx\ny,\nz,91\n", "iccid", []input{{4, "91"}}, nil},
		{"crlf", "iccid\r\n89\r\n", "iccid", []input{{2, "89"}}, nil},
		{"missing column", "a,b\n1,2\n", "iccid", nil, ErrNoColumn},
		{"record too long", "iccid\n\"" + strings.Repeat("9", 3*maxInputLine) + "\"\n", "iccid", nil, ErrLineTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := collect(t, func(fn func(input) error) error { return readCSV(strings.NewReader(tt.in), tt.column, fn) })
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == nil && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
	if _, err := collect(t, func(fn func(input) error) error { return readCSV(strings.NewReader(""), "iccid", fn) }); err == nil {
		t.Fatal("empty CSV: want an error")
	}
}

func FuzzReadICCIDs(f *testing.F) {
	for _, s := range []string{"", "89852240400014306175\n", "# c\n\n 1 \r\n", "\ufeffx#y\n", strings.Repeat("7", 100)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := readICCIDs(strings.NewReader(string(data)), func(in input) error {
			if in.Value == "" || strings.ContainsAny(in.Value, "#\n") || in.Value != strings.TrimSpace(in.Value) {
				t.Fatalf("bad value %q", in.Value)
			}
			if len(in.Value) > maxInputLine || in.Pos < 1 {
				t.Fatalf("value of %d bytes at line %d", len(in.Value), in.Pos)
			}
			return nil
		})
		_ = err
	})
}

func FuzzReadCSV(f *testing.F) {
	for _, s := range []string{"iccid\n89\n", "a,iccid\n\"x\ny\",1\n", "\ufeffICCID\r\n1\r\n", "iccid\n\"unterminated", "a,b\n"} {
		f.Add([]byte(s), "iccid")
	}
	f.Fuzz(func(t *testing.T, data []byte, column string) {
		err := readCSV(strings.NewReader(string(data)), column, func(in input) error {
			if in.Value == "" || in.Value != strings.TrimSpace(in.Value) || len(in.Value) > 2*maxInputLine {
				t.Fatalf("bad value of %d bytes", len(in.Value))
			}
			return nil
		})
		_ = err
	})
}
