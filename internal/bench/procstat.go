package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
// It is 100 on every Linux architecture Go supports.
const clockTicks = 100

// ProcSample is what /proc says about one process at one moment.
type ProcSample struct {
	// RSS and PeakRSS (VmRSS, VmHWM) in bytes.
	RSS, PeakRSS int64
	// CPUSeconds is user + system time so far.
	CPUSeconds float64
}

// ErrNoProc means /proc is not available (not Linux) or the process is gone.
var ErrNoProc = errors.New("bench: no /proc entry for the process")

// SampleProc reads /proc/<pid>/status and /proc/<pid>/stat.
func SampleProc(pid int) (ProcSample, error) {
	var s ProcSample
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("%w: %v", ErrNoProc, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "VmRSS:"):
			s.RSS = parseKB(line)
		case strings.HasPrefix(line, "VmHWM:"):
			s.PeakRSS = parseKB(line)
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, fmt.Errorf("%w: %v", ErrNoProc, err)
	}
	cpu, err := parseStatCPU(string(stat))
	if err != nil {
		return s, err
	}
	s.CPUSeconds = cpu
	return s, nil
}

func parseKB(line string) int64 {
	f := strings.Fields(line)
	if len(f) < 2 {
		return 0
	}
	v, _ := strconv.ParseInt(f[1], 10, 64)
	return v * 1024
}

// parseStatCPU returns utime+stime in seconds from a /proc/<pid>/stat line.
// The command name (field 2) may contain spaces and parentheses, so fields
// are counted from the last ')'.
func parseStatCPU(stat string) (float64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("bench: malformed /proc stat %q", stat)
	}
	f := strings.Fields(stat[i+1:])
	// after ')': state(3) ppid(4) ... utime is field 14, stime 15 → index 11, 12
	if len(f) < 13 {
		return 0, fmt.Errorf("bench: short /proc stat %q", stat)
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bench: malformed /proc stat times %q %q", f[11], f[12])
	}
	return float64(u+st) / clockTicks, nil
}
