package sink

import (
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"

	"github.com/simlookup/simlookup/internal/buildinfo"
	"github.com/simlookup/simlookup/schemas"
)

// Key-value metadata keys written in every file's footer.
const (
	MetaSchemaVersion = "simlookup.schema_version"
	MetaVersion       = "simlookup.version"
	MetaCommit        = "simlookup.commit"
	MetaStream        = "simlookup.stream"
	MetaEpoch         = "simlookup.epoch"
	MetaFirstSeq      = "simlookup.first_seq"
	MetaLastSeq       = "simlookup.last_seq"
	MetaRows          = "simlookup.rows"
)

// DefaultRowGroupRows is the default number of rows per row group.
const DefaultRowGroupRows = 100_000

// FileMeta is the per-file key-value metadata: which stream incarnation and
// which sequence range the file holds.
type FileMeta struct {
	Stream   string
	Epoch    string
	FirstSeq uint64
	LastSeq  uint64
}

// WriterConfig are the writer settings; the zero value is the project's
// default.
type WriterConfig struct {
	// RowGroupRows bounds a row group (and so the writer's memory, which holds
	// one row group's compressed pages). Defaults to DefaultRowGroupRows.
	RowGroupRows int
}

var rowSchema = parquet.SchemaOf(Row{})

// zstdCodec is zstd at its default level, single-threaded (one writer per core).
var zstdCodec = &zstd.Codec{Level: zstd.DefaultLevel, Concurrency: 1}

// Writer writes Rows as one Parquet file with the project's settings: zstd,
// data page v1, PLAIN strings (dictionary on the low-cardinality columns
// tagged dict, capped at 1 MiB per column), INT64 TIMESTAMP(MICROS, UTC),
// a bloom filter on iccid,
// bounded row groups, created_by "simlookup <version> (build <commit>)" and
// the key-value metadata of FileMeta. A Writer is not safe for concurrent
// use; make one per file.
type Writer struct {
	w    *parquet.GenericWriter[Row]
	rows int64
}

// NewWriter starts a Parquet file on out. Nothing is readable until Close.
func NewWriter(out io.Writer, cfg WriterConfig) *Writer {
	if cfg.RowGroupRows <= 0 {
		cfg.RowGroupRows = DefaultRowGroupRows
	}
	version, commit, _ := buildinfo.Info()
	w := parquet.NewGenericWriter[Row](out,
		rowSchema,
		parquet.Compression(zstdCodec),
		parquet.DataPageVersion(1),
		parquet.DefaultEncodingFor(parquet.ByteArray, &parquet.Plain),
		parquet.MaxRowsPerRowGroup(int64(cfg.RowGroupRows)),
		parquet.DictionaryMaxBytes(1<<20),
		// Point lookups by card (DuckDB, Trino, Spark skip row groups).
		parquet.BloomFilters(parquet.SplitBlockFilter(10, "iccid")),
		parquet.CreatedBy("simlookup", version, commit),
		parquet.KeyValueMetadata(MetaSchemaVersion, strconv.Itoa(schemas.SchemaVersion)),
		parquet.KeyValueMetadata(MetaVersion, version),
		parquet.KeyValueMetadata(MetaCommit, commit),
	)
	return &Writer{w: w}
}

// Write appends rows (the slice may be reused after it returns).
func (w *Writer) Write(rows []Row) error {
	n, err := w.w.Write(rows)
	w.rows += int64(n)
	if err != nil {
		return fmt.Errorf("sink: write rows: %w", err)
	}
	return nil
}

// Rows is the number of rows written so far.
func (w *Writer) Rows() int64 { return w.rows }

// Size is the number of bytes the file has so far, counting the buffered
// row group (an estimate of the final size).
func (w *Writer) Size() int64 { return w.w.Size() }

// Close writes the footer with meta's key-value metadata. It does not close
// or sync the underlying file.
func (w *Writer) Close(meta FileMeta) error {
	// The writer is never Reset, so no key from a previous file can leak in
	// (SetKeyValueMetadata values survive Reset in parquet-go v0.32).
	w.w.SetKeyValueMetadata(MetaStream, meta.Stream)
	w.w.SetKeyValueMetadata(MetaEpoch, meta.Epoch)
	w.w.SetKeyValueMetadata(MetaFirstSeq, strconv.FormatUint(meta.FirstSeq, 10))
	w.w.SetKeyValueMetadata(MetaLastSeq, strconv.FormatUint(meta.LastSeq, 10))
	w.w.SetKeyValueMetadata(MetaRows, strconv.FormatInt(w.rows, 10))
	if err := w.w.Close(); err != nil {
		return fmt.Errorf("sink: close parquet writer: %w", err)
	}
	return nil
}

// WriteRows writes rows as a complete Parquet file to out.
func WriteRows(out io.Writer, rows []Row, cfg WriterConfig, meta FileMeta) error {
	w := NewWriter(out, cfg)
	if err := w.Write(rows); err != nil {
		return err
	}
	return w.Close(meta)
}

// WriteFile writes rows as a complete Parquet file at path (created or
// truncated) and fsyncs it. It is not atomic: the sink's commit protocol
// (temporary name, rename) is what makes files appear whole.
func WriteFile(path string, rows []Row, cfg WriterConfig, meta FileMeta) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("sink: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("sink: %w", cerr)
		}
	}()
	if err := WriteRows(f, rows, cfg, meta); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sink: %w", err)
	}
	return nil
}
