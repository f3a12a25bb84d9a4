package wire

import "testing"

func TestMeshCmds(t *testing.T) {
	// Values and names, so that a renumbering fails here.
	cmds := []struct {
		c    Cmd
		v    uint16
		name string
	}{
		{CmdPeerHello, 0xF001, "PeerHello"},
		{CmdPeerAuth, 0xF002, "PeerAuth"},
		{CmdPeerPing, 0xF003, "PeerPing"},
		{CmdExec, 0xF010, "Exec"},
		{CmdFanout, 0xF013, "Fanout"},
		{CmdRemoved, 0xF014, "Removed"},
		{CmdPresenceClaim, 0xF040, "PresenceClaim"},
		{CmdPresenceRelease, 0xF041, "PresenceRelease"},
		{CmdPresenceLookup, 0xF042, "PresenceLookup"},
		{CmdUserTakeover, 0xF045, "UserTakeover"},
		{CmdDeliverToUser, 0xF046, "DeliverToUser"},
	}
	for _, tc := range cmds {
		if uint16(tc.c) != tc.v || tc.c.String() != tc.name {
			t.Errorf("%v = %#04x, want %s = %#04x", tc.c, uint16(tc.c), tc.name, tc.v)
		}
		if !tc.c.IsMesh() {
			t.Errorf("%v is not in the mesh range", tc.c)
		}
	}
	if CmdMembershipLost != 0x020A || CmdMembershipLost.String() != "MembershipLost" || CmdMembershipLost.IsMesh() {
		t.Errorf("CmdMembershipLost = %#04x %q", uint16(CmdMembershipLost), CmdMembershipLost)
	}
}

func TestMeshStatuses(t *testing.T) {
	if !StatusStale.IsMesh() || !Status(0xFFFF).IsMesh() {
		t.Error("StatusStale and 0xFFFF are not mesh statuses")
	}
	for s := range definedStatuses {
		if s.IsMesh() != (s == StatusStale) {
			t.Errorf("%v: IsMesh = %v", s, s.IsMesh())
		}
	}
	if Status(0xEFFF).IsMesh() {
		t.Error("0xEFFF is a mesh status")
	}
	if StatusOf(StatusUnavailable) != StatusUnavailable || StatusOf(StatusStale) != StatusStale {
		t.Error("StatusOf does not return the new statuses")
	}
}
