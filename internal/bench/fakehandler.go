package bench

import (
	"fmt"

	"github.com/simlookup/simlookup/sign"
	"github.com/simlookup/simlookup/worker/eiot/eiottest"
)

// newFake is the fake vendor API of the benchmark: zero latency, no faults,
// no quota of its own (the bench counts calls itself).
func newFake() (*eiottest.Server, error) {
	s, err := eiottest.New(eiottest.Config{AppKey: benchAppKey, Secret: sign.NewSecret(benchSecret)})
	if err != nil {
		return nil, fmt.Errorf("bench: fake vendor API: %w", err)
	}
	return s, nil
}
