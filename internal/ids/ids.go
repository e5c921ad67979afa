// Package ids checks the identifiers clients choose (users, groups,
// devices): not empty, bounded, valid UTF-8, and free of control and
// bidirectional formatting characters, which would let one ID pass for
// another in logs, dashboards and admin tools (a right-to-left override
// shows "alice\u202Eecila" as something else), or break line-based logs.
package ids

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// Check reports what is wrong with id, at most max bytes long, or nil.
func Check(id string, max int) error {
	switch {
	case id == "":
		return errors.New("is empty")
	case len(id) > max:
		return fmt.Errorf("is longer than %d bytes", max)
	case !utf8.ValidString(id):
		return errors.New("is not valid UTF-8")
	}
	for i, r := range id {
		if Unsafe(r) {
			return fmt.Errorf("holds the control or formatting character %U at byte %d", r, i)
		}
	}
	return nil
}

// Unsafe reports a control character (C0, DEL, C1) or a bidirectional
// formatting character (marks, embeddings, overrides, isolates).
func Unsafe(r rune) bool {
	switch {
	case r < 0x20, r >= 0x7f && r <= 0x9f:
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}
