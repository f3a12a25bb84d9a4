package wire

// Cmd is a command number within a frame's namespace (Header.Ver). The
// constants below are the built-in commands of namespace 0; applications
// number their own commands in namespaces 1 to 255.
//
// Namespace 0 is divided into ranges:
//
//	0x0000-0x00FF  connection (sign-in, ping, bye)
//	0x0100-0x01FF  session requests (client to server, each gets a reply)
//	0x0200-0x02FF  session pushes (server to client)
//	0x0300-0xEFFF  reserved
//	0xF000-0xFFFF  mesh: server-to-server only, refused on client connections
type Cmd uint16

// MeshCmdFirst is the first command of the mesh range of namespace 0:
// commands from here to 0xFFFF are exchanged between servers only.
const MeshCmdFirst Cmd = 0xF000

// Built-in commands of namespace 0. Values are part of the protocol: only
// append.
const (
	// Connection, 0x0000-0x00FF.
	CmdSignIn Cmd = 0x0001 // request SignInRequest, reply SignInReply
	CmdPing   Cmd = 0x0002 // request and reply empty
	CmdBye    Cmd = 0x0003 // push Bye: the server closes the connection with a reason

	// Session requests, 0x0100-0x01FF.
	CmdCreate                 Cmd = 0x0101 // CreateRequest -> CreateReply
	CmdJoin                   Cmd = 0x0102 // SessionRef -> empty
	CmdLeave                  Cmd = 0x0103 // SessionRef -> empty
	CmdKick                   Cmd = 0x0104 // KickRequest -> empty
	CmdBroadcast              Cmd = 0x0105 // BroadcastRequest -> empty
	CmdMessageTo              Cmd = 0x0106 // MessageToRequest -> empty
	CmdInvite                 Cmd = 0x0107 // InviteRequest -> empty
	CmdGetProperty            Cmd = 0x0108 // PropertyKeyRequest -> PropertyReply
	CmdGetProperties          Cmd = 0x0109 // PropertyKeysRequest -> PropsReply
	CmdGetAllProperties       Cmd = 0x010A // TypeRequest -> PropsReply
	CmdSetProperty            Cmd = 0x010B // SetPropertyRequest -> empty
	CmdSetProperties          Cmd = 0x010C // SetPropertiesRequest -> empty
	CmdSetPropertyIfNotExists Cmd = 0x010D // SetPropertyRequest -> empty
	CmdIncrProperty           Cmd = 0x010E // IncrPropertyRequest -> PropertyReply (the new value)
	CmdCompareAndSetProperty  Cmd = 0x010F // CompareAndSetRequest -> empty
	CmdGetMemberIDs           Cmd = 0x0110 // TypeRequest -> StringsReply
	CmdGetMemberSIDs          Cmd = 0x0111 // TypeRequest -> StringsReply
	CmdGetMemberData          Cmd = 0x0112 // TypeRequest -> MemberDataReply
	CmdGetSessionInfo         Cmd = 0x0113 // SessionInfoRequest -> SessionInfo
	CmdIsOwner                Cmd = 0x0114 // TypeRequest -> BoolReply
	CmdGetUserSessions        Cmd = 0x0115 // empty -> UserSessionsReply
	CmdAcceptInvite           Cmd = 0x0116 // SessionRef -> empty
	CmdDeleteProperty         Cmd = 0x0117 // PropertyKeyRequest -> BoolReply (whether the key existed)

	// Session pushes, 0x0200-0x02FF.
	CmdMemberJoined      Cmd = 0x0201 // MemberEvent
	CmdMemberLeft        Cmd = 0x0202 // MemberEvent
	CmdKicked            Cmd = 0x0203 // MemberEvent (UserID is the kicked user)
	CmdOwnerChanged      Cmd = 0x0204 // MemberEvent (UserID is the new owner)
	CmdInviteReceived    Cmd = 0x0205 // InvitePush
	CmdBroadcastReceived Cmd = 0x0206 // MessagePush
	CmdMessageReceived   Cmd = 0x0207 // MessagePush
	CmdSessionDeleted    Cmd = 0x0208 // SessionDeletedPush
	CmdPropertiesChanged Cmd = 0x0209 // PropertiesChangedPush
	// CmdMembershipLost tells a user that it is no longer in a session
	// because the node that owns the session can no longer be reached; no
	// other push about that session follows. MemberEvent (UserID is the
	// user itself).
	CmdMembershipLost Cmd = 0x020A

	// Mesh, MeshCmdFirst-0xFFFF: between servers only (see mesh.go for the
	// payloads). 0xF000 itself is not a command. The link: 0xF001-0xF00F.
	CmdPeerHello Cmd = 0xF001 // PeerHello -> PeerHelloReply: the first frame each way of a mesh connection
	CmdPeerAuth  Cmd = 0xF002 // PeerAuth -> empty: the dialer's proof, the handshake's last step
	CmdPeerPing  Cmd = 0xF003 // PeerPing -> PeerPing: liveness, and each side's load

	// Sessions, 0xF010-0xF03F: from a member's node to the session's
	// owner, and back.
	CmdExec    Cmd = 0xF010 // Exec -> the command's own status and reply payload, unchanged
	CmdFanout  Cmd = 0xF013 // push Fanout: client frames for the listed users of the receiving node
	CmdRemoved Cmd = 0xF014 // push Removed: a user of the receiving node is no longer a member

	// Users, 0xF040-0xF04F: the presence directory and the node a user is
	// connected to.
	CmdPresenceClaim   Cmd = 0xF040 // PresenceClaim -> PresenceClaimReply
	CmdPresenceRelease Cmd = 0xF041 // push PresenceRelease
	CmdPresenceAssert  Cmd = 0xF043 // PresenceClaim -> PresenceClaimReply, or StatusStale: another node holds the user
	CmdPresenceLookup  Cmd = 0xF042 // PresenceLookup -> PresenceLookupReply, or StatusUserNotFound
	CmdUserTakeover    Cmd = 0xF045 // UserTakeover -> UserTakeoverReply
	CmdDeliverToUser   Cmd = 0xF046 // DeliverToUser -> empty, or StatusUserNotFound
)

// IsMesh reports whether c, in namespace 0, is in the mesh range
// (MeshCmdFirst to 0xFFFF). A server refuses such commands on client
// connections.
func (c Cmd) IsMesh() bool { return c >= MeshCmdFirst }

// String returns the name of a built-in command of namespace 0 without its
// Cmd prefix, such as "SignIn", or "Cmd(0xNNNN)" for any other value. It
// is meaningful only for frames with Ver 0.
func (c Cmd) String() string {
	switch c {
	case CmdSignIn:
		return "SignIn"
	case CmdPing:
		return "Ping"
	case CmdBye:
		return "Bye"
	case CmdCreate:
		return "Create"
	case CmdJoin:
		return "Join"
	case CmdLeave:
		return "Leave"
	case CmdKick:
		return "Kick"
	case CmdBroadcast:
		return "Broadcast"
	case CmdMessageTo:
		return "MessageTo"
	case CmdInvite:
		return "Invite"
	case CmdGetProperty:
		return "GetProperty"
	case CmdGetProperties:
		return "GetProperties"
	case CmdGetAllProperties:
		return "GetAllProperties"
	case CmdSetProperty:
		return "SetProperty"
	case CmdSetProperties:
		return "SetProperties"
	case CmdSetPropertyIfNotExists:
		return "SetPropertyIfNotExists"
	case CmdIncrProperty:
		return "IncrProperty"
	case CmdCompareAndSetProperty:
		return "CompareAndSetProperty"
	case CmdGetMemberIDs:
		return "GetMemberIDs"
	case CmdGetMemberSIDs:
		return "GetMemberSIDs"
	case CmdGetMemberData:
		return "GetMemberData"
	case CmdGetSessionInfo:
		return "GetSessionInfo"
	case CmdIsOwner:
		return "IsOwner"
	case CmdGetUserSessions:
		return "GetUserSessions"
	case CmdAcceptInvite:
		return "AcceptInvite"
	case CmdDeleteProperty:
		return "DeleteProperty"
	case CmdMemberJoined:
		return "MemberJoined"
	case CmdMemberLeft:
		return "MemberLeft"
	case CmdKicked:
		return "Kicked"
	case CmdOwnerChanged:
		return "OwnerChanged"
	case CmdInviteReceived:
		return "InviteReceived"
	case CmdBroadcastReceived:
		return "BroadcastReceived"
	case CmdMessageReceived:
		return "MessageReceived"
	case CmdSessionDeleted:
		return "SessionDeleted"
	case CmdPropertiesChanged:
		return "PropertiesChanged"
	case CmdMembershipLost:
		return "MembershipLost"
	case CmdPeerHello:
		return "PeerHello"
	case CmdPeerAuth:
		return "PeerAuth"
	case CmdPeerPing:
		return "PeerPing"
	case CmdExec:
		return "Exec"
	case CmdFanout:
		return "Fanout"
	case CmdRemoved:
		return "Removed"
	case CmdPresenceClaim:
		return "PresenceClaim"
	case CmdPresenceAssert:
		return "PresenceAssert"
	case CmdPresenceRelease:
		return "PresenceRelease"
	case CmdPresenceLookup:
		return "PresenceLookup"
	case CmdUserTakeover:
		return "UserTakeover"
	case CmdDeliverToUser:
		return "DeliverToUser"
	}
	const hex = "0123456789ABCDEF"
	b := [...]byte{'C', 'm', 'd', '(', '0', 'x', hex[c>>12], hex[c>>8&0xF], hex[c>>4&0xF], hex[c&0xF], ')'}
	return string(b[:])
}
