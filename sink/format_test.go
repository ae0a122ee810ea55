package sink

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/deprecated"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// A batch closes when the partition (UTC hour of the stored time) changes,
// in either direction, so that no file spans two partitions. MaxRows and
// MaxAge are out of reach: only the partition changes close files before
// the shutdown.
func TestBatchClosesOnPartitionChange(t *testing.T) {
	t.Parallel()
	b := setup(t, true)
	b.publish(t, results(0, 33))
	h22 := time.Date(2026, 12, 31, 22, 59, 59, 0, time.UTC)
	h23 := time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC)
	h00 := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC) // a new day too
	stored := func(seq uint64) time.Time {
		ms := time.Duration(seq) * time.Millisecond
		switch {
		case seq <= 10:
			return h22.Add(ms)
		case seq <= 25:
			return h23.Add(ms)
		case seq <= 30:
			return h00.Add(ms)
		default: // the server's clock stepped back
			return h23.Add(time.Minute + ms)
		}
	}
	var commits []CommitInfo
	cfg := b.config(t)
	cfg.MaxAge = time.Hour
	cfg.OnCommit = func(ci CommitInfo) { commits = append(commits, ci) }
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.storedAt = func(seq uint64, _ time.Time) time.Time { return stored(seq) }
	r := startSink(t, s)
	r.waitCommitted(t, 30)
	waitFor(t, "open batch of 3", func() bool { return r.s.Status().OpenRows == 3 })
	if got := r.s.Status().Files; got != 3 {
		t.Fatalf("%d files committed before shutdown, want 3 (one per partition change)", got)
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}

	type span struct {
		part        string
		first, last uint64
	}
	var got []span
	for _, c := range commits {
		got = append(got, span{c.Partition, c.FirstSeq, c.LastSeq})
	}
	want := []span{
		{"dt=2026-12-31/hour=22", 1, 10},
		{"dt=2026-12-31/hour=23", 11, 25},
		{"dt=2027-01-01/hour=00", 26, 30},
		{"dt=2026-12-31/hour=23", 31, 33},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("commits %v, want %v", got, want)
	}
	// readOut fails on a row whose stored_at is outside its file's folder.
	rows := checkExactlyOnce(t, b.out, 33)
	for seq, row := range rows {
		if w := stored(uint64(seq)); !row.StoredAt.Equal(w) {
			t.Errorf("seq %d stored_at %v, want %v", seq, row.StoredAt, w)
		}
	}
	_, files := readOut(t, b.out)
	if len(files) != len(want) {
		t.Fatalf("files %v, want %d", files, len(want))
	}
}

// TestFileFormatOnDisk reads a file the sink committed back at the level of
// its footer and page headers: the settings every warehouse reads (data page
// v1, zstd, PLAIN/dictionary encodings, INT64 TIMESTAMP(MICROS, UTC), no
// unsigned, INT96 or nested types).
func TestFileFormatOnDisk(t *testing.T) {
	t.Parallel()
	b := setup(t, true)
	const n = 300
	b.publish(t, results(0, n))
	cfg := b.config(t)
	cfg.MaxRows, cfg.RowGroupRows, cfg.MaxAge = n, 100, time.Hour
	var path string
	cfg.OnCommit = func(ci CommitInfo) { path = ci.Path }
	r := start(t, cfg)
	r.waitCommitted(t, n)
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if path == "" {
		t.Fatal("no file committed")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	md := pf.Metadata()
	if md.NumRows != n || len(md.RowGroups) != 3 {
		t.Fatalf("%d rows in %d row groups, want %d in 3", md.NumRows, len(md.RowGroups), n)
	}

	// Schema: flat, signed, timestamps in µs UTC.
	timeCols := map[string]bool{}
	rt := reflect.TypeFor[Row]()
	for i := range rt.NumField() {
		ft := rt.Field(i).Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft == reflect.TypeFor[time.Time]() {
			name, _, _ := strings.Cut(rt.Field(i).Tag.Get("parquet"), ",")
			timeCols[name] = true
		}
	}
	if len(timeCols) < 5 {
		t.Fatalf("only %d time columns found in Row: %v", len(timeCols), timeCols)
	}
	seenTime := 0
	for _, el := range md.Schema[1:] {
		if nc, ok := el.NumChildren.Get(); ok && nc > 0 {
			t.Errorf("column %s is a group (nested type)", el.Name)
		}
		typ, _ := el.Type.Get()
		if typ == format.Int96 {
			t.Errorf("column %s is INT96", el.Name)
		}
		if ct, ok := el.ConvertedType.Get(); ok && ct >= deprecated.Uint8 && ct <= deprecated.Uint64 {
			t.Errorf("column %s has unsigned converted type %v", el.Name, ct)
		}
		switch lt := el.LogicalType.Value.(type) {
		case *format.IntType:
			if !lt.IsSigned {
				t.Errorf("column %s is unsigned: %v", el.Name, lt)
			}
		case *format.TimestampType:
			if !timeCols[el.Name] {
				t.Errorf("column %s is a timestamp but not a time field", el.Name)
			}
			if _, micros := lt.Unit.Value.(*format.MicroSeconds); !micros || !lt.IsAdjustedToUTC || typ != format.Int64 {
				t.Errorf("column %s is %v %v, want INT64 TIMESTAMP(MICROS, isAdjustedToUTC=true)", el.Name, typ, lt)
			}
			seenTime++
		}
	}
	if seenTime != len(timeCols) {
		t.Errorf("%d timestamp columns in the schema, want %d (%v)", seenTime, len(timeCols), timeCols)
	}

	// Column chunks and every page header in them.
	allowed := []format.Encoding{format.Plain, format.PlainDictionary, format.RLE, format.RLEDictionary, format.BitPacked}
	var dataPages, dictPages int
	for gi, rg := range md.RowGroups {
		for _, c := range rg.Columns {
			cm := c.MetaData
			col := fmt.Sprintf("row group %d column %s", gi, strings.Join(cm.PathInSchema, "."))
			if cm.Codec != format.Zstd {
				t.Errorf("%s: codec %v, want ZSTD", col, cm.Codec)
			}
			if cm.Type == format.Int96 {
				t.Errorf("%s: INT96", col)
			}
			for _, e := range cm.Encoding {
				if !slices.Contains(allowed, e) {
					t.Errorf("%s: encoding %v", col, e)
				}
			}
			for _, es := range cm.EncodingStats {
				if es.PageType == format.DataPageV2 || !slices.Contains(allowed, es.Encoding) {
					t.Errorf("%s: encoding stats %v %v", col, es.PageType, es.Encoding)
				}
			}
			start := cm.DataPageOffset
			if cm.DictionaryPageOffset > 0 && cm.DictionaryPageOffset < start {
				start = cm.DictionaryPageOffset
			}
			chunk := make([]byte, cm.TotalCompressedSize)
			if _, err := f.ReadAt(chunk, start); err != nil {
				t.Fatalf("%s: read chunk: %v", col, err)
			}
			var values int64
			pos := 0
			for pos < len(chunk) {
				var h format.PageHeader
				rd := (&thrift.CompactProtocol{}).NewReaderFromBytes(chunk[pos:])
				if err := thrift.NewDecoder(rd).Decode(&h); err != nil {
					t.Fatalf("%s: page header at %d: %v", col, start+int64(pos), err)
				}
				pos += rd.BytesRead() + int(h.CompressedPageSize)
				if _, v2 := h.DataPageHeaderV2.Get(); v2 || h.Type == format.DataPageV2 {
					t.Errorf("%s: DATA_PAGE_V2", col)
				}
				switch h.Type {
				case format.DataPage:
					dph, ok := h.DataPageHeader.Get()
					if !ok {
						t.Fatalf("%s: data page without its header", col)
					}
					if !slices.Contains(allowed, dph.Encoding) || dph.Encoding == format.DeltaLengthByteArray {
						t.Errorf("%s: data page encoding %v", col, dph.Encoding)
					}
					values += int64(dph.NumValues)
					dataPages++
				case format.DictionaryPage:
					dict, _ := h.DictionaryPageHeader.Get()
					if dict.Encoding != format.Plain && dict.Encoding != format.PlainDictionary {
						t.Errorf("%s: dictionary page encoding %v", col, dict.Encoding)
					}
					dictPages++
				default:
					t.Errorf("%s: page type %v", col, h.Type)
				}
			}
			if pos != len(chunk) || values != cm.NumValues {
				t.Errorf("%s: pages cover %d of %d bytes and %d of %d values", col, pos, len(chunk), values, cm.NumValues)
			}
		}
	}
	if dataPages < 3*len(md.RowGroups[0].Columns) || dictPages == 0 {
		t.Errorf("%d data pages and %d dictionary pages read", dataPages, dictPages)
	}
	t.Logf("%s: %d data pages, %d dictionary pages", filepath.Base(path), dataPages, dictPages)
}
