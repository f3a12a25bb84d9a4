//go:build linux && race

package netio

import (
	"runtime"
	"unsafe"
)

// raceReadRange tells the race detector that the kernel reads b, as x/net
// does for the buffers it hands to sendmmsg.
func raceReadRange(b []byte) {
	if len(b) > 0 {
		runtime.RaceReadRange(unsafe.Pointer(&b[0]), len(b))
	}
}
