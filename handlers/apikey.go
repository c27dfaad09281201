package handlers

import (
	"crypto/rand"
	"fmt"
	"hash/crc32"
	"math/big"
	"strings"
)

// API keys look like pk_live_<22 base62: 128 random bits><6 base62: CRC32>.
// The checksum lets a malformed or mistyped key be refused before any
// storage lookup, and lets secret scanners recognise our keys.
const (
	apiKeyPrefix   = "pk_live_"
	apiKeyRandLen  = 22 // ceil(128 / log2(62))
	apiKeyCRCLen   = 6  // ceil(32 / log2(62))
	apiKeyLen      = len(apiKeyPrefix) + apiKeyRandLen + apiKeyCRCLen
	base62Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

func base62(n *big.Int, width int) string {
	b := make([]byte, width)
	base := big.NewInt(62)
	x := new(big.Int).Set(n)
	m := new(big.Int)
	for i := width - 1; i >= 0; i-- {
		x.DivMod(x, base, m)
		b[i] = base62Alphabet[m.Int64()]
	}
	return string(b)
}

func newAPIKey() string {
	var raw [16]byte
	rand.Read(raw[:])
	body := apiKeyPrefix + base62(new(big.Int).SetBytes(raw[:]), apiKeyRandLen)
	return body + base62(big.NewInt(int64(crc32.ChecksumIEEE([]byte(body)))), apiKeyCRCLen)
}

// checkAPIKey validates a key's shape and checksum without touching storage.
func checkAPIKey(k string) error {
	if len(k) != apiKeyLen || !strings.HasPrefix(k, apiKeyPrefix) {
		return fmt.Errorf("not a Pommy API key")
	}
	for i := len(apiKeyPrefix); i < len(k); i++ {
		if strings.IndexByte(base62Alphabet, k[i]) < 0 {
			return fmt.Errorf("API key has a character outside base62")
		}
	}
	body := k[:len(k)-apiKeyCRCLen]
	if base62(big.NewInt(int64(crc32.ChecksumIEEE([]byte(body)))), apiKeyCRCLen) != k[len(body):] {
		return fmt.Errorf("API key checksum does not match (mistyped or truncated?)")
	}
	return nil
}
