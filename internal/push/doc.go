// Package push wakes the devices of users who hold no live connection:
// offline push requests for invitations. It knows nothing of live
// connections (package hub) or of the event bus (package bus).
package push
