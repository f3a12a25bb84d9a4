// Command quickstart: two players on a running Covey server (start one with
// `go run ./cmd/server`): alice creates a party and invites bob, bob
// accepts, alice broadcasts, bob receives.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"time"

	"github.com/coveyhq/covey/clientsdk"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:7700", "server address")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	alice, err := clientsdk.Dial(ctx, clientsdk.Config{Network: "tcp", Addr: *addr, UserID: "alice"})
	if err != nil {
		log.Fatal(err)
	}
	defer alice.Close()
	bob, err := clientsdk.Dial(ctx, clientsdk.Config{Network: "kcp", Addr: *addr, UserID: "bob"})
	if err != nil {
		log.Fatal(err)
	}
	defer bob.Close()

	const party = 1 // session type
	id, err := alice.Create(ctx, party, 4, time.Minute, nil)
	if err != nil {
		log.Fatal(err)
	}
	if err := alice.Invite(ctx, party, []string{"bob"}, clientsdk.InviteOptions{Msg: []byte("join me")}); err != nil {
		log.Fatal(err)
	}
	for ev := range bob.Events() {
		switch ev := ev.(type) {
		case clientsdk.InviteReceived:
			fmt.Printf("bob: invited by %s to %s: %q\n", ev.From, ev.SessionID, ev.Msg)
			if err := bob.AcceptInvite(ctx, ev.Type, ev.SessionID); err != nil {
				log.Fatal(err)
			}
			if err := alice.Broadcast(ctx, party, []byte("welcome, bob")); err != nil {
				log.Fatal(err)
			}
		case clientsdk.BroadcastReceived:
			fmt.Printf("bob: %s says %q in %s\n", ev.Sender, ev.Msg, ev.SessionID)
			members, _ := bob.MemberIDs(ctx, party)
			fmt.Println("members:", members, "session:", id)
			return
		}
	}
	log.Fatal("bob was disconnected: ", bob.Err())
}
