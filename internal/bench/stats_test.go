package bench

import (
	"os"
	"testing"
	"time"
)

func TestMaxWindow(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms ...int) []time.Time {
		var ts []time.Time
		for _, m := range ms {
			ts = append(ts, t0.Add(time.Duration(m)*time.Millisecond))
		}
		return ts
	}
	tests := []struct {
		name string
		ts   []time.Time
		want int
	}{
		{"none", nil, 0},
		{"one", at(5), 1},
		{"even spread", at(0, 250, 500, 750, 1000, 1250), 4},
		{"edge is exclusive", at(0, 1000), 1},
		{"burst in the middle", at(0, 900, 901, 902, 903, 1899, 3000), 5},
		{"unsorted", at(903, 0, 901, 902, 900), 5},
	}
	for _, tt := range tests {
		if got := MaxWindow(tt.ts, time.Second); got != tt.want {
			t.Errorf("%s: MaxWindow = %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	if got := Percentile(ds, 50); got != 50*time.Millisecond {
		t.Errorf("p50 = %v", got)
	}
	if got := Percentile(ds, 99); got != 99*time.Millisecond {
		t.Errorf("p99 = %v", got)
	}
	if got := Percentile(ds, 100); got != 100*time.Millisecond {
		t.Errorf("p100 = %v", got)
	}
	if got := Percentile(nil, 50); got != 0 {
		t.Errorf("p50 of none = %v", got)
	}
}

func TestParseStatCPU(t *testing.T) {
	// a command name with spaces and a ')' inside
	line := "4242 (sim (look) up) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 130 0 0 20 0 8 0 100 0 0"
	got, err := parseStatCPU(line)
	if err != nil {
		t.Fatal(err)
	}
	if got != 3.8 {
		t.Fatalf("cpu = %v, want 3.8", got)
	}
	if _, err := parseStatCPU("garbage"); err == nil {
		t.Fatal("no error for garbage")
	}
}

func TestSampleProcSelf(t *testing.T) {
	s, err := SampleProc(os.Getpid())
	if err != nil {
		t.Skip("no /proc here:", err)
	}
	if s.RSS <= 0 || s.PeakRSS < s.RSS {
		t.Fatalf("sample = %+v", s)
	}
}
