package client_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/signald/signald/client"
	"github.com/signald/signald/internal/app"
	"github.com/signald/signald/internal/auth"
)

// Alice rings Bob, whose listener accepts. The example starts a signald of
// its own in this process (in memory, development mode) to talk to; an
// app talks to its deployment's wss:// URL instead.
func ExampleClient() {
	url, stop := startSignald()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var bob *client.Client
	bob, err := client.New(url, client.Options{Listener: client.Listener{
		OnReceiveNewInvitation: func(ev client.ReceiveNewInvitationEvent) {
			fmt.Printf("bob: %s is calling, data %s\n", ev.Inviter, ev.Data)
			if err := bob.Accept(ctx, ev.InviteID, `{"camera":true}`); err != nil {
				log.Print(err)
			}
		},
	}})
	if err != nil {
		log.Fatal(err)
	}
	defer bob.Close()

	accepted := make(chan struct{})
	alice, err := client.New(url, client.Options{Listener: client.Listener{
		OnInviteeAccepted: func(ev client.InviteeAcceptedEvent) {
			fmt.Printf("alice: %s accepted, data %s\n", ev.Invitee, ev.Data)
			close(accepted)
		},
	}})
	if err != nil {
		log.Fatal(err)
	}
	defer alice.Close()

	// Your backend signs each user's userSig with the server's secret.
	for _, c := range []struct {
		c    *client.Client
		user string
	}{{alice, "alice"}, {bob, "bob"}} {
		if _, err := c.c.Login(ctx, client.LoginOptions{UserID: c.user, UserSig: userSig(c.user)}); err != nil {
			log.Fatal(err)
		}
	}
	if _, err := alice.Invite(ctx, "bob", `{"cmd":"videoCall"}`, client.InviteOptions{Timeout: 30 * time.Second}); err != nil {
		log.Fatal(err)
	}
	select {
	case <-accepted:
	case <-ctx.Done():
		log.Fatal("no answer")
	}
	// Output:
	// bob: alice is calling, data {"cmd":"videoCall"}
	// alice: bob accepted, data {"camera":true}
}

// startSignald starts signald in this process on a free loopback port and
// returns its WebSocket URL and how to stop it.
func startSignald() (url string, stop func()) {
	o := app.DefaultOptions()
	o.Addr = "127.0.0.1:0"
	o.Dev = true // well-known secrets: app.DevJWTSecret signs userSigs
	ctx, cancel := context.WithCancel(context.Background())
	reg := prometheus.NewRegistry()
	d, err := app.Start(ctx, o, slog.New(slog.NewTextHandler(io.Discard, nil)), reg, reg)
	if err != nil {
		log.Fatal(err)
	}
	return "ws://" + d.Addr + "/v1/ws", func() {
		cancel()
		if err := d.Wait(); err != nil {
			log.Print(err)
		}
	}
}

// userSig is what an app's backend hands to the app: an HS256 JWT whose
// sub is the user, signed with the server's secret.
func userSig(user string) string {
	sig, err := auth.Mint([]byte(app.DevJWTSecret), user, time.Hour, time.Now())
	if err != nil {
		log.Fatal(err)
	}
	return sig
}
