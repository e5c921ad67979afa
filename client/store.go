package client

import (
	"context"
	"sync"
)

// EventIDStore keeps the last processed eventID of each (user, device), so
// that a login resumes from it (api/README.md §11): after a reconnect, and,
// with a store that persists, after a restart of the process. Load is called
// once per Login; Save after every event with an eventID that the listener
// has returned from, in eventID order, on the goroutine that calls the
// listener: a slow Save delays the next event. An error from Save is logged
// and costs at most a replay of events already processed, which the next
// session hands to the listener again.
type EventIDStore interface {
	Load(ctx context.Context, userID, deviceID string) (string, error)
	Save(ctx context.Context, userID, deviceID, eventID string) error
}

// MemoryStore is an EventIDStore that lives as long as the process: a
// Client that logs out and in again resumes, a new process starts fresh.
// Every Client without Options.Store has one of its own.
type MemoryStore struct {
	mu  sync.Mutex
	ids map[[2]string]string // guarded by mu
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{ids: make(map[[2]string]string)} }

// Load returns the eventID saved for (userID, deviceID), "" if none.
func (s *MemoryStore) Load(_ context.Context, userID, deviceID string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ids[[2]string{userID, deviceID}], nil
}

// Save records eventID for (userID, deviceID).
func (s *MemoryStore) Save(_ context.Context, userID, deviceID, eventID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids[[2]string{userID, deviceID}] = eventID
	return nil
}
