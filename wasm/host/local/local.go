// Package local assembles the local home's native platform from a data
// directory: SQLite for SQL, a KV file, files or an S3-compatible store for
// blobs, the key custodian with its master key file, allow-listed outbound
// HTTP, native argon2id and an in-process rate limiter. The server command,
// the end-to-end tests and the benchmarks all open their platform here, so
// they run the same configuration.
package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"pommy.ai/edge/storage"
	"pommy.ai/edge/storage/keyring"
	"pommy.ai/edge/storage/migrations"
	"pommy.ai/edge/storage/passwords"
	"pommy.ai/edge/wasm/host/blobfs"
	"pommy.ai/edge/wasm/host/blobs3"
	"pommy.ai/edge/wasm/host/egress"
	"pommy.ai/edge/wasm/host/kvstore"
	"pommy.ai/edge/wasm/host/limiter"
	"pommy.ai/edge/wasm/host/sqlite"
)

// Config says where the local platform keeps its data.
type Config struct {
	// Dir holds pommy.db, kv.db, master.key and blobs/ (unless S3 is set).
	Dir string
	// S3, when its Bucket is set, stores blobs in an S3-compatible store
	// instead of Dir/blobs.
	S3 blobs3.Config
	// Egress is the outbound HTTP policy (allow-list).
	Egress egress.Options
	// Clock overrides the system clock (tests).
	Clock storage.Clock
	// Synchronous is SQLite's synchronous mode ("FULL" default).
	Synchronous string
	// Limits are the rate limiter's named limits; storage.Limits (ip
	// 300/min, api 600/min, widget 120/min, login 30/min) when nil.
	Limits map[string]storage.Limit
}

// Platform is an open local platform; Close releases its stores.
type Platform struct {
	storage.Platform
	DB *sqlite.DB
	KV *kvstore.Store
	// MasterKeyCreated reports that this Open made a new master key.
	MasterKeyCreated bool
	closers          []func() error
}

// Open creates Dir if needed, makes the master key on first run, opens the
// stores and applies the migrations.
func Open(ctx context.Context, cfg Config) (*Platform, error) {
	if cfg.Dir == "" {
		return nil, errors.New("local: no data directory")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("local: data directory: %w", err)
	}
	clock := cfg.Clock
	if clock == nil {
		clock = storage.SystemClock{}
	}
	p := &Platform{}
	p.Home, p.Clock = "local", clock
	fail := func(err error) (*Platform, error) {
		p.Close()
		return nil, err
	}

	master, created, err := MasterKey(filepath.Join(cfg.Dir, "master.key"))
	if err != nil {
		return fail(err)
	}
	p.MasterKeyCreated = created
	if p.Keys, err = keyring.New(master); err != nil {
		return fail(err)
	}
	clear(master)

	if p.DB, err = sqlite.OpenWith(filepath.Join(cfg.Dir, "pommy.db"), sqlite.Options{Synchronous: cfg.Synchronous}); err != nil {
		return fail(err)
	}
	p.closers = append(p.closers, p.DB.Close)
	if err := p.DB.Migrate(ctx, migrations.FS); err != nil {
		return fail(fmt.Errorf("local: migrations: %w", err))
	}
	p.SQL = p.DB

	if p.KV, err = kvstore.Open(filepath.Join(cfg.Dir, "kv.db"), clock); err != nil {
		return fail(err)
	}
	p.closers = append(p.closers, p.KV.Close)
	p.Platform.KV = p.KV

	if cfg.S3.Bucket != "" {
		s3, err := blobs3.New(ctx, cfg.S3)
		if err != nil {
			return fail(err)
		}
		// Fail at start rather than on the first upload: a wrong endpoint,
		// bucket or credential is far likelier than an outage at this moment.
		if err := s3.Check(ctx); err != nil {
			return fail(fmt.Errorf("local: S3 store at %s: %w", cfg.S3.Endpoint, err))
		}
		p.Blobs = s3
	} else {
		fsb, err := blobfs.Open(filepath.Join(cfg.Dir, "blobs"), blobfs.Options{Clock: clock})
		if err != nil {
			return fail(err)
		}
		p.Blobs = fsb
	}

	if p.HTTP, err = egress.New(cfg.Egress); err != nil {
		return fail(err)
	}

	// argon2id natively, at most GOMAXPROCS hashes at once (19 MiB each).
	if p.Passwords, err = passwords.New(passwords.Options{}); err != nil {
		return fail(err)
	}
	// In-process counters, shared by every guest instance of this host.
	if p.Limiter, err = limiter.New(limiter.Options{Limits: cfg.Limits, Clock: clock}); err != nil {
		return fail(err)
	}
	return p, nil
}

// Close closes the stores in reverse order of opening.
func (p *Platform) Close() error {
	var errs []error
	for i := len(p.closers) - 1; i >= 0; i-- {
		errs = append(errs, p.closers[i]())
	}
	p.closers = nil
	return errors.Join(errs...)
}

// MasterKey reads the master key file, or creates it with mode 0600 when it
// does not exist. A file that others may read is refused: the master key
// unlocks every tenant's data.
func MasterKey(path string) (key []byte, created bool, err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		key = keyring.NewMasterKey()
		if _, err := f.Write(key); err != nil {
			f.Close()
			os.Remove(path)
			return nil, false, fmt.Errorf("local: writing master key: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			os.Remove(path)
			return nil, false, fmt.Errorf("local: writing master key: %w", err)
		}
		return key, true, f.Close()
	}
	if !errors.Is(err, fs.ErrExist) {
		return nil, false, fmt.Errorf("local: master key: %w", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, false, fmt.Errorf("local: master key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, false, fmt.Errorf("local: master key %s has mode %04o; it must be readable by its owner only (chmod 600 %s)", path, st.Mode().Perm(), path)
	}
	key, err = os.ReadFile(path)
	if err != nil {
		return nil, false, fmt.Errorf("local: master key: %w", err)
	}
	if len(key) != keyring.MasterKeySize {
		return nil, false, fmt.Errorf("local: master key %s is %d bytes, want %d (corrupt or not a master key)", path, len(key), keyring.MasterKeySize)
	}
	return key, false, nil
}
