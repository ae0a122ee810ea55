package sink

import (
	"io"
	"os"
)

// FS is the filesystem seam of the commit: every step that can fail on a
// real disk (create, write, sync, close, mkdir, rename, directory sync,
// remove) goes through it, so tests can inject a fault at each step. Reads
// (directory listings, the checkpoint) use the os package directly.
type FS interface {
	// Create creates or truncates name for writing.
	Create(name string) (File, error)
	// MkdirAll creates dir and its parents (0o755).
	MkdirAll(dir string) error
	// Rename atomically replaces newpath with oldpath.
	Rename(oldpath, newpath string) error
	// SyncDir fsyncs a directory, making the entries created, renamed or
	// removed in it durable.
	SyncDir(dir string) error
	// Remove removes a file.
	Remove(name string) error
}

// File is a file being written.
type File interface {
	io.Writer
	Sync() error
	Close() error
}

// OSFS is the real filesystem.
type OSFS struct{}

var _ FS = OSFS{}

// Create implements FS.
func (OSFS) Create(name string) (File, error) {
	return os.OpenFile(name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
}

// MkdirAll implements FS.
func (OSFS) MkdirAll(dir string) error { return os.MkdirAll(dir, 0o755) }

// Rename implements FS.
func (OSFS) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }

// Remove implements FS.
func (OSFS) Remove(name string) error { return os.Remove(name) }

// SyncDir implements FS.
func (OSFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
