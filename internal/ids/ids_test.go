package ids_test

import (
	"strings"
	"testing"

	"github.com/signald/signald/internal/ids"
)

func TestCheck(t *testing.T) {
	for _, ok := range []string{"alice", "bob@example.com", "用户-42", "a b", "emoji 📞", strings.Repeat("x", 128)} {
		if err := ids.Check(ok, 128); err != nil {
			t.Errorf("Check(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", strings.Repeat("x", 129), "\xff", "a\nb", "a\rb", "tab\there", "nul\x00", "del\x7f", "c1\u0085",
		"alice\u202eecila", "rtl\u200f", "iso\u2066x\u2069", "arabic\u061cmark", "lre\u202a"} {
		if err := ids.Check(bad, 128); err == nil {
			t.Errorf("Check(%q) accepted it", bad)
		}
	}
}
