package wire

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// definedStatuses lists every Status constant with its value, so that a
// renumbering fails here.
var definedStatuses = map[Status]uint16{
	StatusOK: 0, StatusBadRequest: 1, StatusUnknownCommand: 2, StatusUnauthenticated: 3,
	StatusAuthFailed: 4, StatusInternal: 5, StatusServerOffline: 6, StatusTooLarge: 7,
	StatusSlowConsumer: 8, StatusReplaced: 9, StatusShuttingDown: 10, StatusBadVersion: 11, StatusNotEncrypted: 12,
	StatusInvalidSessionID: 16, StatusSessionNotFound: 17, StatusSessionFull: 18,
	StatusNotMember: 19, StatusAlreadyInSession: 20, StatusJoinRejected: 21,
	StatusCannotKickSelf: 22, StatusNotOwner: 23, StatusCannotInviteSelf: 24,
	StatusUserNotFound: 25, StatusRecipientNotFound: 26, StatusNoInvite: 27,
	StatusBadProperty: 28, StatusPropertyExists: 29, StatusNotNumeric: 30,
	StatusBadMaxMembers: 31, StatusCompareFailed: 32, StatusTooManyProperties: 33,
	StatusBadSessionType: 34, StatusOverflow: 35, StatusPropertiesFull: 36,
	StatusUnavailable: 37, StatusRateLimited: 38, StatusLimitExceeded: 39, StatusOverloaded: 40, StatusStale: 0xF000,
}

func TestStatusStrings(t *testing.T) {
	if len(definedStatuses) != 39 {
		t.Fatalf("%d statuses", len(definedStatuses))
	}
	seen := map[string]Status{}
	for s, v := range definedStatuses {
		if uint16(s) != v {
			t.Errorf("%v = %d, want %d", s, s, v)
		}
		str := s.String()
		if str == "" || strings.HasPrefix(str, "status(") {
			t.Errorf("Status(%d) has no text", v)
		}
		if other, dup := seen[str]; dup {
			t.Errorf("Status %d and %d share the text %q", s, other, str)
		}
		seen[str] = s
		if s.Error() != "covey: "+str {
			t.Errorf("Status(%d).Error() = %q", v, s.Error())
		}
		if allocs := testing.AllocsPerRun(10, func() { _ = s.Error(); _ = s.String() }); allocs != 0 {
			t.Errorf("Status(%d) Error/String allocated %v times", v, allocs)
		}
	}
	if got := Status(13).String(); got != "status(13)" {
		t.Errorf("Status(13).String() = %q", got)
	}
	if got := Status(999).Error(); got != "covey: status(999)" {
		t.Errorf("Status(999).Error() = %q", got)
	}
}

func TestStatusAsError(t *testing.T) {
	var err error = StatusSessionFull
	wrapped := fmt.Errorf("join s1: %w", err)
	if !errors.Is(wrapped, StatusSessionFull) || errors.Is(wrapped, StatusSessionNotFound) {
		t.Error("errors.Is does not match Status values")
	}
	// A status that crossed the network is the same sentinel.
	if received := Status(18); !errors.Is(received, StatusSessionFull) {
		t.Error("a decoded status is not the sentinel")
	}
	for _, tc := range []struct {
		err  error
		want Status
	}{
		{nil, StatusOK},
		{StatusNotOwner, StatusNotOwner},
		{wrapped, StatusSessionFull},
		{errors.New("boom"), StatusInternal},
		{ErrTooLarge, StatusTooLarge},
		{fmt.Errorf("decode: %w", ErrTrailing), StatusBadRequest},
		{ErrShort, StatusBadRequest},
		{ErrBadValue, StatusBadRequest},
		{ErrCorrupt, StatusBadRequest},
		{ErrBadFlags, StatusBadRequest},
	} {
		if got := StatusOf(tc.err); got != tc.want {
			t.Errorf("StatusOf(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestCmd(t *testing.T) {
	cmds := map[Cmd]string{
		CmdSignIn: "SignIn", CmdPing: "Ping", CmdBye: "Bye",
		CmdCreate: "Create", CmdJoin: "Join", CmdLeave: "Leave", CmdKick: "Kick",
		CmdBroadcast: "Broadcast", CmdMessageTo: "MessageTo", CmdInvite: "Invite",
		CmdGetProperty: "GetProperty", CmdGetProperties: "GetProperties",
		CmdGetAllProperties: "GetAllProperties", CmdSetProperty: "SetProperty",
		CmdSetProperties: "SetProperties", CmdSetPropertyIfNotExists: "SetPropertyIfNotExists",
		CmdIncrProperty: "IncrProperty", CmdCompareAndSetProperty: "CompareAndSetProperty",
		CmdGetMemberIDs: "GetMemberIDs", CmdGetMemberSIDs: "GetMemberSIDs",
		CmdGetMemberData: "GetMemberData", CmdGetSessionInfo: "GetSessionInfo",
		CmdIsOwner: "IsOwner", CmdGetUserSessions: "GetUserSessions", CmdAcceptInvite: "AcceptInvite",
		CmdMemberJoined: "MemberJoined", CmdMemberLeft: "MemberLeft", CmdKicked: "Kicked",
		CmdOwnerChanged: "OwnerChanged", CmdInviteReceived: "InviteReceived",
		CmdBroadcastReceived: "BroadcastReceived", CmdMessageReceived: "MessageReceived",
		CmdSessionDeleted: "SessionDeleted",
	}
	if len(cmds) != 33 {
		t.Fatalf("%d commands", len(cmds))
	}
	for c, name := range cmds {
		if c.String() != name {
			t.Errorf("Cmd(%#04x).String() = %q, want %q", uint16(c), c.String(), name)
		}
		if c.IsMesh() {
			t.Errorf("%v is in the mesh range", c)
		}
		switch {
		case c < 0x0100: // connection
		case c >= 0x0100 && c < 0x0200: // session requests
		case c >= 0x0200 && c < 0x0300: // session pushes
		default:
			t.Errorf("%v is outside the client ranges", c)
		}
	}
	for c, want := range map[Cmd]string{0: "Cmd(0x0000)", 0x0abc: "Cmd(0x0ABC)", 0xF0FF: "Cmd(0xF0FF)"} {
		if c.String() != want {
			t.Errorf("String = %q, want %q", c.String(), want)
		}
	}
	if !Cmd(0xF000).IsMesh() || !Cmd(0xFFFF).IsMesh() || Cmd(0xEFFF).IsMesh() {
		t.Error("IsMesh boundaries")
	}
}
