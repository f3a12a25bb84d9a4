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
