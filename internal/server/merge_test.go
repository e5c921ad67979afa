package server

import (
	"slices"
	"testing"

	"github.com/signald/signald/internal/bus"
)

func frames(ids ...string) [][]byte {
	var out [][]byte
	for _, id := range ids {
		f := []byte(`{"event":"e"}`)
		if id != "-" {
			f = bus.WithEventID(f, id)
		}
		out = append(out, f)
	}
	return out
}

func ids(fs [][]byte) []string {
	var out []string
	for _, f := range fs {
		id := bus.EventIDOf(f)
		if id == "" {
			id = "-"
		}
		out = append(out, id)
	}
	return out
}

func TestMergeByEventID(t *testing.T) {
	tests := []struct {
		name         string
		frames, held []string
		want         []string
	}{
		{"pending before newer live", []string{"01", "02"}, []string{"05"}, []string{"01", "02", "05"}},
		{"pending rung during login, both ways", []string{"01", "11"}, []string{"10", "11", "12"}, []string{"01", "10", "11", "12"}},
		{"frames without IDs are not held back", []string{"-", "03"}, []string{"-", "04"}, []string{"-", "-", "03", "04"}},
		{"nothing held", []string{"01"}, nil, []string{"01"}},
	}
	for _, tt := range tests {
		got := ids(mergeByEventID(frames(tt.frames...), frames(tt.held...)))
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}
