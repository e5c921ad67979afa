package device

import "fmt"

// CheckRegistration validates what Store.Register is given: the device ID
// and the token as CheckDeviceID and CheckToken do, and a token that is not
// empty (the empty token means Unregister, which the caller decides).
// Stores refuse anything else with an error wrapping ErrInvalid, so that a
// caller that skipped its checks stores nothing a client could not have sent.
func CheckRegistration(r Registration) error {
	if err := CheckDeviceID(r.Device); err != nil {
		return err
	}
	if r.Token == "" {
		return fmt.Errorf("token is empty: %w", ErrInvalid)
	}
	return CheckToken(r.Token)
}
