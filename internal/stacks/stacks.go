// Package stacks gives tests the stack traces of every goroutine, to count
// the goroutines a component runs by the functions on their stacks.
package stacks

import (
	"bytes"
	"runtime"
)

// All returns the stack traces of every goroutine, as runtime.Stack
// formats them, however long they are.
func All() []byte {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return buf[:n]
		}
		buf = make([]byte, 2*len(buf))
	}
}

// Each returns the trace of every goroutine, one element each.
func Each() [][]byte {
	return bytes.Split(All(), []byte("\n\n"))
}
