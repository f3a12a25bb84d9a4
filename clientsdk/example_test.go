package clientsdk_test

import (
	"context"
	"errors"
	"log"
	"time"

	"github.com/coveyhq/covey/clientsdk"
	"github.com/coveyhq/covey/wire"
)

// Two players: the host creates a lobby and invites a friend, who accepts
// the invitation; then the host broadcasts to the lobby.
func Example() {
	const lobby uint8 = 1 // the game's session type for lobbies
	ctx := context.Background()

	// In production the game backend obtains a token for each player from
	// the server's HTTP API and Config.Token carries it; a development
	// server accepts a bare user ID.
	host, err := clientsdk.Dial(ctx, clientsdk.Config{Network: "kcp", Addr: "127.0.0.1:7700", UserID: "alice"})
	if err != nil {
		log.Fatal(err)
	}
	defer host.Close()
	guest, err := clientsdk.Dial(ctx, clientsdk.Config{Network: "kcp", Addr: "127.0.0.1:7700", UserID: "bob"})
	if err != nil {
		log.Fatal(err)
	}
	defer guest.Close()

	// Every client's events must be received, here in a goroutine per
	// client. Calls may be made from these goroutines too.
	go func() {
		for ev := range host.Events() {
			switch ev := ev.(type) {
			case clientsdk.MemberJoined:
				log.Printf("%s joined the lobby", ev.UserID)
			case clientsdk.AsyncError:
				log.Printf("fire-and-forget command failed: %v", ev.Err)
			}
		}
		log.Printf("host disconnected: %v", host.Err())
	}()
	joined := make(chan error, 1)
	go func() {
		for ev := range guest.Events() {
			switch ev := ev.(type) {
			case clientsdk.InviteReceived:
				log.Printf("%s invites us: %s", ev.From, ev.Msg)
				joined <- guest.AcceptInvite(ctx, ev.Type, ev.SessionID)
			case clientsdk.BroadcastReceived:
				log.Printf("%s says %s", ev.Sender, ev.Msg)
			case clientsdk.PropertiesChanged:
				// Another member (or the game's server code, Writer "")
				// wrote; events come in the order the writes were applied.
				log.Printf("%q set %v, deleted %v", ev.Writer, ev.Props, ev.Deleted)
			}
		}
	}()

	id, err := host.Create(ctx, lobby, 4, time.Minute, map[string]any{"map": "dust", "round": 1})
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("created lobby %s", id)
	err = host.Invite(ctx, lobby, []string{"bob"}, clientsdk.InviteOptions{Msg: []byte("gg?"), TTL: 30 * time.Second})
	if errors.Is(err, wire.StatusUserNotFound) {
		log.Fatal("bob is not online")
	} else if err != nil {
		log.Fatal(err)
	}
	// A player who knows the ID can also join without an invitation:
	// guest.Join(ctx, lobby, id). A full lobby fails with
	// errors.Is(err, clientsdk.ErrSessionFull).
	if err := <-joined; err != nil {
		log.Fatal(err)
	}

	if err := host.Broadcast(ctx, lobby, []byte("welcome")); err != nil {
		log.Fatal(err)
	}
	// At game rates, do not wait for each acknowledgement: failures come
	// back as AsyncError events.
	if err := host.BroadcastAsync(lobby, []byte("tick")); err != nil {
		log.Fatal(err)
	}
	round, err := host.IncrProperty(ctx, lobby, "round", 1)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("round %d", round)
}
