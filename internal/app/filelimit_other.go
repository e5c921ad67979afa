//go:build !unix

package app

// fileLimit is unknown here: no automatic connection cap.
func fileLimit() int { return 0 }
