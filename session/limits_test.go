package session

import (
	"fmt"
	"strings"
	"testing"

	"github.com/coveyhq/covey/wire"
)

// TestMaxMembersLimit pins the member bound: MaxMembers over
// MaxMembersLimit is BadMaxMembers, and a session filled to the limit with
// the largest members allowed still gives member lists (GetMemberData,
// GetMemberIDs, GetSessionInfo) within the payload limit.
func TestMaxMembersLimit(t *testing.T) {
	if got := MaxMembersFor(wire.DefaultMaxPayload, 128); got != 202 {
		t.Errorf("MaxMembersFor(64 KiB, 128) = %d, want 202", got)
	}
	if got := MaxMembersFor(wire.MaxMaxPayload, 128); got != 51941 {
		t.Errorf("MaxMembersFor(16 MiB, 128) = %d, want 51941", got)
	}
	tb, _ := newTestTable(t)
	limit := tb.MaxMembersLimit()
	big := func(i int) *User {
		id := fmt.Sprintf("%03d", i) + strings.Repeat("u", MaxUserIDLen-3)
		// Data of exactly MaxMemberData encoded bytes: count, key, string.
		val := strings.Repeat("d", tb.cfg.MaxMemberData-1-2-3)
		u := &User{ID: id, SID: strings.Repeat("s", MaxSIDLen), Data: map[string]any{"k": val}, Conn: newRecorder()}
		tb.Connect(u)
		return u
	}
	owner := big(0)
	_, err := tb.Create(bg, owner, Spec{Type: 1, MaxMembers: limit + 1})
	wantErr(t, err, ErrBadMaxMembers, IsSessionError)
	s, err := tb.Create(bg, owner, Spec{Type: 1, MaxMembers: limit})
	must(t, err)
	for i := 1; i < int(limit); i++ {
		mustJoin(t, tb, s, big(i))
	}
	data, err := tb.MemberData(bg, 1, owner)
	must(t, err)
	rep := wire.MemberDataReply{Members: make([]wire.MemberData, len(data))}
	for i, d := range data {
		rep.Members[i] = wire.MemberData{UserID: d.UserID, SID: d.SID}
		for k, v := range d.Data {
			wv, err := wire.ValueOf(v)
			must(t, err)
			rep.Members[i].Data = append(rep.Members[i].Data, wire.KeyValue{Key: k, Value: wv})
		}
	}
	ids, err := tb.MemberIDs(bg, 1, owner)
	must(t, err)
	info, err := tb.SessionInfo(bg, s.ID())
	must(t, err)
	infoRep := wire.SessionInfo{SessionID: info.ID, Type: 1, CurrentMembers: limit, MaxMembers: limit, MemberIDs: info.MemberIDs, OwnerID: info.OwnerID}
	for name, size := range map[string]int{
		"MemberDataReply": rep.Size(), "StringsReply": (&wire.StringsReply{Items: ids}).Size(), "SessionInfo": infoRep.Size(),
	} {
		if size > int(tb.cfg.Wire.MaxPayload) {
			t.Errorf("%s of a full session: %d bytes, over %d", name, size, tb.cfg.Wire.MaxPayload)
		}
	}
	if rep.Size() < int(tb.cfg.Wire.MaxPayload)*9/10 {
		t.Errorf("MemberDataReply of %d bytes: the bound is far from tight", rep.Size())
	}
}

// TestMemberSizeRefused: a user whose ID, SID or data is over the member
// limits can neither create nor join, so member lists cannot grow past the
// payload limit.
func TestMemberSizeRefused(t *testing.T) {
	tb, _ := newTestTable(t)
	alice, _ := player(tb, "alice")
	s := mustCreate(t, tb, alice, 1, 4)
	for name, u := range map[string]*User{
		"long ID":  {ID: strings.Repeat("x", MaxUserIDLen+1), SID: "c"},
		"long SID": {ID: "bob", SID: strings.Repeat("s", MaxSIDLen+1)},
		"big data": {ID: "carol", SID: "c", Data: map[string]any{"bio": strings.Repeat("b", tb.cfg.MaxMemberData)}},
	} {
		tb.Connect(u)
		_, err := tb.Create(bg, u, Spec{Type: 2, MaxMembers: 2})
		wantErr(t, err, ErrTooLarge, IsSessionError)
		wantErr(t, tb.Join(bg, 1, s.ID(), u), ErrTooLarge, IsJoinError)
		if s.IsMember(u.ID) {
			t.Fatalf("%s: joined", name)
		}
	}
}
