package wire

// Exec operations beyond the client commands. An Exec's Op is either a
// client command of namespace 0 (its Payload that command's request
// payload, unchanged) or one of these, which only the mesh sends.
const (
	// OpJoinHeld asks the owner what a Join (OpAcceptHeld: AcceptInvite)
	// of the session in Payload (a SessionRef) would answer, without
	// joining: the caller's node found the user already in a session of
	// that type. The reply's status is that answer.
	OpJoinHeld   Cmd = 0xF101
	OpAcceptHeld Cmd = 0xF102
	// OpDisconnect removes the caller, connected to the sending node,
	// from the session in Payload (a SessionRef), as on a disconnect.
	// It is sent with seq 0: no reply.
	OpDisconnect Cmd = 0xF103
	// OpMemberMove tells the owner that the caller, a member of the
	// session in Payload (a SessionRef, then the String name of the node
	// it was connected to), is now connected to the sending node with
	// the caller's SID: a sign-in on another node took over the user.
	OpMemberMove Cmd = 0xF104
)

// Exec operations of the session API called by application code on a
// node that does not own the session (session.Table's methods by ID).
// Caller is the member the call is made as, or empty for none.
const (
	// OpAppBroadcast: payload AppBroadcast; reply empty.
	OpAppBroadcast Cmd = 0xF110
	// OpAppMessageTo: payload AppMessageTo; reply empty.
	OpAppMessageTo Cmd = 0xF111
	// OpAppKick: payload a KickRequest; the owner removes UserID as on a
	// kick. With a Caller, the caller must be a member (the reference's
	// KickFromSessionWithUserData). Reply empty.
	OpAppKick Cmd = 0xF112
	// OpAppDelete: payload empty; the owner deletes the session. Reply
	// empty.
	OpAppDelete Cmd = 0xF113
	// OpAppMemberData: payload a TypeRequest, the Caller a member; reply
	// NodeMemberDataReply (member data with each member's node).
	OpAppMemberData Cmd = 0xF114
)

// AppBroadcast is the payload of OpAppBroadcast: Table.Broadcast of Msg
// as a push of Ver/Cmd to every member of a session of type Type.
type AppBroadcast struct {
	Type uint8
	Ver  uint8
	Cmd  Cmd
	Msg  []byte
}

// Append appends m's encoding to dst.
func (m *AppBroadcast) Append(dst []byte) []byte {
	dst = AppendU8(dst, m.Type)
	dst = AppendU8(dst, m.Ver)
	dst = AppendU16(dst, uint16(m.Cmd))
	return AppendBytes(dst, m.Msg)
}

// Consume decodes m from exactly b; Msg aliases b.
func (m *AppBroadcast) Consume(b []byte) error {
	r := reader{b: b}
	var v AppBroadcast
	v.Type = field(&r, ConsumeU8)
	v.Ver = field(&r, ConsumeU8)
	v.Cmd = Cmd(field(&r, ConsumeU16))
	v.Msg = field(&r, ConsumeBytes)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// AppMessageTo is the payload of OpAppMessageTo: Table.MessageTo of Msg
// as a push of Ver/Cmd to Recipients, members of a session of type Type.
type AppMessageTo struct {
	Type       uint8
	Sender     string
	Recipients []string
	Ver        uint8
	Cmd        Cmd
	Msg        []byte
}

// Append appends m's encoding to dst.
func (m *AppMessageTo) Append(dst []byte) []byte {
	dst = AppendU8(dst, m.Type)
	dst = AppendString(dst, m.Sender)
	dst = AppendStringList(dst, m.Recipients)
	dst = AppendU8(dst, m.Ver)
	dst = AppendU16(dst, uint16(m.Cmd))
	return AppendBytes(dst, m.Msg)
}

// Consume decodes m from exactly b; Msg aliases b.
func (m *AppMessageTo) Consume(b []byte) error {
	r := reader{b: b}
	var v AppMessageTo
	v.Type = field(&r, ConsumeU8)
	v.Sender = field(&r, ConsumeString)
	v.Recipients = field(&r, ConsumeStringList)
	v.Ver = field(&r, ConsumeU8)
	v.Cmd = Cmd(field(&r, ConsumeU16))
	v.Msg = field(&r, ConsumeBytes)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// NodeMemberData is one member of a NodeMemberDataReply.
type NodeMemberData struct {
	UserID string
	SID    string
	Node   string // the node the member is connected to
	Data   []KeyValue
}

// NodeMemberDataReply is the reply of OpAppMemberData: every member in
// join order, with its node.
type NodeMemberDataReply struct {
	Members []NodeMemberData
}

// Append appends m's encoding to dst.
func (m *NodeMemberDataReply) Append(dst []byte) []byte {
	dst = AppendUvarint(dst, uint64(len(m.Members)))
	for i := range m.Members {
		d := &m.Members[i]
		dst = AppendString(dst, d.UserID)
		dst = AppendString(dst, d.SID)
		dst = AppendString(dst, d.Node)
		dst = AppendProps(dst, d.Data)
	}
	return dst
}

// Consume decodes m from exactly b.
func (m *NodeMemberDataReply) Consume(b []byte) error {
	r := reader{b: b}
	n := field(&r, ConsumeUvarint)
	if r.err == nil && n > uint64(len(r.b))/4 { // each member takes at least 4 bytes
		return ErrShort
	}
	var v NodeMemberDataReply
	if n > 0 {
		v.Members = make([]NodeMemberData, 0, n)
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		var d NodeMemberData
		d.UserID = field(&r, ConsumeString)
		d.SID = field(&r, ConsumeString)
		d.Node = field(&r, ConsumeString)
		d.Data = field(&r, ConsumeProps)
		v.Members = append(v.Members, d)
	}
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// Size returns the length of m's encoding.
func (m *AppBroadcast) Size() int { return 1 + 1 + 2 + SizeBytes(m.Msg) }

// Size returns the length of m's encoding.
func (m *AppMessageTo) Size() int {
	return 1 + SizeString(m.Sender) + SizeStringList(m.Recipients) + 1 + 2 + SizeBytes(m.Msg)
}

// Size returns the length of m's encoding.
func (m *NodeMemberDataReply) Size() int {
	n := SizeUvarint(uint64(len(m.Members)))
	for i := range m.Members {
		d := &m.Members[i]
		n += SizeString(d.UserID) + SizeString(d.SID) + SizeString(d.Node) + SizeProps(d.Data)
	}
	return n
}
