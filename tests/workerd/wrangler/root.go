package wrangler

import (
	"fmt"
	"os"
	"path/filepath"
)

// FindRoot returns the nearest directory at or above dir holding
// wrangler.toml.
func FindRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "wrangler.toml")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("wrangler: no wrangler.toml at or above %s", dir)
		}
	}
}
