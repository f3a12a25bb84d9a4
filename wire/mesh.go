package wire

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"strconv"
	"unicode/utf8"
)

// Payloads of the mesh commands (namespace 0, MeshCmdFirst to 0xFFFF),
// exchanged between the nodes of a cluster on their own connections; see
// PROTOCOL.md, "Mesh (server to server)". They follow the conventions of
// messages.go: Append appends the encoding to dst (allocating only to grow
// it), Size is the length Append adds, Consume decodes a whole payload
// (ErrTrailing for bytes left over) and leaves the message unchanged when
// it fails. Strings are copied out of the input and checked to be UTF-8;
// []byte fields alias the input and are valid only as long as it is.
// Fields are encoded in declaration order.
//
// The hot paths have encoders and decoders of their own that do not
// allocate: [AppendFanoutFrame] and [ConsumeFanout].

// Mesh protocol constants.
const (
	// MeshProtocolVersion is the mesh protocol version this package
	// speaks, sent in PeerHello.Proto and NodeMeta.Proto. Nodes of a
	// cluster must speak the same one.
	MeshProtocolVersion uint16 = 1

	// MeshNonceLen is the length of PeerHello.Nonce.
	MeshNonceLen = 32

	// MeshProofLen is the length of a handshake proof, an HMAC-SHA256.
	MeshProofLen = 32

	// MaxNodeMetaLen is the longest NodeMeta encoding. memberlist, which
	// gossips it, panics on node metadata over 512 bytes, so whoever
	// encodes a NodeMeta checks its Size first.
	MaxNodeMetaLen = 512
)

// Labels of the handshake proofs, and the HKDF info of the handshake key.
// They are part of the protocol.
const (
	meshKeyInfo       = "covey mesh"
	meshAcceptorLabel = "covey-mesh-v1 acceptor"
	meshDialerLabel   = "covey-mesh-v1 dialer"
)

// MeshKey derives the handshake key K from the cluster's shared secret:
// HKDF-SHA256 with an empty salt and the info "covey mesh", 32 bytes. The
// error is crypto/hkdf's, which has none to report for these parameters
// outside FIPS 140-only mode.
func MeshKey(secret []byte) ([]byte, error) {
	return hkdf.Key(sha256.New, secret, nil, meshKeyInfo, 32)
}

// MeshAcceptorProof returns the acceptor's proof, PeerHelloReply.Proof:
// HMAC-SHA256(key, "covey-mesh-v1 acceptor" || dialerHello ||
// acceptorHello). dialerHello is the payload of the dialer's PeerHello
// request exactly as received; acceptorHello is the acceptor's own
// PeerHello encoding, which the PeerHelloReply payload starts with (all
// of it but the Proof field, its last 1+MeshProofLen bytes). Compare
// proofs with hmac.Equal.
func MeshAcceptorProof(key, dialerHello, acceptorHello []byte) []byte {
	return meshProof(key, meshAcceptorLabel, dialerHello, acceptorHello)
}

// MeshDialerProof returns the dialer's proof, PeerAuth.Proof: as
// [MeshAcceptorProof] with the label "covey-mesh-v1 dialer".
func MeshDialerProof(key, dialerHello, acceptorHello []byte) []byte {
	return meshProof(key, meshDialerLabel, dialerHello, acceptorHello)
}

// meshProof returns HMAC-SHA256(key, label || dialerHello ||
// acceptorHello).
func meshProof(key []byte, label string, dialerHello, acceptorHello []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(label))
	h.Write(dialerHello)
	h.Write(acceptorHello)
	return h.Sum(nil)
}

// consumeFixedBytes decodes a Bytes field that must hold exactly n bytes:
// another length is ErrBadValue. The result aliases b.
func consumeFixedBytes(b []byte, n int) ([]byte, int, error) {
	v, m, err := ConsumeBytes(b)
	if err != nil {
		return nil, 0, err
	}
	if len(v) != n {
		return nil, 0, ErrBadValue
	}
	return v, m, nil
}

// consumeNonce decodes a PeerHello nonce, MeshNonceLen bytes.
func consumeNonce(b []byte) ([]byte, int, error) { return consumeFixedBytes(b, MeshNonceLen) }

// consumeProof decodes a handshake proof, MeshProofLen bytes.
func consumeProof(b []byte) ([]byte, int, error) { return consumeFixedBytes(b, MeshProofLen) }

// consumeUTF8 decodes a String field without copying it: the result is a
// sub-slice of b (capacity clipped), checked to be UTF-8 as ConsumeString
// checks.
func consumeUTF8(b []byte) ([]byte, int, error) {
	s, n, err := ConsumeBytes(b)
	if err != nil {
		return nil, 0, err
	}
	if !utf8.Valid(s) {
		return nil, 0, ErrBadUTF8
	}
	return s, n, nil
}

// Member is a session member as its node describes it to the session's
// owner: the user, its connection, its presence generation and its member
// data. The member's node is the link the message came on, never a field.
type Member struct {
	UID  string     // user ID
	SID  string     // connection ID on the member's node
	Gen  uint64     // the user's presence generation (PresenceClaimReply.Gen)
	Data []KeyValue // member data, encoded as Props
}

// minMemberSize is the smallest encoded Member: two empty strings, Gen and
// an empty list.
const minMemberSize = 11

// Append appends m's encoding to dst.
func (m *Member) Append(dst []byte) []byte {
	dst = AppendString(dst, m.UID)
	dst = AppendString(dst, m.SID)
	dst = AppendU64(dst, m.Gen)
	return AppendProps(dst, m.Data)
}

// Size returns the length of m's encoding.
func (m *Member) Size() int { return SizeString(m.UID) + SizeString(m.SID) + 8 + SizeProps(m.Data) }

// Consume decodes b, which must hold exactly one Member, into m.
func (m *Member) Consume(b []byte) error {
	r := reader{b: b}
	v := r.member()
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// member consumes the fields of a Member.
func (r *reader) member() Member {
	var v Member
	v.UID = field(r, ConsumeString)
	v.SID = field(r, ConsumeString)
	v.Gen = field(r, ConsumeU64)
	v.Data = field(r, ConsumeProps)
	return v
}

// PeerHello is the payload of the dialer's CmdPeerHello request, the first
// frame of a mesh connection, and the start of the acceptor's reply
// ([PeerHelloReply]): who the sender is.
type PeerHello struct {
	Proto      uint16 // the sender's MeshProtocolVersion
	Cluster    string // the cluster name; both ends must have the same
	Node       string // the sender's node name
	Boot       uint64 // the sender's boot ID, drawn at process start
	MaxPayload uint32 // the largest payload the sender accepts on this connection
	// Nonce is MeshNonceLen fresh random bytes. Consume refuses another
	// length with ErrBadValue; Append writes what is there. It aliases
	// the input of Consume.
	Nonce []byte
}

// Append appends m's encoding to dst.
func (m *PeerHello) Append(dst []byte) []byte {
	dst = AppendU16(dst, m.Proto)
	dst = AppendString(dst, m.Cluster)
	dst = AppendString(dst, m.Node)
	dst = AppendU64(dst, m.Boot)
	dst = AppendU32(dst, m.MaxPayload)
	return AppendBytes(dst, m.Nonce)
}

// Size returns the length of m's encoding.
func (m *PeerHello) Size() int {
	return 2 + SizeString(m.Cluster) + SizeString(m.Node) + 12 + SizeBytes(m.Nonce)
}

// Consume decodes b, which must hold exactly one PeerHello, into m.
func (m *PeerHello) Consume(b []byte) error {
	r := reader{b: b}
	v := r.peerHello()
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// peerHello consumes the fields of a PeerHello.
func (r *reader) peerHello() PeerHello {
	var v PeerHello
	v.Proto = field(r, ConsumeU16)
	v.Cluster = field(r, ConsumeString)
	v.Node = field(r, ConsumeString)
	v.Boot = field(r, ConsumeU64)
	v.MaxPayload = field(r, ConsumeU32)
	v.Nonce = field(r, consumeNonce)
	return v
}

// PeerHelloReply is the payload of the acceptor's reply to CmdPeerHello:
// its own PeerHello, then its proof ([MeshAcceptorProof]). The encoding of
// Hello, the part of the transcript the acceptor contributes, is the
// payload without its last 1+MeshProofLen bytes.
type PeerHelloReply struct {
	Hello PeerHello
	// Proof is MeshProofLen bytes; Consume refuses another length with
	// ErrBadValue. It aliases the input of Consume.
	Proof []byte
}

// Append appends m's encoding to dst.
func (m *PeerHelloReply) Append(dst []byte) []byte {
	dst = m.Hello.Append(dst)
	return AppendBytes(dst, m.Proof)
}

// Size returns the length of m's encoding.
func (m *PeerHelloReply) Size() int { return m.Hello.Size() + SizeBytes(m.Proof) }

// Consume decodes b, which must hold exactly one PeerHelloReply, into m.
func (m *PeerHelloReply) Consume(b []byte) error {
	r := reader{b: b}
	var v PeerHelloReply
	v.Hello = r.peerHello()
	v.Proof = field(&r, consumeProof)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// PeerAuth is the payload of the dialer's CmdPeerAuth request, the last
// step of the handshake. The reply is empty.
type PeerAuth struct {
	// Proof is [MeshDialerProof], MeshProofLen bytes; Consume refuses
	// another length with ErrBadValue. It aliases the input of Consume.
	Proof []byte
}

// Append appends m's encoding to dst.
func (m *PeerAuth) Append(dst []byte) []byte { return AppendBytes(dst, m.Proof) }

// Size returns the length of m's encoding.
func (m *PeerAuth) Size() int { return SizeBytes(m.Proof) }

// Consume decodes b, which must hold exactly one PeerAuth, into m.
func (m *PeerAuth) Consume(b []byte) error {
	r := reader{b: b}
	var v PeerAuth
	v.Proof = field(&r, consumeProof)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// PeerPing is the payload of a CmdPeerPing request, with the sender's
// load, and of its reply, with the replier's.
type PeerPing struct {
	Sessions uint32 // sessions the node owns
	Conns    uint32 // client connections the node holds
}

// Append appends m's encoding to dst.
func (m *PeerPing) Append(dst []byte) []byte {
	dst = AppendU32(dst, m.Sessions)
	return AppendU32(dst, m.Conns)
}

// Size returns the length of m's encoding.
func (m *PeerPing) Size() int { return 8 }

// Consume decodes b, which must hold exactly one PeerPing, into m.
func (m *PeerPing) Consume(b []byte) error {
	r := reader{b: b}
	var v PeerPing
	v.Sessions = field(&r, ConsumeU32)
	v.Conns = field(&r, ConsumeU32)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// Exec is the payload of a CmdExec request: a member's node asks the
// session's owner to run one session command for a user connected to it.
//
// There is no reply message: the reply to an Exec is a mesh reply frame
// (CmdExec, FlagReply, the request's Seq) whose Status is the command's
// status and whose payload is the command's reply payload, unchanged, as
// the owner would have sent them to a client of its own. The member's
// node relays both to the client as they are, except a mesh-only status
// ([Status.IsMesh]), which it acts on.
type Exec struct {
	SessionID string
	Epoch     uint32 // the session's epoch as the sender knows it
	Caller    Member // the user the command is run for
	// Op is the command: a session request of namespace 0 (0x0100-0x01FF),
	// whose request payload Payload is.
	Op Cmd
	// Payload is the client's request payload, unchanged. It aliases the
	// input of Consume.
	Payload []byte
}

// Append appends m's encoding to dst.
func (m *Exec) Append(dst []byte) []byte {
	dst = AppendString(dst, m.SessionID)
	dst = AppendU32(dst, m.Epoch)
	dst = m.Caller.Append(dst)
	dst = AppendU16(dst, uint16(m.Op))
	return AppendBytes(dst, m.Payload)
}

// Size returns the length of m's encoding.
func (m *Exec) Size() int {
	return SizeString(m.SessionID) + 4 + m.Caller.Size() + 2 + SizeBytes(m.Payload)
}

// Consume decodes b, which must hold exactly one Exec, into m.
func (m *Exec) Consume(b []byte) error {
	r := reader{b: b}
	var v Exec
	v.SessionID = field(&r, ConsumeString)
	v.Epoch = field(&r, ConsumeU32)
	v.Caller = r.member()
	v.Op = Cmd(field(&r, ConsumeU16))
	v.Payload = field(&r, ConsumeBytes)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// ExecView is an [Exec] decoded by [ConsumeExecView] without copying or
// allocating: its byte fields are sub-slices of the payload it was decoded
// from, valid as long as that payload is. It is the owner's fast path for
// the commands it runs at once (a broadcast); everything else is decoded
// with [Exec.Consume].
type ExecView struct {
	SessionID []byte // checked to be UTF-8
	Epoch     uint32
	UID, SID  []byte // the caller's; checked to be UTF-8
	Gen       uint64 // the caller's presence generation
	Op        Cmd
	Payload   []byte
}

// ConsumeExecView decodes b as an Exec whose caller carries no member data
// and reports whether it is one: false for an Exec with member data and
// for anything Exec.Consume would refuse (decode those with Exec.Consume,
// which says why). Where it reports true, Exec.Consume decodes the same
// fields.
func ConsumeExecView(b []byte) (ExecView, bool) {
	r := reader{b: b}
	var v ExecView
	v.SessionID = field(&r, consumeUTF8)
	v.Epoch = field(&r, ConsumeU32)
	v.UID = field(&r, consumeUTF8)
	v.SID = field(&r, consumeUTF8)
	v.Gen = field(&r, ConsumeU64)
	if r.err != nil || len(r.b) == 0 || r.b[0] != 0 { // a Props count of 0
		return ExecView{}, false
	}
	r.b = r.b[1:]
	v.Op = Cmd(field(&r, ConsumeU16))
	v.Payload = field(&r, ConsumeBytes)
	if r.done() != nil {
		return ExecView{}, false
	}
	return v, true
}

// Fanout is the payload of a CmdFanout push, from a session's owner to a
// node where members of the session are connected: deliver Frame to each
// of Targets connected here. Frame holds one or more complete client
// frames, already encoded (and compressed, if they are): the receiving
// node writes them as they are to each target's connection and does not
// decode them. A target not connected to the receiving node is skipped.
//
// Owners encode Fanouts with [AppendFanoutFrame] and nodes decode them
// with [ConsumeFanout], neither of which allocates; this type is for tests
// and tools.
type Fanout struct {
	SessionID string
	Epoch     uint32   // the session's epoch at the owner
	Targets   []string // user IDs
	Frame     []byte   // client frames; aliases the input of Consume
}

// Append appends m's encoding to dst.
func (m *Fanout) Append(dst []byte) []byte {
	return appendFanout(dst, m.SessionID, m.Epoch, m.Targets, m.Frame)
}

// appendFanout appends the encoding of a Fanout.
func appendFanout(dst []byte, sessionID string, epoch uint32, targets []string, frame []byte) []byte {
	dst = AppendString(dst, sessionID)
	dst = AppendU32(dst, epoch)
	dst = AppendStringList(dst, targets)
	return AppendBytes(dst, frame)
}

// Size returns the length of m's encoding. It does not allocate, so an
// owner can check a Fanout against the peer's MaxPayload (its
// PeerHello.MaxPayload) before it encodes it.
func (m *Fanout) Size() int { return fanoutSize(m.SessionID, m.Targets, m.Frame) }

// FanoutSize is the payload size of a Fanout of these fields: what
// [AppendFanoutFrame] writes after the header. It does not allocate.
func FanoutSize(sessionID string, targets []string, frame []byte) int {
	return fanoutSize(sessionID, targets, frame)
}

// fanoutSize returns the encoded size of a Fanout.
func fanoutSize(sessionID string, targets []string, frame []byte) int {
	return SizeString(sessionID) + 4 + SizeStringList(targets) + SizeBytes(frame)
}

// Consume decodes b, which must hold exactly one Fanout, into m.
func (m *Fanout) Consume(b []byte) error {
	r := reader{b: b}
	var v Fanout
	v.SessionID = field(&r, ConsumeString)
	v.Epoch = field(&r, ConsumeU32)
	v.Targets = field(&r, ConsumeStringList)
	v.Frame = field(&r, ConsumeBytes)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// AppendFanoutFrame appends a complete mesh push frame (Ver 0, CmdFanout,
// FlagPush, Seq 0, never compressed) whose payload is a Fanout, in one
// pass, and returns the extended slice. It allocates only to grow dst:
// BenchmarkAppendFanoutFrame and TestFanoutDoesNotAllocate hold it to 0
// allocations. The payload, Fanout{...}.Size(), must be at most the
// peer's MaxPayload; the caller checks.
func AppendFanoutFrame(dst []byte, sessionID string, epoch uint32, targets []string, frame []byte) []byte {
	dst = AppendHeader(dst, Header{
		Length: uint32(fanoutSize(sessionID, targets, frame)),
		Cmd:    CmdFanout,
		Flags:  FlagPush,
	})
	return appendFanout(dst, sessionID, epoch, targets, frame)
}

// FanoutView is a Fanout decoded by [ConsumeFanout] without copying or
// allocating: SessionID, Frame and every target are sub-slices of the
// payload it was decoded from, valid only as long as that payload is
// (for a frame from [Config.Split], until the connection's inbound buffer
// is reused). Copy what must be kept; a map lookup m[string(v.SessionID)]
// does not allocate.
type FanoutView struct {
	SessionID []byte // checked to be UTF-8
	Epoch     uint32
	Targets   Targets
	Frame     []byte
}

// Targets is the target list of a [FanoutView], still encoded. Take the
// user IDs one by one with Next; every one was checked by ConsumeFanout.
// A Targets is a cursor: copy it to iterate again.
type Targets struct {
	b []byte // the encoded strings, after the count
	n int    // strings left in b
}

// Len returns the number of targets left.
func (t *Targets) Len() int { return t.n }

// Next returns the next user ID, a UTF-8 sub-slice of the payload, and
// true; or nil and false when there is none left.
func (t *Targets) Next() ([]byte, bool) {
	if t.n == 0 {
		return nil, false
	}
	l, k := uint64(t.b[0]), 1
	if l >= 0x80 {
		l, k = binary.Uvarint(t.b) // checked by ConsumeFanout
	}
	end := k + int(l)
	s := t.b[k:end:end]
	t.b = t.b[end:]
	t.n--
	return s, true
}

// ConsumeFanout decodes b, which must hold exactly one Fanout, without
// allocating: the view aliases b. It checks all that [Fanout.Consume]
// checks (lengths, UTF-8, trailing bytes) and returns the same errors.
func ConsumeFanout(b []byte) (FanoutView, error) {
	var v FanoutView
	sid, n, err := consumeUTF8(b)
	if err != nil {
		return FanoutView{}, err
	}
	epoch, m, err := ConsumeU32(b[n:])
	if err != nil {
		return FanoutView{}, err
	}
	n += m
	count, m, err := consumeLen(b[n:], 1)
	if err != nil {
		return FanoutView{}, err
	}
	n += m
	// The member node runs this for every Fanout it gets, so the targets
	// are walked with a fast path for one-byte lengths and checked for
	// UTF-8 in one pass: BenchmarkConsumeFanout/targets=64 took 1.8 us
	// with ConsumeBytes and utf8.Valid per target, 0.64 us this way.
	start := n
	for range count {
		if n < len(b) && b[n] < 0x80 { // a length under 128, one byte
			if l := int(b[n]); l < len(b)-n {
				n += 1 + l
				continue
			}
			err = ErrShort
		} else {
			_, m, err = ConsumeBytes(b[n:])
			n += m
		}
		if err != nil {
			// Fanout.Consume stops at the first bad target: one of the
			// complete ones before, if one is not UTF-8.
			if checkUTF8List(b[start:n]) != nil {
				return FanoutView{}, ErrBadUTF8
			}
			return FanoutView{}, err
		}
	}
	if err := checkUTF8List(b[start:n]); err != nil {
		return FanoutView{}, err
	}
	v.Targets = Targets{b: b[start:n:n], n: count}
	frame, m, err := ConsumeBytes(b[n:])
	if err != nil {
		return FanoutView{}, err
	}
	if n+m != len(b) {
		return FanoutView{}, ErrTrailing
	}
	v.SessionID, v.Epoch, v.Frame = sid, epoch, frame
	return v, nil
}

// checkUTF8List returns ErrBadUTF8 if a string of list, complete encoded
// Strings one after the other, is not UTF-8. The list is UTF-8 if every
// byte of it is ASCII, length prefixes included (a prefix byte from 0x80
// could complete a sequence begun in the string before it); otherwise
// each string is checked.
func checkUTF8List(list []byte) error {
	if isASCII(list) {
		return nil
	}
	for len(list) > 0 {
		_, m, err := consumeUTF8(list)
		if err != nil {
			return err
		}
		list = list[m:]
	}
	return nil
}

// isASCII reports whether every byte of b is below 0x80.
func isASCII(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b)&0x8080808080808080 != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// RemovedReason says why a [Removed] member left its session. Values are
// part of the protocol: only append.
type RemovedReason uint8

// Removed reasons. Values are part of the protocol: only append.
const (
	RemovedLeft         RemovedReason = 0 // the user left
	RemovedKicked       RemovedReason = 1 // the owner kicked the user
	RemovedDeleted      RemovedReason = 2 // the session was deleted
	RemovedOwnerLost    RemovedReason = 3 // the owner node was lost or cut off
	RemovedDisconnected RemovedReason = 4 // reserved: not sent (PROTOCOL.md, Removed reasons)
)

// String returns the name of r in lower case, such as "kicked", or
// "reason(N)".
func (r RemovedReason) String() string {
	switch r {
	case RemovedLeft:
		return "left"
	case RemovedKicked:
		return "kicked"
	case RemovedDeleted:
		return "deleted"
	case RemovedOwnerLost:
		return "owner lost"
	case RemovedDisconnected:
		return "disconnected"
	}
	return "reason(" + strconv.Itoa(int(r)) + ")"
}

// Removed is the payload of a CmdRemoved push, from a session's owner to
// a member's node: UID is no longer a member of the session, so its node
// frees the user's place for a session of that type.
type Removed struct {
	SessionID string
	Type      uint8
	UID       string
	Reason    RemovedReason
}

// Append appends m's encoding to dst.
func (m *Removed) Append(dst []byte) []byte {
	dst = AppendString(dst, m.SessionID)
	dst = AppendU8(dst, m.Type)
	dst = AppendString(dst, m.UID)
	return AppendU8(dst, uint8(m.Reason))
}

// Size returns the length of m's encoding.
func (m *Removed) Size() int { return SizeString(m.SessionID) + 1 + SizeString(m.UID) + 1 }

// Consume decodes b, which must hold exactly one Removed, into m.
func (m *Removed) Consume(b []byte) error {
	r := reader{b: b}
	var v Removed
	v.SessionID = field(&r, ConsumeString)
	v.Type = field(&r, ConsumeU8)
	v.UID = field(&r, ConsumeString)
	v.Reason = RemovedReason(field(&r, ConsumeU8))
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// DeliverToUser is the payload of a CmdDeliverToUser request: write Frame,
// one or more complete client frames already encoded, to UID's connection
// on the receiving node. The reply is empty, or StatusUserNotFound if the
// user is not connected there.
type DeliverToUser struct {
	UID   string
	Frame []byte // client frames; aliases the input of Consume
}

// Append appends m's encoding to dst.
func (m *DeliverToUser) Append(dst []byte) []byte {
	dst = AppendString(dst, m.UID)
	return AppendBytes(dst, m.Frame)
}

// Size returns the length of m's encoding.
func (m *DeliverToUser) Size() int { return SizeString(m.UID) + SizeBytes(m.Frame) }

// Consume decodes b, which must hold exactly one DeliverToUser, into m.
func (m *DeliverToUser) Consume(b []byte) error {
	r := reader{b: b}
	var v DeliverToUser
	v.UID = field(&r, ConsumeString)
	v.Frame = field(&r, ConsumeBytes)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// PresenceClaim is the payload of a CmdPresenceClaim request, from the
// node where a user signed in to the user's presence directory node: the
// user is now connected to the sender, with connection SID.
type PresenceClaim struct {
	UID string
	SID string
}

// Append appends m's encoding to dst.
func (m *PresenceClaim) Append(dst []byte) []byte {
	dst = AppendString(dst, m.UID)
	return AppendString(dst, m.SID)
}

// Size returns the length of m's encoding.
func (m *PresenceClaim) Size() int { return SizeString(m.UID) + SizeString(m.SID) }

// Consume decodes b, which must hold exactly one PresenceClaim, into m.
func (m *PresenceClaim) Consume(b []byte) error {
	r := reader{b: b}
	var v PresenceClaim
	v.UID = field(&r, ConsumeString)
	v.SID = field(&r, ConsumeString)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// PresenceClaimReply is the payload of the reply to CmdPresenceClaim: the
// claim's generation, and the record it replaced (PrevNode "" and PrevGen
// 0 if there was none).
type PresenceClaimReply struct {
	Gen      uint64
	PrevNode string
	PrevSID  string
	PrevGen  uint64
}

// Append appends m's encoding to dst.
func (m *PresenceClaimReply) Append(dst []byte) []byte {
	dst = AppendU64(dst, m.Gen)
	dst = AppendString(dst, m.PrevNode)
	dst = AppendString(dst, m.PrevSID)
	return AppendU64(dst, m.PrevGen)
}

// Size returns the length of m's encoding.
func (m *PresenceClaimReply) Size() int {
	return 8 + SizeString(m.PrevNode) + SizeString(m.PrevSID) + 8
}

// Consume decodes b, which must hold exactly one PresenceClaimReply, into
// m.
func (m *PresenceClaimReply) Consume(b []byte) error {
	r := reader{b: b}
	var v PresenceClaimReply
	v.Gen = field(&r, ConsumeU64)
	v.PrevNode = field(&r, ConsumeString)
	v.PrevSID = field(&r, ConsumeString)
	v.PrevGen = field(&r, ConsumeU64)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// PresenceRelease is the payload of a CmdPresenceRelease push, from a
// user's node to its presence directory node: the connection of
// generation Gen closed. A directory whose record has another generation
// ignores it.
type PresenceRelease struct {
	UID string
	Gen uint64
}

// Append appends m's encoding to dst.
func (m *PresenceRelease) Append(dst []byte) []byte {
	dst = AppendString(dst, m.UID)
	return AppendU64(dst, m.Gen)
}

// Size returns the length of m's encoding.
func (m *PresenceRelease) Size() int { return SizeString(m.UID) + 8 }

// Consume decodes b, which must hold exactly one PresenceRelease, into m.
func (m *PresenceRelease) Consume(b []byte) error {
	r := reader{b: b}
	var v PresenceRelease
	v.UID = field(&r, ConsumeString)
	v.Gen = field(&r, ConsumeU64)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// PresenceLookup is the payload of a CmdPresenceLookup request to a
// user's presence directory node: where is UID connected? The reply is a
// PresenceLookupReply, or StatusUserNotFound.
type PresenceLookup struct {
	UID string
}

// Append appends m's encoding to dst.
func (m *PresenceLookup) Append(dst []byte) []byte { return AppendString(dst, m.UID) }

// Size returns the length of m's encoding.
func (m *PresenceLookup) Size() int { return SizeString(m.UID) }

// Consume decodes b, which must hold exactly one PresenceLookup, into m.
func (m *PresenceLookup) Consume(b []byte) error {
	r := reader{b: b}
	var v PresenceLookup
	v.UID = field(&r, ConsumeString)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// PresenceLookupReply is the payload of the reply to CmdPresenceLookup:
// the user's node, connection and generation.
type PresenceLookupReply struct {
	Node string
	SID  string
	Gen  uint64
}

// Append appends m's encoding to dst.
func (m *PresenceLookupReply) Append(dst []byte) []byte {
	dst = AppendString(dst, m.Node)
	dst = AppendString(dst, m.SID)
	return AppendU64(dst, m.Gen)
}

// Size returns the length of m's encoding.
func (m *PresenceLookupReply) Size() int { return SizeString(m.Node) + SizeString(m.SID) + 8 }

// Consume decodes b, which must hold exactly one PresenceLookupReply, into
// m.
func (m *PresenceLookupReply) Consume(b []byte) error {
	r := reader{b: b}
	var v PresenceLookupReply
	v.Node = field(&r, ConsumeString)
	v.SID = field(&r, ConsumeString)
	v.Gen = field(&r, ConsumeU64)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// UserTakeover is the payload of a CmdUserTakeover request, from the node
// where a user signed in again to the node of its previous connection:
// the user is now connected to the sender with generation Gen and
// connection NewSID; hand over its memberships.
type UserTakeover struct {
	UID    string
	Gen    uint64
	NewSID string
}

// Append appends m's encoding to dst.
func (m *UserTakeover) Append(dst []byte) []byte {
	dst = AppendString(dst, m.UID)
	dst = AppendU64(dst, m.Gen)
	return AppendString(dst, m.NewSID)
}

// Size returns the length of m's encoding.
func (m *UserTakeover) Size() int { return SizeString(m.UID) + 8 + SizeString(m.NewSID) }

// Consume decodes b, which must hold exactly one UserTakeover, into m.
func (m *UserTakeover) Consume(b []byte) error {
	r := reader{b: b}
	var v UserTakeover
	v.UID = field(&r, ConsumeString)
	v.Gen = field(&r, ConsumeU64)
	v.NewSID = field(&r, ConsumeString)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// UserTakeoverReply is the payload of the reply to CmdUserTakeover: the
// sessions the user is a member of, encoded as [UserSessionsReply] is (a
// uvarint count, then each SessionRef), which it is.
type UserTakeoverReply = UserSessionsReply

// NodeState is the state a node publishes in its [NodeMeta]. Values are
// part of the protocol: only append.
type NodeState uint8

// Node states. Values are part of the protocol: only append.
const (
	NodeAlive    NodeState = 0 // serving
	NodeDraining NodeState = 1 // moving its sessions and clients away; takes no new ones
	NodeLeaving  NodeState = 2 // about to leave the cluster
)

// String returns the name of s in lower case, such as "draining", or
// "state(N)".
func (s NodeState) String() string {
	switch s {
	case NodeAlive:
		return "alive"
	case NodeDraining:
		return "draining"
	case NodeLeaving:
		return "leaving"
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// NodeMeta is a node's metadata as gossiped by memberlist (its
// Delegate.NodeMeta), not a frame payload: the addresses other nodes and
// clients reach it at, its state and its boot ID.
//
// memberlist panics on metadata longer than 512 bytes, and Append, like
// every Append, writes whatever the fields hold: check Size against
// MaxNodeMetaLen before encoding. Consume refuses more than
// MaxNodeMetaLen bytes with ErrTooLarge.
type NodeMeta struct {
	Proto    uint16    // the node's MeshProtocolVersion
	MeshAddr string    // host:port of its mesh listener
	TCPAddr  string    // host:port of its client TCP listener
	KCPAddr  string    // host:port of its client KCP listener; "" if none
	State    NodeState // NodeAlive, NodeDraining or NodeLeaving; read an unknown value as not alive
	Boot     uint64    // the boot ID of the process, as in its PeerHello
}

// Append appends m's encoding to dst.
func (m *NodeMeta) Append(dst []byte) []byte {
	dst = AppendU16(dst, m.Proto)
	dst = AppendString(dst, m.MeshAddr)
	dst = AppendString(dst, m.TCPAddr)
	dst = AppendString(dst, m.KCPAddr)
	dst = AppendU8(dst, uint8(m.State))
	return AppendU64(dst, m.Boot)
}

// Size returns the length of m's encoding.
func (m *NodeMeta) Size() int {
	return 2 + SizeString(m.MeshAddr) + SizeString(m.TCPAddr) + SizeString(m.KCPAddr) + 9
}

// Consume decodes b, which must hold exactly one NodeMeta of at most
// MaxNodeMetaLen bytes, into m.
func (m *NodeMeta) Consume(b []byte) error {
	if len(b) > MaxNodeMetaLen {
		return ErrTooLarge
	}
	r := reader{b: b}
	var v NodeMeta
	v.Proto = field(&r, ConsumeU16)
	v.MeshAddr = field(&r, ConsumeString)
	v.TCPAddr = field(&r, ConsumeString)
	v.KCPAddr = field(&r, ConsumeString)
	v.State = NodeState(field(&r, ConsumeU8))
	v.Boot = field(&r, ConsumeU64)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}
