package kcp

import "sync"

// mtuLimit is the size of the pooled segment buffers: the largest MTU.
const mtuLimit = 1500

// xmitBuf pools segment buffers, as in kcp-go, but as array pointers: a
// slice put in a sync.Pool is boxed, an allocation per recycled segment.
var xmitBuf = sync.Pool{New: func() any { return new([mtuLimit]byte) }}

// getBuf returns a pooled segment buffer of mtuLimit bytes.
func getBuf() []byte { return xmitBuf.Get().(*[mtuLimit]byte)[:] }

// putBuf returns b to the pool if it came from getBuf (its capacity says
// so); other buffers are left to the garbage collector.
func putBuf(b []byte) {
	if cap(b) == mtuLimit {
		xmitBuf.Put((*[mtuLimit]byte)(b[:mtuLimit]))
	}
}
