package app

import (
	"net/http"
	"time"

	"github.com/signald/signald/internal/auth"
	"github.com/signald/signald/internal/demo"
	"github.com/signald/signald/internal/group"
)

// demoTokenTTL is how long a userSig minted by the demo page lasts: a day
// of trying it out.
const demoTokenTTL = 24 * time.Hour

// newDemo returns the demo page's handler, or nil when o.Demo is off. Its
// token and group endpoints exist only with o.Dev: they hand out userSigs
// and group membership to anyone who asks.
func newDemo(o Options, groups group.Store) (http.Handler, error) {
	if !o.Demo {
		return nil, nil
	}
	var dev *demo.Dev
	if o.Dev {
		secret := []byte(o.JWTSecret)
		dev = &demo.Dev{
			MintToken: func(user string) (string, error) {
				return auth.Mint(secret, user, demoTokenTTL, time.Now())
			},
			Groups: groups,
		}
	}
	return demo.Handler(dev)
}
