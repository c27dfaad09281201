package storage

import "context"

// Passwords hashes and checks people's passwords with argon2id. It is a
// port, not a library call, because where it runs decides its cost: the
// host computes it natively, several times faster than inside the guest.
type Passwords interface {
	// Hash returns the PHC string form ($argon2id$v=19$m=…,t=…,p=…$salt$hash)
	// of password under a fresh random salt.
	Hash(ctx context.Context, password []byte) (string, error)
	// Verify reports whether password matches encoded, in constant time. A
	// malformed encoded string is an error wrapping ErrInvalid.
	Verify(ctx context.Context, encoded string, password []byte) (bool, error)
}
