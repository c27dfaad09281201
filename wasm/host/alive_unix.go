//go:build unix

package host

import (
	"errors"
	"net"
	"syscall"
)

// connAlive reports whether the client of a held connection is still
// there, without blocking and without a goroutine per connection: a
// non-blocking peek sees the end of the stream (or a reset) that a client
// leaves when it goes. Bytes it sent are left unread (and count as
// alive).
func connAlive(c net.Conn) bool {
	if sc, ok := c.(*serverConn); ok {
		c = sc.Conn
	}
	sys, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sys.SyscallConn()
	if err != nil {
		return false
	}
	alive := true
	var buf [1]byte
	err = raw.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EWOULDBLOCK), errors.Is(err, syscall.EINTR):
		case err != nil || n == 0:
			alive = false
		}
		return true // never wait for readiness
	})
	return alive && err == nil
}
