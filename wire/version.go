package wire

// Protocol versions. A client names the range of versions it speaks in its
// [SignInRequest]; the server answers with the one chosen in
// [SignInReply.Version], or refuses the sign-in with [StatusBadVersion]. A
// version is the whole of the wire format after sign-in: frames, commands,
// payload layouts, statuses. The header and the version fields of
// SignInRequest and SignInReply are the same in every version.
const (
	// ProtocolVersion is the newest version this package speaks: the one
	// PROTOCOL.md specifies.
	ProtocolVersion uint16 = 1
	// MinProtocolVersion is the oldest version this package speaks.
	MinProtocolVersion uint16 = 1
)

// ChooseVersion returns the highest protocol version in [lo, hi] that this
// package speaks, and false if there is none (including when lo > hi).
func ChooseVersion(lo, hi uint16) (uint16, bool) {
	v := min(hi, ProtocolVersion)
	if v < lo || v < MinProtocolVersion {
		return 0, false
	}
	return v, true
}
