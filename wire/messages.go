package wire

// Payloads of the built-in commands (namespace 0). Each message has
// Append, which appends its encoding to dst and returns the extended slice
// (allocating only to grow dst), Size, the length Append adds, and Consume,
// which decodes a whole payload: bytes left after the last field are
// ErrTrailing. Consume leaves the message unchanged when it fails. Strings
// are copied out of the input; []byte fields (Msg) are sub-slices of it,
// valid as long as the input is. Fields are encoded in declaration order;
// "Type" is always the session type, one byte. PROTOCOL.md shows each
// layout with a hex example.

// reader consumes message fields in order. The first error sticks and
// makes later reads return zero values.
type reader struct {
	b   []byte
	err error
}

// field consumes one field from r with consume.
func field[T any](r *reader, consume func([]byte) (T, int, error)) T {
	var zero T
	if r.err != nil {
		return zero
	}
	v, n, err := consume(r.b)
	if err != nil {
		r.err = err
		return zero
	}
	r.b = r.b[n:]
	return v
}

// done returns the first error, or ErrTrailing if input is left.
func (r *reader) done() error {
	if r.err == nil && len(r.b) != 0 {
		return ErrTrailing
	}
	return r.err
}

// SignInRequest is the payload of a CmdSignIn request. Its first four
// bytes, the version range, keep their place in every protocol version, so
// that any server can read them before it knows how to read the rest.
// Exactly one of Token and UserID is set: Token in token mode, UserID in
// development mode (the server refuses the other with StatusAuthFailed;
// the codec does not check).
type SignInRequest struct {
	// MinVersion and MaxVersion are the lowest and highest protocol
	// versions the client speaks (see [ProtocolVersion]); the server
	// picks the highest version in the range that it also speaks.
	MinVersion uint16
	MaxVersion uint16
	Token      string
	UserID     string
}

// Append appends m's encoding to dst.
func (m *SignInRequest) Append(dst []byte) []byte {
	dst = AppendU16(dst, m.MinVersion)
	dst = AppendU16(dst, m.MaxVersion)
	dst = AppendString(dst, m.Token)
	return AppendString(dst, m.UserID)
}

// Size returns the length of m's encoding.
func (m *SignInRequest) Size() int { return 4 + SizeString(m.Token) + SizeString(m.UserID) }

// Consume decodes b, which must hold exactly one SignInRequest, into m.
func (m *SignInRequest) Consume(b []byte) error {
	r := reader{b: b}
	var v SignInRequest
	v.MinVersion = field(&r, ConsumeU16)
	v.MaxVersion = field(&r, ConsumeU16)
	v.Token = field(&r, ConsumeString)
	v.UserID = field(&r, ConsumeString)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// SignInReply is the payload of the reply to a successful CmdSignIn. Its
// first two bytes, the version chosen, keep their place in every protocol
// version.
type SignInReply struct {
	Version         uint16 // the protocol version the connection now speaks
	UserID          string // the authenticated user
	SID             string // the server-assigned connection ID
	HeartbeatMillis uint32 // the interval at which the client pings
	// MaxPayload is the largest payload the server accepts, and the
	// largest it sends: no frame from the server has a longer payload.
	MaxPayload uint32
	// MaxMessage is the largest Msg a Broadcast, MessageTo or Invite
	// accepts: [MaxMessageFor] of MaxPayload.
	MaxMessage uint32
}

// Append appends m's encoding to dst.
func (m *SignInReply) Append(dst []byte) []byte {
	dst = AppendU16(dst, m.Version)
	dst = AppendString(dst, m.UserID)
	dst = AppendString(dst, m.SID)
	dst = AppendU32(dst, m.HeartbeatMillis)
	dst = AppendU32(dst, m.MaxPayload)
	return AppendU32(dst, m.MaxMessage)
}

// Size returns the length of m's encoding.
func (m *SignInReply) Size() int { return 2 + SizeString(m.UserID) + SizeString(m.SID) + 12 }

// Consume decodes b, which must hold exactly one SignInReply, into m.
func (m *SignInReply) Consume(b []byte) error {
	r := reader{b: b}
	var v SignInReply
	v.Version = field(&r, ConsumeU16)
	v.UserID = field(&r, ConsumeString)
	v.SID = field(&r, ConsumeString)
	v.HeartbeatMillis = field(&r, ConsumeU32)
	v.MaxPayload = field(&r, ConsumeU32)
	v.MaxMessage = field(&r, ConsumeU32)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// Bye is the payload of a CmdBye push: the server is closing the
// connection for the given reason (StatusSlowConsumer, StatusReplaced,
// StatusShuttingDown, ...) and a human-readable explanation.
type Bye struct {
	Status Status
	Reason string
}

// Append appends m's encoding to dst.
func (m *Bye) Append(dst []byte) []byte {
	dst = AppendU16(dst, uint16(m.Status))
	return AppendString(dst, m.Reason)
}

// Size returns the length of m's encoding.
func (m *Bye) Size() int { return 2 + SizeString(m.Reason) }

// Consume decodes b, which must hold exactly one Bye, into m.
func (m *Bye) Consume(b []byte) error {
	r := reader{b: b}
	var v Bye
	v.Status = Status(field(&r, ConsumeU16))
	v.Reason = field(&r, ConsumeString)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// CreateFlags are the options of a [CreateRequest], a bit set.
type CreateFlags uint8

// Create options. Values are part of the protocol: only append.
const (
	// CreateQuiet creates a session whose members get no
	// PropertiesChanged pushes.
	CreateQuiet CreateFlags = 0x01

	createFlagsDefined = CreateQuiet
)

// Valid reports whether f sets only defined bits.
func (f CreateFlags) Valid() bool { return f&^createFlagsDefined == 0 }

// CreateRequest is the payload of a CmdCreate request.
type CreateRequest struct {
	Type       uint8
	MaxMembers uint16      // more than 1
	TTLSeconds uint16      // how long the session survives empty; 0 for the server default
	Flags      CreateFlags // options; undefined bits are refused with StatusBadRequest
	Props      []KeyValue  // initial properties
}

// Append appends m's encoding to dst.
func (m *CreateRequest) Append(dst []byte) []byte {
	dst = AppendU8(dst, m.Type)
	dst = AppendU16(dst, m.MaxMembers)
	dst = AppendU16(dst, m.TTLSeconds)
	dst = AppendU8(dst, uint8(m.Flags))
	return AppendProps(dst, m.Props)
}

// Size returns the length of m's encoding.
func (m *CreateRequest) Size() int { return 6 + SizeProps(m.Props) }

// Consume decodes b, which must hold exactly one CreateRequest, into m.
func (m *CreateRequest) Consume(b []byte) error {
	r := reader{b: b}
	var v CreateRequest
	v.Type = field(&r, ConsumeU8)
	v.MaxMembers = field(&r, ConsumeU16)
	v.TTLSeconds = field(&r, ConsumeU16)
	v.Flags = CreateFlags(field(&r, ConsumeU8))
	v.Props = field(&r, ConsumeProps)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// CreateReply is the payload of the reply to a successful CmdCreate.
type CreateReply struct {
	SessionID string
}

// Append appends m's encoding to dst.
func (m *CreateReply) Append(dst []byte) []byte { return AppendString(dst, m.SessionID) }

// Size returns the length of m's encoding.
func (m *CreateReply) Size() int { return SizeString(m.SessionID) }

// Consume decodes b, which must hold exactly one CreateReply, into m.
func (m *CreateReply) Consume(b []byte) error {
	r := reader{b: b}
	var v CreateReply
	v.SessionID = field(&r, ConsumeString)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// SessionRef names a session: the payload of CmdJoin, CmdLeave and
// CmdAcceptInvite requests, and the element of [UserSessionsReply].
type SessionRef struct {
	Type      uint8
	SessionID string
}

// Append appends m's encoding to dst.
func (m *SessionRef) Append(dst []byte) []byte {
	dst = AppendU8(dst, m.Type)
	return AppendString(dst, m.SessionID)
}

// Size returns the length of m's encoding.
func (m *SessionRef) Size() int { return 1 + SizeString(m.SessionID) }

// Consume decodes b, which must hold exactly one SessionRef, into m.
func (m *SessionRef) Consume(b []byte) error {
	r := reader{b: b}
	v := r.sessionRef()
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// sessionRef consumes the fields of a SessionRef.
func (r *reader) sessionRef() SessionRef {
	var v SessionRef
	v.Type = field(r, ConsumeU8)
	v.SessionID = field(r, ConsumeString)
	return v
}

// TypeRequest is the payload of requests that only name the session type
// of the caller's session: CmdGetAllProperties, CmdGetMemberIDs,
// CmdGetMemberSIDs, CmdGetMemberData and CmdIsOwner.
type TypeRequest struct {
	Type uint8
}

// Append appends m's encoding to dst.
func (m *TypeRequest) Append(dst []byte) []byte { return AppendU8(dst, m.Type) }

// Size returns the length of m's encoding.
func (m *TypeRequest) Size() int { return 1 }

// Consume decodes b, which must hold exactly one TypeRequest, into m.
func (m *TypeRequest) Consume(b []byte) error {
	r := reader{b: b}
	var v TypeRequest
	v.Type = field(&r, ConsumeU8)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// KickRequest is the payload of a CmdKick request.
type KickRequest struct {
	Type   uint8
	UserID string // the member to kick
}

// Append appends m's encoding to dst.
func (m *KickRequest) Append(dst []byte) []byte {
	dst = AppendU8(dst, m.Type)
	return AppendString(dst, m.UserID)
}

// Size returns the length of m's encoding.
func (m *KickRequest) Size() int { return 1 + SizeString(m.UserID) }

// Consume decodes b, which must hold exactly one KickRequest, into m.
func (m *KickRequest) Consume(b []byte) error {
	r := reader{b: b}
	var v KickRequest
	v.Type = field(&r, ConsumeU8)
	v.UserID = field(&r, ConsumeString)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// BroadcastRequest is the payload of a CmdBroadcast request: Msg goes to
// every member of the caller's session of this type.
type BroadcastRequest struct {
	Type uint8
	Msg  []byte // aliases the input of Consume
}

// Append appends m's encoding to dst.
func (m *BroadcastRequest) Append(dst []byte) []byte {
	dst = AppendU8(dst, m.Type)
	return AppendBytes(dst, m.Msg)
}

// Size returns the length of m's encoding.
func (m *BroadcastRequest) Size() int { return 1 + SizeBytes(m.Msg) }

// Consume decodes b, which must hold exactly one BroadcastRequest, into m.
func (m *BroadcastRequest) Consume(b []byte) error {
	r := reader{b: b}
	var v BroadcastRequest
	v.Type = field(&r, ConsumeU8)
	v.Msg = field(&r, ConsumeBytes)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// MessageToRequest is the payload of a CmdMessageTo request: Msg goes to
// the listed members of the caller's session of this type.
type MessageToRequest struct {
	Type       uint8
	Recipients []string // user IDs
	Msg        []byte   // aliases the input of Consume
}

// Append appends m's encoding to dst.
func (m *MessageToRequest) Append(dst []byte) []byte {
	dst = AppendU8(dst, m.Type)
	dst = AppendStringList(dst, m.Recipients)
	return AppendBytes(dst, m.Msg)
}

// Size returns the length of m's encoding.
func (m *MessageToRequest) Size() int {
	return 1 + SizeStringList(m.Recipients) + SizeBytes(m.Msg)
}

// Consume decodes b, which must hold exactly one MessageToRequest, into m.
func (m *MessageToRequest) Consume(b []byte) error {
	r := reader{b: b}
	var v MessageToRequest
	v.Type = field(&r, ConsumeU8)
	v.Recipients = field(&r, ConsumeStringList)
	v.Msg = field(&r, ConsumeBytes)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// InviteRequest is the payload of a CmdInvite request: invite Targets to
// the caller's session of this type. Ver, Cmd and Msg are the
// application's invite message, delivered in the [InvitePush].
type InviteRequest struct {
	Type       uint8
	Targets    []string // user IDs
	Ver        uint8
	Cmd        Cmd
	TTLSeconds uint16 // how long the invite stays valid; 0 for the server default
	Msg        []byte // aliases the input of Consume
}

// Append appends m's encoding to dst.
func (m *InviteRequest) Append(dst []byte) []byte {
	dst = AppendU8(dst, m.Type)
	dst = AppendStringList(dst, m.Targets)
	dst = AppendU8(dst, m.Ver)
	dst = AppendU16(dst, uint16(m.Cmd))
	dst = AppendU16(dst, m.TTLSeconds)
	return AppendBytes(dst, m.Msg)
}

// Size returns the length of m's encoding.
func (m *InviteRequest) Size() int {
	return 1 + SizeStringList(m.Targets) + 5 + SizeBytes(m.Msg)
}

// Consume decodes b, which must hold exactly one InviteRequest, into m.
func (m *InviteRequest) Consume(b []byte) error {
	r := reader{b: b}
	var v InviteRequest
	v.Type = field(&r, ConsumeU8)
	v.Targets = field(&r, ConsumeStringList)
	v.Ver = field(&r, ConsumeU8)
	v.Cmd = Cmd(field(&r, ConsumeU16))
	v.TTLSeconds = field(&r, ConsumeU16)
	v.Msg = field(&r, ConsumeBytes)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// PropertyKeyRequest is the payload of a CmdGetProperty request.
type PropertyKeyRequest struct {
	Type uint8
	Key  string
}

// Append appends m's encoding to dst.
func (m *PropertyKeyRequest) Append(dst []byte) []byte {
	dst = AppendU8(dst, m.Type)
	return AppendString(dst, m.Key)
}

// Size returns the length of m's encoding.
func (m *PropertyKeyRequest) Size() int { return 1 + SizeString(m.Key) }

// Consume decodes b, which must hold exactly one PropertyKeyRequest, into
// m.
func (m *PropertyKeyRequest) Consume(b []byte) error {
	r := reader{b: b}
	var v PropertyKeyRequest
	v.Type = field(&r, ConsumeU8)
	v.Key = field(&r, ConsumeString)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// PropertyKeysRequest is the payload of a CmdGetProperties request.
type PropertyKeysRequest struct {
	Type uint8
	Keys []string
}

// Append appends m's encoding to dst.
func (m *PropertyKeysRequest) Append(dst []byte) []byte {
	dst = AppendU8(dst, m.Type)
	return AppendStringList(dst, m.Keys)
}

// Size returns the length of m's encoding.
func (m *PropertyKeysRequest) Size() int { return 1 + SizeStringList(m.Keys) }

// Consume decodes b, which must hold exactly one PropertyKeysRequest, into
// m.
func (m *PropertyKeysRequest) Consume(b []byte) error {
	r := reader{b: b}
	var v PropertyKeysRequest
	v.Type = field(&r, ConsumeU8)
	v.Keys = field(&r, ConsumeStringList)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// SetPropertyRequest is the payload of CmdSetProperty and
// CmdSetPropertyIfNotExists requests.
type SetPropertyRequest struct {
	Type  uint8
	Key   string
	Value Value
}

// Append appends m's encoding to dst.
func (m *SetPropertyRequest) Append(dst []byte) []byte {
	dst = AppendU8(dst, m.Type)
	dst = AppendString(dst, m.Key)
	return AppendValue(dst, m.Value)
}

// Size returns the length of m's encoding.
func (m *SetPropertyRequest) Size() int { return 1 + SizeString(m.Key) + SizeValue(m.Value) }

// Consume decodes b, which must hold exactly one SetPropertyRequest, into
// m.
func (m *SetPropertyRequest) Consume(b []byte) error {
	r := reader{b: b}
	var v SetPropertyRequest
	v.Type = field(&r, ConsumeU8)
	v.Key = field(&r, ConsumeString)
	v.Value = field(&r, ConsumeValue)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// SetPropertiesRequest is the payload of a CmdSetProperties request.
type SetPropertiesRequest struct {
	Type  uint8
	Props []KeyValue
}

// Append appends m's encoding to dst.
func (m *SetPropertiesRequest) Append(dst []byte) []byte {
	dst = AppendU8(dst, m.Type)
	return AppendProps(dst, m.Props)
}

// Size returns the length of m's encoding.
func (m *SetPropertiesRequest) Size() int { return 1 + SizeProps(m.Props) }

// Consume decodes b, which must hold exactly one SetPropertiesRequest, into
// m.
func (m *SetPropertiesRequest) Consume(b []byte) error {
	r := reader{b: b}
	var v SetPropertiesRequest
	v.Type = field(&r, ConsumeU8)
	v.Props = field(&r, ConsumeProps)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// IncrPropertyRequest is the payload of a CmdIncrProperty request. Delta
// is sent as the 8 bytes of its two's complement.
type IncrPropertyRequest struct {
	Type  uint8
	Key   string
	Delta int64
}

// Append appends m's encoding to dst.
func (m *IncrPropertyRequest) Append(dst []byte) []byte {
	dst = AppendU8(dst, m.Type)
	dst = AppendString(dst, m.Key)
	return AppendU64(dst, uint64(m.Delta))
}

// Size returns the length of m's encoding.
func (m *IncrPropertyRequest) Size() int { return 1 + SizeString(m.Key) + 8 }

// Consume decodes b, which must hold exactly one IncrPropertyRequest, into
// m.
func (m *IncrPropertyRequest) Consume(b []byte) error {
	r := reader{b: b}
	var v IncrPropertyRequest
	v.Type = field(&r, ConsumeU8)
	v.Key = field(&r, ConsumeString)
	v.Delta = int64(field(&r, ConsumeU64))
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// CompareAndSetRequest is the payload of a CmdCompareAndSetProperty
// request: set Key to New if it currently holds Old or, when HasOld is
// false, if it does not exist. Old is encoded only when HasOld is true.
type CompareAndSetRequest struct {
	Type   uint8
	Key    string
	HasOld bool
	Old    Value // ignored unless HasOld
	New    Value
}

// Append appends m's encoding to dst.
func (m *CompareAndSetRequest) Append(dst []byte) []byte {
	dst = AppendU8(dst, m.Type)
	dst = AppendString(dst, m.Key)
	dst = AppendBool(dst, m.HasOld)
	if m.HasOld {
		dst = AppendValue(dst, m.Old)
	}
	return AppendValue(dst, m.New)
}

// Size returns the length of m's encoding.
func (m *CompareAndSetRequest) Size() int {
	n := 1 + SizeString(m.Key) + 1 + SizeValue(m.New)
	if m.HasOld {
		n += SizeValue(m.Old)
	}
	return n
}

// Consume decodes b, which must hold exactly one CompareAndSetRequest, into
// m.
func (m *CompareAndSetRequest) Consume(b []byte) error {
	r := reader{b: b}
	var v CompareAndSetRequest
	v.Type = field(&r, ConsumeU8)
	v.Key = field(&r, ConsumeString)
	v.HasOld = field(&r, ConsumeBool)
	if v.HasOld {
		v.Old = field(&r, ConsumeValue)
	}
	v.New = field(&r, ConsumeValue)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// PropertyReply is the payload of the reply to CmdGetProperty and
// CmdIncrProperty. Value is encoded only when Exists is true.
type PropertyReply struct {
	Exists bool
	Value  Value // ignored unless Exists
}

// Append appends m's encoding to dst.
func (m *PropertyReply) Append(dst []byte) []byte {
	dst = AppendBool(dst, m.Exists)
	if m.Exists {
		dst = AppendValue(dst, m.Value)
	}
	return dst
}

// Size returns the length of m's encoding.
func (m *PropertyReply) Size() int {
	if m.Exists {
		return 1 + SizeValue(m.Value)
	}
	return 1
}

// Consume decodes b, which must hold exactly one PropertyReply, into m.
func (m *PropertyReply) Consume(b []byte) error {
	r := reader{b: b}
	var v PropertyReply
	v.Exists = field(&r, ConsumeBool)
	if v.Exists {
		v.Value = field(&r, ConsumeValue)
	}
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// PropsReply is the payload of the reply to CmdGetProperties and
// CmdGetAllProperties. Keys that do not exist are left out.
type PropsReply struct {
	Props []KeyValue
}

// Append appends m's encoding to dst.
func (m *PropsReply) Append(dst []byte) []byte { return AppendProps(dst, m.Props) }

// Size returns the length of m's encoding.
func (m *PropsReply) Size() int { return SizeProps(m.Props) }

// Consume decodes b, which must hold exactly one PropsReply, into m.
func (m *PropsReply) Consume(b []byte) error {
	r := reader{b: b}
	var v PropsReply
	v.Props = field(&r, ConsumeProps)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// StringsReply is the payload of the reply to CmdGetMemberIDs and
// CmdGetMemberSIDs.
type StringsReply struct {
	Items []string
}

// Append appends m's encoding to dst.
func (m *StringsReply) Append(dst []byte) []byte { return AppendStringList(dst, m.Items) }

// Size returns the length of m's encoding.
func (m *StringsReply) Size() int { return SizeStringList(m.Items) }

// Consume decodes b, which must hold exactly one StringsReply, into m.
func (m *StringsReply) Consume(b []byte) error {
	r := reader{b: b}
	var v StringsReply
	v.Items = field(&r, ConsumeStringList)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// BoolReply is the payload of the reply to CmdIsOwner.
type BoolReply struct {
	Value bool
}

// Append appends m's encoding to dst.
func (m *BoolReply) Append(dst []byte) []byte { return AppendBool(dst, m.Value) }

// Size returns the length of m's encoding.
func (m *BoolReply) Size() int { return 1 }

// Consume decodes b, which must hold exactly one BoolReply, into m.
func (m *BoolReply) Consume(b []byte) error {
	r := reader{b: b}
	var v BoolReply
	v.Value = field(&r, ConsumeBool)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// MemberData is one member in a [MemberDataReply]: its user ID, connection
// ID and user data.
type MemberData struct {
	UserID string
	SID    string
	Data   []KeyValue
}

// minMemberDataSize is the smallest encoded MemberData: two empty strings
// and an empty list.
const minMemberDataSize = 3

// Append appends m's encoding to dst.
func (m *MemberData) Append(dst []byte) []byte {
	dst = AppendString(dst, m.UserID)
	dst = AppendString(dst, m.SID)
	return AppendProps(dst, m.Data)
}

// Size returns the length of m's encoding.
func (m *MemberData) Size() int { return SizeString(m.UserID) + SizeString(m.SID) + SizeProps(m.Data) }

// Consume decodes b, which must hold exactly one MemberData, into m.
func (m *MemberData) Consume(b []byte) error {
	r := reader{b: b}
	v := r.memberData()
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// memberData consumes the fields of a MemberData.
func (r *reader) memberData() MemberData {
	var v MemberData
	v.UserID = field(r, ConsumeString)
	v.SID = field(r, ConsumeString)
	v.Data = field(r, ConsumeProps)
	return v
}

// MemberDataReply is the payload of the reply to CmdGetMemberData: a
// uvarint count, then each MemberData.
type MemberDataReply struct {
	Members []MemberData
}

// Append appends m's encoding to dst.
func (m *MemberDataReply) Append(dst []byte) []byte {
	dst = AppendUvarint(dst, uint64(len(m.Members)))
	for i := range m.Members {
		dst = m.Members[i].Append(dst)
	}
	return dst
}

// Size returns the length of m's encoding.
func (m *MemberDataReply) Size() int {
	n := SizeUvarint(uint64(len(m.Members)))
	for i := range m.Members {
		n += m.Members[i].Size()
	}
	return n
}

// Consume decodes b, which must hold exactly one MemberDataReply, into m.
// An empty list is nil.
func (m *MemberDataReply) Consume(b []byte) error {
	r := reader{b: b}
	var v MemberDataReply
	if count := r.count(minMemberDataSize); count > 0 {
		v.Members = make([]MemberData, count)
		for i := range v.Members {
			v.Members[i] = r.memberData()
		}
	}
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// count consumes a list count and checks it against the remaining input
// (each element takes at least minSize bytes), so that no list is
// allocated for elements that cannot be there.
func (r *reader) count(minSize int) int {
	if r.err != nil {
		return 0
	}
	c, n, err := consumeLen(r.b, minSize)
	if err != nil {
		r.err = err
		return 0
	}
	r.b = r.b[n:]
	return c
}

// SessionInfoRequest is the payload of a CmdGetSessionInfo request.
type SessionInfoRequest struct {
	SessionID string
}

// Append appends m's encoding to dst.
func (m *SessionInfoRequest) Append(dst []byte) []byte { return AppendString(dst, m.SessionID) }

// Size returns the length of m's encoding.
func (m *SessionInfoRequest) Size() int { return SizeString(m.SessionID) }

// Consume decodes b, which must hold exactly one SessionInfoRequest, into
// m.
func (m *SessionInfoRequest) Consume(b []byte) error {
	r := reader{b: b}
	var v SessionInfoRequest
	v.SessionID = field(&r, ConsumeString)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// SessionInfo is the payload of the reply to CmdGetSessionInfo.
type SessionInfo struct {
	SessionID      string
	Type           uint8
	CurrentMembers uint16
	MaxMembers     uint16
	MemberIDs      []string
	OwnerID        string
}

// Append appends m's encoding to dst.
func (m *SessionInfo) Append(dst []byte) []byte {
	dst = AppendString(dst, m.SessionID)
	dst = AppendU8(dst, m.Type)
	dst = AppendU16(dst, m.CurrentMembers)
	dst = AppendU16(dst, m.MaxMembers)
	dst = AppendStringList(dst, m.MemberIDs)
	return AppendString(dst, m.OwnerID)
}

// Size returns the length of m's encoding.
func (m *SessionInfo) Size() int {
	return SizeString(m.SessionID) + 5 + SizeStringList(m.MemberIDs) + SizeString(m.OwnerID)
}

// Consume decodes b, which must hold exactly one SessionInfo, into m.
func (m *SessionInfo) Consume(b []byte) error {
	r := reader{b: b}
	var v SessionInfo
	v.SessionID = field(&r, ConsumeString)
	v.Type = field(&r, ConsumeU8)
	v.CurrentMembers = field(&r, ConsumeU16)
	v.MaxMembers = field(&r, ConsumeU16)
	v.MemberIDs = field(&r, ConsumeStringList)
	v.OwnerID = field(&r, ConsumeString)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// UserSessionsReply is the payload of the reply to CmdGetUserSessions: a
// uvarint count, then each session the caller is in as a SessionRef.
type UserSessionsReply struct {
	Sessions []SessionRef
}

// minSessionRefSize is the smallest encoded SessionRef: a type byte and an
// empty string.
const minSessionRefSize = 2

// Append appends m's encoding to dst.
func (m *UserSessionsReply) Append(dst []byte) []byte {
	dst = AppendUvarint(dst, uint64(len(m.Sessions)))
	for i := range m.Sessions {
		dst = m.Sessions[i].Append(dst)
	}
	return dst
}

// Size returns the length of m's encoding.
func (m *UserSessionsReply) Size() int {
	n := SizeUvarint(uint64(len(m.Sessions)))
	for i := range m.Sessions {
		n += m.Sessions[i].Size()
	}
	return n
}

// Consume decodes b, which must hold exactly one UserSessionsReply, into m.
// An empty list is nil.
func (m *UserSessionsReply) Consume(b []byte) error {
	r := reader{b: b}
	var v UserSessionsReply
	if count := r.count(minSessionRefSize); count > 0 {
		v.Sessions = make([]SessionRef, count)
		for i := range v.Sessions {
			v.Sessions[i] = r.sessionRef()
		}
	}
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// MemberEvent is the payload of the CmdMemberJoined, CmdMemberLeft,
// CmdKicked (UserID is the kicked user) and CmdOwnerChanged (UserID is the
// new owner) pushes.
type MemberEvent struct {
	Type      uint8
	SessionID string
	UserID    string
}

// Append appends m's encoding to dst.
func (m *MemberEvent) Append(dst []byte) []byte {
	dst = AppendU8(dst, m.Type)
	dst = AppendString(dst, m.SessionID)
	return AppendString(dst, m.UserID)
}

// Size returns the length of m's encoding.
func (m *MemberEvent) Size() int { return 1 + SizeString(m.SessionID) + SizeString(m.UserID) }

// Consume decodes b, which must hold exactly one MemberEvent, into m.
func (m *MemberEvent) Consume(b []byte) error {
	r := reader{b: b}
	var v MemberEvent
	v.Type = field(&r, ConsumeU8)
	v.SessionID = field(&r, ConsumeString)
	v.UserID = field(&r, ConsumeString)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// InvitePush is the payload of a CmdInviteReceived push. Ver, Cmd and Msg
// are the inviter's application message; accept with CmdAcceptInvite
// before ExpiresUnixMillis (milliseconds since the Unix epoch).
type InvitePush struct {
	Type              uint8
	SessionID         string
	FromUserID        string
	Ver               uint8
	Cmd               Cmd
	ExpiresUnixMillis uint64
	Msg               []byte // aliases the input of Consume
}

// Append appends m's encoding to dst.
func (m *InvitePush) Append(dst []byte) []byte {
	dst = AppendU8(dst, m.Type)
	dst = AppendString(dst, m.SessionID)
	dst = AppendString(dst, m.FromUserID)
	dst = AppendU8(dst, m.Ver)
	dst = AppendU16(dst, uint16(m.Cmd))
	dst = AppendU64(dst, m.ExpiresUnixMillis)
	return AppendBytes(dst, m.Msg)
}

// Size returns the length of m's encoding.
func (m *InvitePush) Size() int {
	return 1 + SizeString(m.SessionID) + SizeString(m.FromUserID) + 11 + SizeBytes(m.Msg)
}

// Consume decodes b, which must hold exactly one InvitePush, into m.
func (m *InvitePush) Consume(b []byte) error {
	r := reader{b: b}
	var v InvitePush
	v.Type = field(&r, ConsumeU8)
	v.SessionID = field(&r, ConsumeString)
	v.FromUserID = field(&r, ConsumeString)
	v.Ver = field(&r, ConsumeU8)
	v.Cmd = Cmd(field(&r, ConsumeU16))
	v.ExpiresUnixMillis = field(&r, ConsumeU64)
	v.Msg = field(&r, ConsumeBytes)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// MessagePush is the payload of the CmdBroadcastReceived and
// CmdMessageReceived pushes. Servers build these frames with
// [AppendMessagePushFrame].
type MessagePush struct {
	Type      uint8
	SessionID string
	SenderID  string
	Msg       []byte // aliases the input of Consume
}

// Append appends m's encoding to dst.
func (m *MessagePush) Append(dst []byte) []byte {
	dst = AppendU8(dst, m.Type)
	dst = AppendString(dst, m.SessionID)
	dst = AppendString(dst, m.SenderID)
	return AppendBytes(dst, m.Msg)
}

// Size returns the length of m's encoding.
func (m *MessagePush) Size() int { return messagePushSize(m.SessionID, m.SenderID, m.Msg) }

// messagePushSize returns the encoded size of a MessagePush.
func messagePushSize(sessionID, senderID string, msg []byte) int {
	return 1 + SizeString(sessionID) + SizeString(senderID) + SizeBytes(msg)
}

// Consume decodes b, which must hold exactly one MessagePush, into m.
func (m *MessagePush) Consume(b []byte) error {
	r := reader{b: b}
	var v MessagePush
	v.Type = field(&r, ConsumeU8)
	v.SessionID = field(&r, ConsumeString)
	v.SenderID = field(&r, ConsumeString)
	v.Msg = field(&r, ConsumeBytes)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// AppendMessagePushFrame appends a complete, uncompressed push frame
// (FlagPush, Seq 0, Ver 0) whose payload is a MessagePush, in one pass, and
// returns the extended slice. cmd is CmdBroadcastReceived or
// CmdMessageReceived. It allocates only to grow dst, so a broadcast is
// encoded once and the same bytes are written to every member. To compress
// large broadcasts, build the payload with MessagePush.Append and send it
// with [Config.AppendFrame] instead.
func AppendMessagePushFrame(dst []byte, cmd Cmd, typ uint8, sessionID, senderID string, msg []byte) []byte {
	dst = AppendHeader(dst, Header{
		Length: uint32(messagePushSize(sessionID, senderID, msg)),
		Cmd:    cmd,
		Flags:  FlagPush,
	})
	dst = AppendU8(dst, typ)
	dst = AppendString(dst, sessionID)
	dst = AppendString(dst, senderID)
	return AppendBytes(dst, msg)
}

// SessionDeletedPush is the payload of a CmdSessionDeleted push.
type SessionDeletedPush struct {
	Type      uint8
	SessionID string
}

// Append appends m's encoding to dst.
func (m *SessionDeletedPush) Append(dst []byte) []byte {
	dst = AppendU8(dst, m.Type)
	return AppendString(dst, m.SessionID)
}

// Size returns the length of m's encoding.
func (m *SessionDeletedPush) Size() int { return 1 + SizeString(m.SessionID) }

// Consume decodes b, which must hold exactly one SessionDeletedPush, into
// m.
func (m *SessionDeletedPush) Consume(b []byte) error {
	r := reader{b: b}
	var v SessionDeletedPush
	v.Type = field(&r, ConsumeU8)
	v.SessionID = field(&r, ConsumeString)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

// PropertiesChangedPush is the payload of a CmdPropertiesChanged push: after
// a successful property write, the other members of the session learn the
// keys written with their new values, or the key deleted.
type PropertiesChangedPush struct {
	Type      uint8
	SessionID string
	// WriterID is the user who wrote, or "" when the game's server code
	// did.
	WriterID string
	Props    []KeyValue // the keys written, with their new values, sorted by key
	Deleted  []string   // the keys deleted
}

// Append appends m's encoding to dst.
func (m *PropertiesChangedPush) Append(dst []byte) []byte {
	dst = AppendU8(dst, m.Type)
	dst = AppendString(dst, m.SessionID)
	dst = AppendString(dst, m.WriterID)
	dst = AppendProps(dst, m.Props)
	return AppendStringList(dst, m.Deleted)
}

// Size returns the length of m's encoding.
func (m *PropertiesChangedPush) Size() int {
	return 1 + SizeString(m.SessionID) + SizeString(m.WriterID) + SizeProps(m.Props) + SizeStringList(m.Deleted)
}

// Consume decodes b, which must hold exactly one PropertiesChangedPush,
// into m.
func (m *PropertiesChangedPush) Consume(b []byte) error {
	r := reader{b: b}
	var v PropertiesChangedPush
	v.Type = field(&r, ConsumeU8)
	v.SessionID = field(&r, ConsumeString)
	v.WriterID = field(&r, ConsumeString)
	v.Props = field(&r, ConsumeProps)
	v.Deleted = field(&r, ConsumeStringList)
	if err := r.done(); err != nil {
		return err
	}
	*m = v
	return nil
}
