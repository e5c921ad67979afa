// Package client is a Go client of signald's wire protocol (api/README.md).
//
// Conn is one WebSocket connection: it sends requests, matches replies to
// them by id and hands everything else (events, and replies with id 0) out
// in order. The end-to-end tests drive signald through it frame by frame.
package client
