// Package buildinfo reports the version of the running simlookup binary.
//
// Version and Commit are set at link time
// (-ldflags "-X github.com/simlookup/simlookup/internal/buildinfo.Version=v1.2.3");
// when they are not, they fall back to what the Go toolchain embedded in the binary.
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"sync"
)

// Set by -ldflags -X at build time; empty means "read the embedded build info".
var (
	Version string
	Commit  string
)

var once sync.Once

func load() {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	if Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && Commit == "" {
			Commit = s.Value
			if len(Commit) > 12 {
				Commit = Commit[:12]
			}
		}
	}
}

// Info returns the version ("dev" when unknown), the commit ("unknown" when
// unknown) and the Go version the binary was built with.
func Info() (version, commit, goVersion string) {
	once.Do(load)
	version, commit = Version, Commit
	if version == "" {
		version = "dev"
	}
	if commit == "" {
		commit = "unknown"
	}
	return version, commit, runtime.Version()
}

// UserAgent is the User-Agent header simlookup sends: "simlookup/<version>".
func UserAgent() string {
	v, _, _ := Info()
	return "simlookup/" + v
}
