//go:build race

package sink

// raceEnabled: the race detector slows parquet encoding about tenfold.
const raceEnabled = true
