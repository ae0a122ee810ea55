package main

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxInputLine bounds one line of an ICCID file and one CSV record, so a
// file without newlines cannot make publish read it whole into memory.
const maxInputLine = 16 << 10

// ErrLineTooLong is wrapped by the readers for a line or CSV record longer
// than maxInputLine bytes.
var ErrLineTooLong = errors.New("line too long")

// input is one ICCID to publish: the value as given (trimmed) and where it
// came from (the line number in a file, the argument index).
type input struct {
	Pos   int
	Value string
}

// readICCIDs reads one ICCID per line. Leading and trailing white space is
// trimmed, '#' starts a comment (to the end of the line), blank and
// comment-only lines are skipped, a UTF-8 byte order mark and CRLF line ends
// are accepted. fn gets the 1-based line number of each value; its error
// stops the read. Memory is bounded by maxInputLine.
func readICCIDs(r io.Reader, fn func(in input) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxInputLine)
	line := 0
	for sc.Scan() {
		line++
		s := sc.Text()
		if line == 1 {
			s = strings.TrimPrefix(s, "\ufeff")
		}
		if i := strings.IndexByte(s, '#'); i >= 0 {
			s = s[:i]
		}
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if err := fn(input{Pos: line, Value: s}); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("line %d: %w (more than %d bytes)", line+1, ErrLineTooLong, maxInputLine)
		}
		return fmt.Errorf("line %d: %w", line+1, err)
	}
	return nil
}

// ErrNoColumn is wrapped by readCSV when the header has no such column.
var ErrNoColumn = errors.New("no such column")

// boundedReader fails once more than max bytes are read since the last reset.
type boundedReader struct {
	r   io.Reader
	n   int
	max int
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.n > b.max {
		return 0, ErrLineTooLong
	}
	n, err := b.r.Read(p)
	b.n += n
	return n, err
}

// readCSV reads the column named column (matched case-insensitively, after
// trimming) of a CSV file whose first record is the header. Values are
// trimmed; empty values are skipped; rows may have different lengths (a
// short row has an empty value). fn gets the 1-based line number where the
// value starts. Memory is bounded by maxInputLine per record.
func readCSV(r io.Reader, column string, fn func(in input) error) error {
	br := &boundedReader{r: r, max: maxInputLine}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = true
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("empty CSV: want a header line naming the column %q", column)
	}
	if err != nil {
		return fmt.Errorf("CSV header: %w", err)
	}
	col := -1
	want := strings.ToLower(strings.TrimSpace(column))
	names := make([]string, len(header))
	for i, h := range header {
		if i == 0 {
			h = strings.TrimPrefix(h, "\ufeff")
		}
		h = strings.TrimSpace(h)
		names[i] = h
		if col < 0 && strings.ToLower(h) == want {
			col = i
		}
	}
	if col < 0 {
		shown := names
		if len(shown) > 20 {
			shown = append(shown[:20:20], "...")
		}
		return fmt.Errorf("%w %q in the CSV header (columns: %s)", ErrNoColumn, column, strings.Join(shown, ", "))
	}
	for {
		br.n = 0
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if errors.Is(err, ErrLineTooLong) {
				return fmt.Errorf("CSV: %w (a record over %d bytes)", ErrLineTooLong, maxInputLine)
			}
			return fmt.Errorf("CSV: %w", err)
		}
		if col >= len(rec) {
			continue
		}
		v := strings.TrimSpace(rec[col])
		if v == "" {
			continue
		}
		line, _ := cr.FieldPos(col)
		if err := fn(input{Pos: line, Value: v}); err != nil {
			return err
		}
	}
}
