// Package bench is the engine of signald-bench, signald's load generator.
//
// It drives a running signald over real WebSockets in one of six
// scenarios (idle connections, one-to-one call setups, group invitations,
// call setups among many idle users while signald's Redis Pub/Sub
// connections are killed, the server's memory per pending invitation and
// after a flood, invites to many idle callees from a few callers),
// measures latencies on the client side, and reads the server's own cost
// (CPU, memory, connections) from its /metrics endpoint and, when signald
// runs on Redis, the Redis command counts, CPU and memory from INFO, so
// that one report says what a call setup costs end to end.
//
// The load tool must never be the bottleneck, so the hot path is lean on
// purpose: one reader goroutine per connection calls a scenario's handler
// directly (no goroutine or channel per message), frames are parsed by a
// small scanner that only looks at the fields the bench needs
// (frame.go), requests are appended into pooled buffers, and scenario state
// lives in per-pair structs instead of maps. The report includes the tool's
// own CPU time next to the server's so that a reader can check.
package bench
