//go:build !unix

package host

import "net"

// connAlive cannot look without reading here: a vanished client is found
// at the next write (a poll's or the heartbeat's).
func connAlive(net.Conn) bool { return true }
