package server

import (
	"context"
	"fmt"
	"time"

	"github.com/signald/signald/internal/device"
	"github.com/signald/signald/internal/protocol"
)

// Devices is what the connection loop and the admin API need of device
// registrations (device.Store).
type Devices interface {
	Register(ctx context.Context, r device.Registration) error
	Unregister(ctx context.Context, user, dev string, p device.Platform) error
	RemoveDevice(ctx context.Context, user, dev string) error
	Devices(ctx context.Context, users []string) ([][]device.Registration, error)
}

// Presence implements hub.Sink.
func (c *conn) Presence() (string, bool) { return c.device, c.foreground.Load() }

// setForeground moves the connection to the foreground or the background
// and tells the bus when that changes whether its device has a foreground
// connection on this instance, for the push decisions of every instance.
// Best effort: a failure leaves the other instances' view stale until the
// bus refreshes it (a push to a device in front, or one missed at most for
// the refresh interval).
func (c *conn) setForeground(fg bool) {
	was := c.foreground.Swap(fg)
	if c.device == "" || was == fg {
		return
	}
	// The device stays present while another connection of it here is.
	present := false
	for _, d := range c.srv.d.Hub.Foreground(c.user) {
		present = present || d == c.device
	}
	if present != fg {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.srv.cfg.RequestTimeout)
	defer cancel()
	if err := c.srv.d.Bus.SetForeground(ctx, c.user, c.device, fg); err != nil {
		c.srv.log.Debug("recording a device's presence failed", "user", c.user, "device", c.device, "err", err)
	}
}

func (c *conn) opBackground(context.Context, *protocol.Request) (any, error) {
	c.setForeground(false)
	return nil, nil
}

func (c *conn) opForeground(context.Context, *protocol.Request) (any, error) {
	c.setForeground(true)
	return nil, nil
}

// opSetOfflinePushConfig registers where a device is pushed, or with an
// empty token removes that platform's registration.
func (c *conn) opSetOfflinePushConfig(ctx context.Context, r *protocol.Request) (any, error) {
	platform, err := r.String("platform")
	if err != nil {
		return nil, err
	}
	token, err := r.String("token")
	if err != nil {
		return nil, err
	}
	sandbox, err := r.Bool("sandbox", false)
	if err != nil {
		return nil, err
	}
	dev, err := r.OptString("deviceID")
	if err != nil {
		return nil, err
	}
	if dev == "" {
		dev = c.device
	}
	if dev == "" {
		return nil, fmt.Errorf("deviceID is required when the login gave none: %w", device.ErrInvalid)
	}
	reg := device.Registration{User: c.user, Device: dev, Platform: device.Platform(platform), Token: token, Sandbox: sandbox, Updated: time.Now().UnixMilli()}
	return nil, c.srv.register(ctx, reg)
}

// register validates reg and registers it, or removes its platform's
// registration when its token is empty: for the WebSocket op and the
// admin API alike.
func (s *Server) register(ctx context.Context, reg device.Registration) error {
	if err := device.CheckDeviceID(reg.Device); err != nil {
		return err
	}
	if device.Rank(reg.Platform) == len(device.Platforms) {
		return fmt.Errorf("platform %q: want apns-voip, apns, fcm or webhook: %w", reg.Platform, device.ErrInvalid)
	}
	if !s.d.PushEnabled(reg.Platform) {
		return fmt.Errorf("platform %q has no credentials on this server: %w", reg.Platform, device.ErrInvalid)
	}
	if err := device.CheckToken(reg.Token); err != nil {
		return err
	}
	if reg.Token == "" {
		return s.d.Devices.Unregister(ctx, reg.User, reg.Device, reg.Platform)
	}
	return s.d.Devices.Register(ctx, reg)
}
