package storagetest

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"pommy.ai/edge/storage"
)

// PasswordsSuite is the contract of storage.Passwords: argon2id in the PHC
// string format, strict parsing, parameters at or above OWASP's first
// recommendation (19 MiB, 2 passes, 1 lane).
//
// Every case hashes a few times; at 30–200 ms a hash, the suite takes a few
// seconds.
func PasswordsSuite(p storage.Passwords) Suite {
	s := &passwordsSuite{p: p}
	return Suite{Name: "Passwords", Cases: []Case{
		{"HashVerifyRoundTrip", s.roundTrip},
		{"WrongPasswordFalse", s.wrong},
		{"SaltsDiffer", s.saltsDiffer},
		{"ParametersAtLeastFloor", s.floor},
		{"BinaryAndEmptyPasswords", s.binary},
		{"KnownVector", s.knownVector},
		{"MalformedEncodingsInvalid", s.malformed},
		{"AbsurdParametersInvalid", s.absurd},
		{"OversizePasswordInvalid", s.oversize},
	}}
}

type passwordsSuite struct{ p storage.Passwords }

// phc is a parsed PHC string, as far as the suite needs it.
type phc struct {
	m, t, p    uint64
	salt, hash []byte
}

func parsePHC(t T, s string) phc {
	t.Helper()
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v=19" {
		t.Fatalf("hash %q is not $argon2id$v=19$...", s)
	}
	var out phc
	kv := strings.Split(parts[3], ",")
	if len(kv) != 3 {
		t.Fatalf("hash %q: parameters %q are not m=,t=,p=", s, parts[3])
	}
	for i, dst := range []*uint64{&out.m, &out.t, &out.p} {
		name, val, _ := strings.Cut(kv[i], "=")
		n, err := strconv.ParseUint(val, 10, 32)
		if name != "mtp"[i:i+1] || err != nil {
			t.Fatalf("hash %q: parameter %q", s, kv[i])
		}
		*dst = n
	}
	var err error
	if out.salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil {
		t.Fatalf("hash %q: salt is not unpadded base64: %v", s, err)
	}
	if out.hash, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil {
		t.Fatalf("hash %q: hash is not unpadded base64: %v", s, err)
	}
	return out
}

func (s *passwordsSuite) hash(t T, pw string) string {
	t.Helper()
	ctx, cancel := testCtx()
	defer cancel()
	h, err := s.p.Hash(ctx, []byte(pw))
	must(t, err, "Hash")
	return h
}

func (s *passwordsSuite) verify(t T, enc, pw string) bool {
	t.Helper()
	ctx, cancel := testCtx()
	defer cancel()
	ok, err := s.p.Verify(ctx, enc, []byte(pw))
	must(t, err, "Verify")
	return ok
}

func (s *passwordsSuite) roundTrip(t T) {
	enc := s.hash(t, "correct horse battery staple")
	if !s.verify(t, enc, "correct horse battery staple") {
		t.Errorf("Verify of the hashed password is false (%s)", enc)
	}
	if strings.Contains(enc, "correct horse") {
		t.Errorf("the hash contains the password: %s", enc)
	}
}

func (s *passwordsSuite) wrong(t T) {
	enc := s.hash(t, "hunter2-hunter2")
	for _, pw := range []string{"hunter2-hunter3", "Hunter2-hunter2", "hunter2-hunter2 ", "hunter2-hunter", ""} {
		if s.verify(t, enc, pw) {
			t.Errorf("Verify(%q) against the hash of %q is true", pw, "hunter2-hunter2")
		}
	}
}

func (s *passwordsSuite) saltsDiffer(t T) {
	a, b := s.hash(t, "same password"), s.hash(t, "same password")
	if a == b {
		t.Fatalf("two hashes of one password are equal: %s", a)
	}
	pa, pb := parsePHC(t, a), parsePHC(t, b)
	if string(pa.salt) == string(pb.salt) {
		t.Errorf("two hashes share a salt")
	}
	if !s.verify(t, a, "same password") || !s.verify(t, b, "same password") {
		t.Errorf("a hash does not verify")
	}
}

func (s *passwordsSuite) floor(t T) {
	p := parsePHC(t, s.hash(t, "parameters"))
	if p.m < 19*1024 || p.t < 2 || p.p < 1 {
		t.Errorf("parameters m=%d t=%d p=%d are below the floor m=19456 t=2 p=1", p.m, p.t, p.p)
	}
	if len(p.salt) != 16 || len(p.hash) != 32 {
		t.Errorf("salt %d bytes, hash %d bytes; want 16 and 32", len(p.salt), len(p.hash))
	}
}

func (s *passwordsSuite) binary(t T) {
	for _, pw := range []string{"", "\x00", "\x00\xff\xfe", "pässwörd 🔑", strings.Repeat("x", 1024)} {
		enc := s.hash(t, pw)
		if !s.verify(t, enc, pw) {
			t.Errorf("password %q does not verify", short([]byte(pw)))
		}
	}
	// A NUL must not end the password.
	if s.verify(t, s.hash(t, "ab\x00cd"), "ab") {
		t.Errorf("the hash of \"ab\\x00cd\" verifies \"ab\"")
	}
}

// knownVector checks interoperability: a fixed hash of "password" under
// salt "somesaltsomesalt" (m=19456 t=2 p=1, 32 bytes) verifies. It was made
// with golang.org/x/crypto/argon2, which storage/passwords' own tests check
// against the reference implementation's test vector.
func (s *passwordsSuite) knownVector(t T) {
	const enc = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$" + knownVectorHash
	if !s.verify(t, enc, "password") {
		t.Errorf("reference hash of %q does not verify", "password")
	}
	if s.verify(t, enc, "Password") {
		t.Errorf("reference hash verifies the wrong password")
	}
}

// knownVectorHash is argon2id("password", "somesaltsomesalt", t=2, m=19456,
// p=1, 32 bytes) in unpadded base64.
const knownVectorHash = "K13EBUiG7JV+9ZxztmHFTdb7J0WQsnj2V8bZaqyPptE"

func (s *passwordsSuite) malformed(t T) {
	good := s.hash(t, "pw")
	g := parsePHC(t, good)
	salt := base64.RawStdEncoding.EncodeToString(g.salt)
	hash := base64.RawStdEncoding.EncodeToString(g.hash)
	with := func(params, salt, hash string) string {
		return "$argon2id$v=19$" + params + "$" + salt + "$" + hash
	}
	params := fmt.Sprintf("m=%d,t=%d,p=%d", g.m, g.t, g.p)
	cases := map[string]string{
		"empty":              "",
		"plain text":         "pw",
		"bcrypt":             "$2b$10$abcdefghijklmnopqrstuu5jBsT4RFE5MdEjQwYzYS2R1pSlE1RxG",
		"argon2i":            strings.Replace(good, "$argon2id$", "$argon2i$", 1),
		"argon2d":            strings.Replace(good, "$argon2id$", "$argon2d$", 1),
		"version 16":         strings.Replace(good, "$v=19$", "$v=16$", 1),
		"no version":         strings.Replace(good, "$v=19", "", 1),
		"trailing dollar":    good + "$",
		"trailing newline":   good + "\n",
		"leading space":      " " + good,
		"missing hash":       "$argon2id$v=19$" + params + "$" + salt,
		"extra field":        good + "$" + hash,
		"params reordered":   with(fmt.Sprintf("t=%d,m=%d,p=%d", g.t, g.m, g.p), salt, hash),
		"params missing":     with(fmt.Sprintf("m=%d,t=%d", g.m, g.t), salt, hash),
		"params extra":       with(params+",k=1", salt, hash),
		"params spaces":      with(fmt.Sprintf("m=%d, t=%d, p=%d", g.m, g.t, g.p), salt, hash),
		"leading zero":       with(fmt.Sprintf("m=0%d,t=%d,p=%d", g.m, g.t, g.p), salt, hash),
		"negative":           with(fmt.Sprintf("m=%d,t=-%d,p=%d", g.m, g.t, g.p), salt, hash),
		"hex number":         with(fmt.Sprintf("m=0x%x,t=%d,p=%d", g.m, g.t, g.p), salt, hash),
		"padded salt":        with(params, base64.StdEncoding.EncodeToString(g.salt), hash),
		"padded hash":        with(params, salt, base64.StdEncoding.EncodeToString(g.hash)),
		"url base64":         with(params, strings.NewReplacer("+", "-", "/", "_").Replace(salt)+"-_", hash),
		"short salt":         with(params, salt[:len(salt)-4], hash),
		"long salt":          with(params, salt+"AAAA", hash),
		"empty salt":         with(params, "", hash),
		"short hash":         with(params, salt, hash[:len(hash)-4]),
		"long hash":          with(params, salt, hash+"AAAA"),
		"empty hash":         with(params, salt, ""),
		"bad base64":         with(params, salt[:len(salt)-1]+"!", hash),
		"newline in salt":    with(params, salt[:8]+"\n"+salt[8:], hash),
		"huge":               good + strings.Repeat("A", 1<<16),
		"zero memory":        with(fmt.Sprintf("m=0,t=%d,p=%d", g.t, g.p), salt, hash),
		"zero time":          with(fmt.Sprintf("m=%d,t=0,p=%d", g.m, g.p), salt, hash),
		"zero lanes":         with(fmt.Sprintf("m=%d,t=%d,p=0", g.m, g.t), salt, hash),
		"memory below lanes": with("m=7,t=2,p=1", salt, hash),
	}
	ctx, cancel := testCtx()
	defer cancel()
	for name, enc := range cases {
		ok, err := s.p.Verify(ctx, enc, []byte("pw"))
		if ok {
			t.Errorf("%s: Verify(%q) is true", name, enc)
		}
		wantErrIs(t, err, storage.ErrInvalid, name+": Verify")
	}
	// The good one still verifies: the cases above changed only one thing.
	if !s.verify(t, good, "pw") {
		t.Errorf("the unmodified hash does not verify")
	}
}

// absurd checks that parameters a planted hash could use to make a login
// cost gigabytes or minutes are refused before any work.
func (s *passwordsSuite) absurd(t T) {
	salt := base64.RawStdEncoding.EncodeToString(make([]byte, 16))
	hash := base64.RawStdEncoding.EncodeToString(make([]byte, 32))
	ctx, cancel := testCtx()
	defer cancel()
	for _, params := range []string{
		"m=262145,t=2,p=1",     // 256 MiB + 1 KiB
		"m=4294967295,t=2,p=1", // 4 TiB
		"m=99999999999,t=2,p=1",
		"m=19456,t=11,p=1",
		"m=19456,t=4294967295,p=1",
		"m=19456,t=2,p=5",
		"m=19456,t=2,p=255",
		"m=19456,t=2,p=256",
	} {
		enc := "$argon2id$v=19$" + params + "$" + salt + "$" + hash
		ok, err := s.p.Verify(ctx, enc, []byte("pw"))
		if ok {
			t.Errorf("%s: Verify is true", params)
		}
		wantErrIs(t, err, storage.ErrInvalid, params+": Verify")
	}
}

func (s *passwordsSuite) oversize(t T) {
	ctx, cancel := testCtx()
	defer cancel()
	big := make([]byte, 4097)
	_, err := s.p.Hash(ctx, big)
	wantErrIs(t, err, storage.ErrInvalid, "Hash of a 4097-byte password")
	enc := s.hash(t, "pw")
	ok, err := s.p.Verify(ctx, enc, big)
	if ok {
		t.Errorf("Verify of a 4097-byte password is true")
	}
	wantErrIs(t, err, storage.ErrInvalid, "Verify of a 4097-byte password")
	// 4096 bytes is within the limit.
	max := string(patternBytes("max-password", 4096))
	if enc := s.hash(t, max); !s.verify(t, enc, max) {
		t.Errorf("a 4096-byte password does not verify")
	}
}
