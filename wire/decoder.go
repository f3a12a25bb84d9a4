package wire

// Decoder splits a byte stream into frames for transports that deliver
// bytes in arbitrary pieces through a read call (net.Conn, KCP sessions).
// Feed it what each read returns with Write, then call Next until it
// returns ErrNeedMore. It handles frames split across reads and several
// frames in one read, and decompresses payloads.
//
// A Decoder is not safe for concurrent use: it belongs to the connection's
// reader goroutine. Its buffer holds at most one partial frame
// (HeaderSize+MaxPayload bytes) plus the last Write, provided Next is
// drained after every Write, because Next rejects an oversized frame as
// soon as its header is buffered.
type Decoder struct {
	cfg     Config
	buf     []byte // buf[r:] is not yet returned by Next
	r       int
	scratch []byte // decompression output, reused
	err     error  // sticky
}

// NewDecoder returns a Decoder that applies c's payload limit.
func NewDecoder(c Config) *Decoder {
	return &Decoder{cfg: c}
}

// SetConfig replaces the limits the decoder applies, from the next call
// to Next on: the frame it returns next, complete or not yet, is checked
// against c. A connection that accepts only small frames until it has
// signed in raises the limit this way, between two frames of the same
// read. Frames already returned are not affected.
func (d *Decoder) SetConfig(c Config) { d.cfg = c }

// Write appends p, the bytes of one read, to the decoder's buffer; p is
// copied and may be reused by the caller. Write first compacts the buffer,
// so it invalidates the payload of the last frame returned by Next. After
// Next has returned an error other than ErrNeedMore, Write discards p.
func (d *Decoder) Write(p []byte) {
	if d.err != nil {
		return
	}
	if d.r > 0 {
		n := copy(d.buf, d.buf[d.r:])
		d.buf = d.buf[:n]
		d.r = 0
	}
	d.buf = append(d.buf, p...)
}

// Next returns the next complete frame. Its payload is already
// decompressed: for a frame sent compressed, Next clears FlagCompressed and
// sets Length to the decompressed length, so the header describes the
// payload it is returned with. The payload is valid until the next call to
// Write or Next.
//
// Next returns (Frame{}, ErrNeedMore) when the buffer does not hold a
// complete frame yet. ErrTooLarge, ErrBadFlags and ErrCorrupt are fatal:
// once returned, Next keeps returning the same error and the connection
// should be closed. On a warmed decoder Next does not allocate.
func (d *Decoder) Next() (Frame, error) {
	if d.err != nil {
		return Frame{}, d.err
	}
	f, n, err := d.cfg.Split(d.buf[d.r:])
	if err != nil {
		d.fail(err)
		return Frame{}, err
	}
	if n == 0 {
		return Frame{}, ErrNeedMore
	}
	d.r += n
	if f.Flags&FlagCompressed != 0 {
		p, err := d.cfg.Decompress(d.scratch, f)
		if err != nil {
			d.fail(err)
			return Frame{}, err
		}
		if cap(p) > cap(d.scratch) {
			d.scratch = p[:0]
		}
		f.Payload = p
		f.Flags &^= FlagCompressed
		f.Length = uint32(len(p))
	}
	return f, nil
}

// fail makes err sticky and releases the buffers.
func (d *Decoder) fail(err error) {
	d.err = err
	d.buf, d.r, d.scratch = nil, 0, nil
}

// Buffered returns the number of bytes written but not yet returned as part
// of a frame by Next. It is 0 after a fatal error.
func (d *Decoder) Buffered() int { return len(d.buf) - d.r }
