// Package systemtest holds process-level integration tests of signald: the
// real binary, started several times as separate processes, against real
// redis-server processes (a single server, a Redis Cluster, a Sentinel
// set-up) and, when installed, HAProxy in front. They check what a user
// would notice when a process is killed, restarted or cut off.
//
// Everything listens on 127.0.0.1; every process a test starts is killed at
// the end of that test, and on Linux also by the kernel if the test binary
// dies first (Pdeathsig). The signald binary is built once by TestMain.
//
// Run with: go test -race -count=1 ./internal/systemtest/ -v
// They are skipped with -short.
package systemtest
