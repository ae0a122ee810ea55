package sink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Names inside the output folder.
const (
	// LockFile is held (flock) by the one sink writing the folder.
	LockFile = ".simlookup-sink.lock"
	// CheckpointFile records the last committed sequence; see the package doc.
	CheckpointFile = ".simlookup-sink.checkpoint"
	// TempDir holds files being written; their names never end in .parquet.
	TempDir = ".simlookup-tmp"

	checkpointTemp = CheckpointFile + ".tmp"
	tempSuffix     = ".parquet.tmp"
)

// ErrLocked is wrapped by the error Run returns when another sink holds the
// output folder's lock.
var ErrLocked = errors.New("sink: output folder is locked by another sink")

// EpochOf is the <epoch> of file names for a stream created at created: its
// Unix time in nanoseconds, zero-padded to 19 digits.
func EpochOf(created time.Time) string { return fmt.Sprintf("%019d", created.UnixNano()) }

// PartitionOf is the Hive partition (relative folder) of a result stored at t:
// dt=YYYY-MM-DD/hour=HH in UTC.
func PartitionOf(t time.Time) string {
	u := t.UTC()
	return fmt.Sprintf("dt=%s/hour=%02d", u.Format("2006-01-02"), u.Hour())
}

// FileName is the final name of a file holding stream sequences first..last.
func FileName(epoch string, first, last uint64) string {
	return fmt.Sprintf("part-%s-%020d-%020d.parquet", epoch, first, last)
}

// ParseFileName splits a final file name into its epoch and sequence range.
func ParseFileName(name string) (epoch string, first, last uint64, ok bool) {
	rest, ok := strings.CutPrefix(name, "part-")
	if !ok {
		return "", 0, 0, false
	}
	rest, ok = strings.CutSuffix(rest, ".parquet")
	if !ok {
		return "", 0, 0, false
	}
	parts := strings.Split(rest, "-")
	if len(parts) != 3 {
		return "", 0, 0, false
	}
	f, err1 := strconv.ParseUint(parts[1], 10, 64)
	l, err2 := strconv.ParseUint(parts[2], 10, 64)
	if err1 != nil || err2 != nil || f > l {
		return "", 0, 0, false
	}
	return parts[0], f, l, true
}

// lockFolder takes the folder's exclusive lock, waiting up to wait.
func lockFolder(ctx context.Context, dir string, wait time.Duration) (*os.File, error) {
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("sink: open lock %s: %w", path, err)
	}
	deadline := time.Now().Add(wait)
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("sink: lock %s: %w", path, err)
		}
		if wait <= 0 || time.Now().After(deadline) {
			holder, _ := os.ReadFile(path)
			f.Close()
			h := strings.TrimSpace(string(holder))
			if h == "" {
				h = "unknown"
			}
			return nil, fmt.Errorf("%w: %s is written by another sink (%s); run one sink per folder, or give --lock-wait to wait for it", ErrLocked, dir, h)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	host, _ := os.Hostname()
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(fmt.Sprintf("pid %d on %s since %s\n", os.Getpid(), host, time.Now().UTC().Format(time.RFC3339))), 0)
	return f, nil
}

// checkpoint is the content of CheckpointFile.
type checkpoint struct {
	Version      int       `json:"version"`
	Stream       string    `json:"stream"`
	Epoch        string    `json:"epoch"`
	CommittedSeq uint64    `json:"committed_seq"`
	LastFile     string    `json:"last_file,omitempty"`
	UpdatedAt    time.Time `json:"updated_at"`
}

func readCheckpoint(dir string) (checkpoint, bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, CheckpointFile))
	if errors.Is(err, os.ErrNotExist) {
		return checkpoint{}, false, nil
	}
	if err != nil {
		return checkpoint{}, false, fmt.Errorf("sink: read checkpoint: %w", err)
	}
	var cp checkpoint
	if err := json.Unmarshal(b, &cp); err != nil {
		return checkpoint{}, false, fmt.Errorf("sink: checkpoint %s is not valid JSON: %w", filepath.Join(dir, CheckpointFile), err)
	}
	return cp, true, nil
}

// writeCheckpoint replaces the checkpoint atomically and durably.
func writeCheckpoint(fsys FS, dir string, cp checkpoint) error {
	b, err := json.MarshalIndent(cp, "", "  ")
	if err != nil {
		return fmt.Errorf("sink: encode checkpoint: %w", err)
	}
	tmp := filepath.Join(dir, checkpointTemp)
	f, err := fsys.Create(tmp)
	if err != nil {
		return &CommitError{Step: "checkpoint create", Err: err}
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return &CommitError{Step: "checkpoint write", Err: err}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return &CommitError{Step: "checkpoint sync", Err: err}
	}
	if err := f.Close(); err != nil {
		return &CommitError{Step: "checkpoint close", Err: err}
	}
	if err := fsys.Rename(tmp, filepath.Join(dir, CheckpointFile)); err != nil {
		return &CommitError{Step: "checkpoint rename", Err: err}
	}
	if err := fsys.SyncDir(dir); err != nil {
		return &CommitError{Step: "checkpoint dirsync", Err: err}
	}
	return nil
}

// CommitError is a failed step of a commit (or of the checkpoint after it).
type CommitError struct {
	Step string // e.g. "create", "write", "sync", "rename", "dirsync", "checkpoint write"
	Path string
	Err  error
}

func (e *CommitError) Error() string {
	if e.Path != "" {
		return fmt.Sprintf("sink: commit %s %s: %v", e.Step, e.Path, e.Err)
	}
	return fmt.Sprintf("sink: commit %s: %v", e.Step, e.Err)
}

func (e *CommitError) Unwrap() error { return e.Err }

// cleanTemp removes leftovers of interrupted commits: everything in TempDir
// and a half-written checkpoint.
func cleanTemp(fsys FS, dir string) (int, error) {
	n := 0
	tmp := filepath.Join(dir, TempDir)
	entries, err := os.ReadDir(tmp)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("sink: list %s: %w", tmp, err)
	}
	for _, e := range entries {
		if err := fsys.Remove(filepath.Join(tmp, e.Name())); err != nil {
			return n, fmt.Errorf("sink: remove leftover %s: %w", e.Name(), err)
		}
		n++
	}
	if err := fsys.Remove(filepath.Join(dir, checkpointTemp)); err == nil {
		n++
	} else if !errors.Is(err, os.ErrNotExist) {
		return n, fmt.Errorf("sink: remove leftover checkpoint: %w", err)
	}
	return n, nil
}

// findFileStarting returns the final file of epoch whose first sequence is
// first in partition part, if any (the largest last sequence if several).
func findFileStarting(dir, part, epoch string, first uint64) (name string, last uint64, ok bool, err error) {
	pattern := filepath.Join(dir, filepath.FromSlash(part), fmt.Sprintf("part-%s-%020d-*.parquet", epoch, first))
	matches, err := filepath.Glob(pattern)
	if err != nil {
		return "", 0, false, err
	}
	for _, m := range matches {
		if ep, f, l, good := ParseFileName(filepath.Base(m)); good && ep == epoch && f == first && (!ok || l > last) {
			name, last, ok = m, l, true
		}
	}
	return name, last, ok, nil
}

// scanLast lists every partition's file names (no file is opened) and
// returns the highest last sequence of epoch's files that start after
// after, with its path. Only used when the cheap probe cannot locate the
// next file (its first result has expired from the stream).
func scanLast(dir, epoch string, after uint64) (path string, last uint64, err error) {
	dts, err := os.ReadDir(dir)
	if err != nil {
		return "", 0, err
	}
	last = after
	for _, dt := range dts {
		if !dt.IsDir() || !strings.HasPrefix(dt.Name(), "dt=") {
			continue
		}
		hours, err := os.ReadDir(filepath.Join(dir, dt.Name()))
		if err != nil {
			return "", 0, err
		}
		for _, h := range hours {
			if !h.IsDir() || !strings.HasPrefix(h.Name(), "hour=") {
				continue
			}
			files, err := os.ReadDir(filepath.Join(dir, dt.Name(), h.Name()))
			if err != nil {
				return "", 0, err
			}
			for _, f := range files {
				ep, first, l, ok := ParseFileName(f.Name())
				if ok && ep == epoch && first > after && l > last {
					last, path = l, filepath.Join(dir, dt.Name(), h.Name(), f.Name())
				}
			}
		}
	}
	return path, last, nil
}
