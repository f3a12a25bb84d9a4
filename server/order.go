package server

import (
	"sync"
	"sync/atomic"

	"github.com/coveyhq/covey/wire"
)

// replySender is where a replyOrder sends: a *netio.Conn.
type replySender interface {
	Send(h wire.Header, payload []byte)
	Close(status wire.Status, reason string)
}

// maxLateReplies is how many replies one connection may be waiting for
// from other nodes or from deferred application handlers at once; a
// request past it gets StatusUnavailable, in its turn (a client pipelining
// that deep toward another node gains nothing from more).
const maxLateReplies = 256

// maxQueuedReplies bounds the replies queued in all, known or not: a
// client that sends this many requests behind one whose reply has not
// come is closed (StatusSlowConsumer) rather than answered out of order
// or queued without bound.
const maxQueuedReplies = 4096

// tooManyQueued is the Bye reason past maxQueuedReplies.
const tooManyQueued = "too many requests waiting for an earlier reply"

// replyOrder keeps one connection's replies in the order of its requests
// (PROTOCOL.md promises it) when some replies come later than others:
// those of commands run by another node, and those of application
// handlers that Defer. A late reply takes a slot when its request is
// read; replies produced while any slot is open queue behind it and leave
// when every reply before them has.
//
// With no slot open (a single node, or no remote command in flight) a
// reply is sent at once, with one atomic load as the only cost.
type replyOrder struct {
	// open counts the slots in queue. Only the connection's own callbacks
	// add slots; anyone may complete them. A zero read on the
	// connection's callbacks therefore means no reply is waiting.
	open atomic.Int32

	mu      sync.Mutex
	queue   []replySlot // oldest first
	first   uint64      // ticket of queue[0]
	next    uint64      // ticket of the next slot
	waiting int         // slots not filled yet

	// closing, once set by closeWhenSent, closes the connection with
	// closeStatus and closeReason when the queue is empty.
	closing     bool
	closeStatus wire.Status
	closeReason string
}

// replySlot is one reply in the queue: ready once its payload is known.
type replySlot struct {
	ready   bool
	send    bool // false: a successful seq-0 request, no reply
	h       wire.Header
	payload []byte // a copy, owned by the slot
}

// busy reports whether a reply is waiting, so that the next one must
// queue. Call it on the connection's callbacks only.
func (o *replyOrder) busy() bool { return o.open.Load() != 0 }

// take opens a slot for a reply that comes later and returns its ticket,
// or false when maxLateReplies are open. Call it on the connection's
// callbacks only.
func (o *replyOrder) take() (uint64, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.waiting >= maxLateReplies || len(o.queue) >= maxQueuedReplies {
		return 0, false
	}
	o.queue = append(o.queue, replySlot{})
	o.open.Add(1)
	o.waiting++
	t := o.next
	o.next++
	return t, true
}

// fill completes ticket t's slot and sends every reply now due. send
// false completes it without a reply. Any goroutine.
func (o *replyOrder) fill(nc replySender, t uint64, send bool, h wire.Header, payload []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	i := int(t - o.first)
	if i < 0 || i >= len(o.queue) || o.queue[i].ready {
		return // not a ticket of this queue: a bug, but not worth a crash
	}
	sl := &o.queue[i]
	sl.ready, sl.send, sl.h = true, send, h
	o.waiting--
	sl.payload = append(sl.payload[:0], payload...)
	o.flushLocked(nc)
}

// queueReady queues a reply known now behind the open slots, and reports
// false, queuing nothing, past maxQueuedReplies. Call it on the
// connection's callbacks only.
func (o *replyOrder) queueReady(nc replySender, h wire.Header, payload []byte) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.queue) >= maxQueuedReplies {
		return false
	}
	o.queue = append(o.queue, replySlot{ready: true, send: true, h: h, payload: append([]byte(nil), payload...)})
	o.open.Add(1)
	o.next++
	o.flushLocked(nc)
	return true
}

// closeWhenSent closes the connection with status and reason once every
// queued reply has been sent: at once if none is waiting. Call it on the
// connection's callbacks only.
func (o *replyOrder) closeWhenSent(nc replySender, status wire.Status, reason string) {
	o.mu.Lock()
	if len(o.queue) > 0 {
		o.closing, o.closeStatus, o.closeReason = true, status, reason
		o.mu.Unlock()
		return
	}
	o.mu.Unlock()
	nc.Close(status, reason)
}

// flushLocked sends the ready replies at the head of the queue. o.mu must
// be held; nc's own lock is a leaf, so Send may run under it.
func (o *replyOrder) flushLocked(nc replySender) {
	n := 0
	for n < len(o.queue) && o.queue[n].ready {
		if sl := &o.queue[n]; sl.send {
			nc.Send(sl.h, sl.payload)
		}
		n++
	}
	if n == 0 {
		return
	}
	rest := copy(o.queue, o.queue[n:])
	clear(o.queue[rest:])
	o.queue = o.queue[:rest]
	o.first += uint64(n)
	o.open.Add(int32(-n))
	if rest == 0 && o.closing {
		o.closing = false
		nc.Close(o.closeStatus, o.closeReason)
	}
}
