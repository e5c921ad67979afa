package server

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/signald/signald/internal/device"
	"github.com/signald/signald/internal/invite"
)

// maxDeviceBody bounds the body of a device registration: a 4 KiB token
// and a few fields.
const maxDeviceBody = 16 << 10

// deviceRoutes serves the device admin API of api/README.md §13, for the
// app's backend: the same registrations setOfflinePushConfig makes.
//
//	PUT    /v1/users/{userID}/devices/{deviceID}  {"platform","token","sandbox"}  → 200 the device's registrations
//	GET    /v1/users/{userID}/devices                                            → 200 every registration of the user
//	DELETE /v1/users/{userID}/devices/{deviceID}                                 → 204
func (s *Server) deviceRoutes(r chi.Router) {
	r.Put("/v1/users/{userID}/devices/{deviceID}", s.adminPutDevice)
	r.Get("/v1/users/{userID}/devices", s.adminGetDevices)
	r.Delete("/v1/users/{userID}/devices/{deviceID}", s.adminDeleteDevice)
}

// registrationJSON is one registration as the admin API shows it.
type registrationJSON struct {
	DeviceID string `json:"deviceID"`
	Platform string `json:"platform"`
	Token    string `json:"token"`
	Sandbox  bool   `json:"sandbox"`
	Updated  int64  `json:"updated"` // ms since epoch
}

type devicesJSON struct {
	UserID  string             `json:"userID"`
	Devices []registrationJSON `json:"devices"`
}

// pathIDs reads and checks the userID (and deviceID, when the route has
// one) of the path; it answers 400 itself when one is bad.
func pathIDs(w http.ResponseWriter, r *http.Request, withDevice bool) (user, dev string, ok bool) {
	user = chi.URLParam(r, "userID")
	if err := invite.CheckID("userID", user); err != nil {
		adminError(w, http.StatusBadRequest, err.Error())
		return "", "", false
	}
	if withDevice {
		dev = chi.URLParam(r, "deviceID")
		if err := device.CheckDeviceID(dev); err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return "", "", false
		}
	}
	return user, dev, true
}

func (s *Server) adminPutDevice(w http.ResponseWriter, r *http.Request) {
	user, dev, ok := pathIDs(w, r, true)
	if !ok {
		return
	}
	var body struct {
		Platform *string `json:"platform"`
		Token    *string `json:"token"`
		Sandbox  bool    `json:"sandbox"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxDeviceBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || dec.Decode(&struct{}{}) != io.EOF {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			adminError(w, http.StatusRequestEntityTooLarge, "body larger than 16 KiB")
			return
		}
		adminError(w, http.StatusBadRequest, "body must be one JSON object {\"platform\", \"token\", \"sandbox\"}")
		return
	}
	if body.Platform == nil || body.Token == nil {
		adminError(w, http.StatusBadRequest, "platform and token are required (an empty token removes the registration)")
		return
	}
	reg := device.Registration{User: user, Device: dev, Platform: device.Platform(*body.Platform), Token: *body.Token,
		Sandbox: body.Sandbox, Updated: time.Now().UnixMilli()}
	if !s.adminDo(w, r, s.register(r.Context(), reg)) {
		return
	}
	all, ok := s.userDevices(w, r, user)
	if !ok {
		return
	}
	out := devicesJSON{UserID: user, Devices: []registrationJSON{}}
	for _, d := range all {
		if d.DeviceID == dev {
			out.Devices = append(out.Devices, d)
		}
	}
	adminJSON(w, http.StatusOK, out)
}

func (s *Server) adminGetDevices(w http.ResponseWriter, r *http.Request) {
	user, _, ok := pathIDs(w, r, false)
	if !ok {
		return
	}
	all, ok := s.userDevices(w, r, user)
	if ok {
		adminJSON(w, http.StatusOK, devicesJSON{UserID: user, Devices: all})
	}
}

func (s *Server) adminDeleteDevice(w http.ResponseWriter, r *http.Request) {
	user, dev, ok := pathIDs(w, r, true)
	if !ok {
		return
	}
	if s.adminDo(w, r, s.d.Devices.RemoveDevice(r.Context(), user, dev)) {
		w.WriteHeader(http.StatusNoContent)
	}
}

// userDevices returns user's registrations for the admin API.
func (s *Server) userDevices(w http.ResponseWriter, r *http.Request, user string) ([]registrationJSON, bool) {
	regs, err := s.d.Devices.Devices(r.Context(), []string{user})
	if !s.adminDo(w, r, err) {
		return nil, false
	}
	out := []registrationJSON{}
	for _, d := range regs[0] {
		out = append(out, registrationJSON{DeviceID: d.Device, Platform: string(d.Platform), Token: d.Token, Sandbox: d.Sandbox, Updated: d.Updated})
	}
	return out, true
}

// adminDo answers err, if any (adminFail), and reports whether there was none.
func (s *Server) adminDo(w http.ResponseWriter, r *http.Request, err error) bool {
	if err == nil {
		return true
	}
	s.adminFail(w, r, err)
	return false
}
