//go:build race

package cluster

// raceEnabled: the race detector is on. sync.Pool then drops a quarter of
// what it is given, so allocation counts are not meaningful.
const raceEnabled = true
