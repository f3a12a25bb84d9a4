package kcp

import "sync"

// mtuLimit is the size of the pooled segment buffers: the largest MTU.
const mtuLimit = 1500

// xmitBuf pools segment buffers, as in kcp-go.
var xmitBuf = sync.Pool{New: func() any { return make([]byte, mtuLimit) }}

// Snmp counts retransmissions and duplicates across every KCP of the
// process. Its fields are updated atomically.
type Snmp struct {
	LostSegs         uint64 // segments retransmitted after their RTO
	FastRetransSegs  uint64 // segments retransmitted after skipped ACKs
	EarlyRetransSegs uint64 // fast retransmissions of the last segments
	RetransSegs      uint64 // all retransmissions
	RepeatSegs       uint64 // duplicate segments received
}

// DefaultSnmp is the process's counters.
var DefaultSnmp Snmp
