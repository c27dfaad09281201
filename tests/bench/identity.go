//go:build !windows

package main

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"pommy.ai/edge/handlers"
	"pommy.ai/edge/storage"
	"pommy.ai/edge/tests/apitest"
	"pommy.ai/edge/wasm/host"
	"pommy.ai/edge/wasm/host/sqlite"
)

var (
	sessionSizes = flag.String("sessions", "1000,100000,1000000", "rows in the sessions table at which the session check is timed")
	sessionSeq   = flag.Int("session-seq", 1000, "sequential session checks timed at each size")
	loginN       = flag.Int("logins", 40, "sequential logins timed per home")
	argon2N      = flag.Int("argon2", 5, "argon2id hashes timed per home through /__test/argon2")
)

// sessionCookie is the session cookie's name (apitest.SessionCookie).
const sessionCookie = apitest.SessionCookie

// meRequest is GET /v1/me with a session cookie, as a same-origin browser
// sends it.
func meRequest(base, token string) request {
	return request{method: "GET", url: base + "/v1/me", want: 200,
		header: []string{"Cookie", sessionCookie + "=" + token, "Sec-Fetch-Site", "same-origin"}}
}

// identity measures the session check, its cost as the sessions table
// grows, and the cost of a login with argon2id in the host and in the
// guest.
func (x *b) identity() error {
	ctx := context.Background()
	progress("identity: starting the native handlers and a pooled host on fresh data directories...")
	native, err := x.startNative()
	if err != nil {
		return err
	}
	pool, err := x.startHost("identity-pool", host.Options{})
	if err != nil {
		native.close()
		return err
	}
	closed := false
	defer func() {
		if !closed {
			native.close()
			pool.close()
		}
	}()
	type acct struct {
		h     *home
		label string
		s     *apitest.Session
		f     *fixture // the load run's organizations
	}
	homes := []*acct{{h: native, label: "native handlers (baseline)"}, {h: pool, label: "host, pooled"}}
	for _, a := range homes {
		ac := &apitest.Client{Base: a.h.url, HTTP: x.client}
		if err := catch(func(t testing.TB) { a.s = ac.Signup(t, "Bench Identity Co") }); err != nil {
			return fmt.Errorf("%s: signing up: %w", a.h.name, err)
		}
		if a.f, err = newFixture(ctx, x.client, a.h.url, *orgsN); err != nil {
			return fmt.Errorf("%s: %w", a.h.name, err)
		}
	}

	// 1. The session check: GET /v1/me, sequential and 8 clients, ABBA.
	progress("identity: session check, %d sequential GET /v1/me and %d clients for 2 rounds of %s per home...", *seqN, *conc, *duration)
	seq := make([]result, len(homes))
	par := make([]result, len(homes))
	for i, a := range homes {
		seq[i] = sequential(x.client, meRequest(a.h.url, a.s.Token), 20, *seqN)
	}
	for _, order := range [][]int{{0, 1}, {1, 0}} {
		for _, i := range order {
			par[i] = merge(par[i], loadEach(x.client, homes[i].f.sessionChecks(), *conc, *warmup, *duration))
		}
	}
	var rows [][]string
	for i, a := range homes {
		for _, k := range []struct {
			how string
			r   []result
		}{{"sequential, 1 client", seq}, {fmt.Sprintf("%d clients", *conc), par}} {
			ratio := "1 (baseline)"
			if i > 0 {
				ratio = pct(k.r[i].rps() / k.r[0].rps())
			}
			rows = append(rows, []string{a.label, k.how, rate(k.r[i].rps()), ms(k.r[i].pct(50)), ms(k.r[i].pct(99)), ratio, strconv.Itoa(k.r[i].errors)})
			x.rep.measured(fmt.Sprintf("%s, GET /v1/me, %s", a.label, k.how), k.r[i])
		}
	}
	progress("  session check p50: native %s, host %s (8 clients: %s req/s vs %s)", ms(seq[0].pct(50)), ms(seq[1].pct(50)), rate(par[1].rps()), rate(par[0].rps()))

	// 3. Login, before the sessions table is filled (a login writes a
	// session row and looks up the person's known IPs in it).
	progress("identity: login, %d sequential POST /v1/login per home, then %d argon2id hashes per home...", *loginN, *argon2N)
	logins := make([]result, len(homes))
	for i, a := range homes {
		logins[i] = x.logins(a.h.url, a.s.Email)
		x.rep.measured(a.label+", POST /v1/login", logins[i])
	}
	progress("identity: sign-in with a password and a TOTP code, %d people per home...", *totpN)
	totpBoth, totpCode := make([]result, len(homes)), make([]result, len(homes))
	for i, a := range homes {
		if totpBoth[i], totpCode[i], err = x.totpSignIns(a.h.url); err != nil {
			return fmt.Errorf("%s: %w", a.h.name, err)
		}
		x.rep.measured(a.label+", POST /v1/login + POST /v1/login/mfa (TOTP)", totpBoth[i])
	}
	progress("  password + TOTP p50: host %s, native %s", ms(totpBoth[1].pct(50)), ms(totpBoth[0].pct(50)))
	guest, port, err := x.argon2(pool.url)
	if err != nil {
		return fmt.Errorf("host: %w", err)
	}
	nat, _, err := x.argon2(native.url)
	if err != nil {
		return fmt.Errorf("native: %w", err)
	}
	progress("  login p50: host %s, native %s; argon2id: guest %s, host port %s, native %s",
		ms(logins[1].pct(50)), ms(logins[0].pct(50)), ms(guest.pct(50)), ms(port.pct(50)), ms(nat.pct(50)))

	// 2. The session check as the sessions table grows.
	sizes, err := parseSizes(*sessionSizes)
	if err != nil {
		return err
	}
	// The homes of the session check and the login are done with.
	closed = true
	native.close()
	pool.close()
	os.RemoveAll(filepath.Join(x.tmp, "data-identity-pool"))
	growth, plan, err := x.sessionGrowth(ctx, sizes)
	if err != nil {
		return err
	}

	// The report.
	x.rep.section("Identity: session check and login",
		fmt.Sprintf("Each request with a session cookie (`%s`) is authenticated by one SQL query: the SHA-256 of the token looked up in `sessions`, "+
			"joined to the membership and the tenant (`authenticateSession` in handlers/identity/authenticate.go); `last_seen_at` is written at most once a minute per session, "+
			"so the check is a read. `GET /v1/me` is that check plus one more small query (the person's email and the tenant's name). "+
			"The native handlers and a pooled host each run on a fresh data directory: %d sequential requests (after 20 unmeasured) by one signed-up owner, "+
			"then %d clients for %s after a %s warm-up in two rounds (native, host; host, native) added up, by the owners of %d organizations in turn, "+
			"each organization's request rate raised to the most the API allows, as in the load runs above.",
			sessionCookie, *seqN, *conc, *duration, *warmup, *orgsN))
	x.rep.table([]string{"home", "GET /v1/me", "req/s", "p50", "p99", "vs native", "errors"}, rows)
	x.rep.check("session check (`GET /v1/me`), host pooled, sequential p50 (p99)", ms(seq[1].pct(50))+" ("+ms(seq[1].pct(99))+")", "–", "–")
	x.rep.check(fmt.Sprintf("session check (`GET /v1/me`), host pooled, %d clients: req/s vs native", *conc), pct(par[1].rps()/par[0].rps()), "–", "–")

	x.reportGrowth(growth, plan)
	x.reportLogin(homes[1].label, homes[0].label, logins, guest, port, nat)
	x.reportTOTP([]string{homes[0].label, homes[1].label}, totpBoth, totpCode)
	return nil
}

// logins signs in as email n times in a row, from 16 client addresses in
// turn (the test-only header), so the per-IP login limiter (30 a minute)
// never sheds a bench request; every attempt succeeds, so the SQL login
// throttle, which counts failures only, never applies.
func (x *b) logins(base, email string) result {
	body, _ := json.Marshal(map[string]string{"email": email, "password": apitest.Password})
	var i atomic.Int64
	const ips = 16
	next := func() request {
		n := i.Add(1)
		return request{method: "POST", url: base + "/v1/login", body: body, want: 200,
			header: []string{"Content-Type", "application/json", apitest.TestClientIP, fmt.Sprintf("10.77.0.%d", n%ips+1)}}
	}
	// The warm-up signs in once from every address, so the timed logins
	// come from known addresses, as most real ones do.
	return sequentialEach(x.client, next, ips, *loginN)
}

// argon2 times argon2id hashes through /__test/argon2 (after one
// unmeasured): in the runtime serving the route (the guest, or the native
// handlers), and through the home's Passwords port.
func (x *b) argon2(base string) (runtime, port result, err error) {
	for i := range *argon2N + 1 {
		status, body, err := request{method: "GET", url: base + "/__test/argon2", want: 200}.do(x.client)
		var r struct{ RuntimeNs, PortNs int64 }
		if err != nil || status != 200 || json.Unmarshal(body, &r) != nil || r.RuntimeNs <= 0 {
			return result{}, result{}, fmt.Errorf("GET /__test/argon2: %d %v %.200s", status, err, body)
		}
		if i > 0 {
			runtime.lat = append(runtime.lat, time.Duration(r.RuntimeNs))
			port.lat = append(port.lat, time.Duration(r.PortNs))
		}
	}
	for _, r := range []*result{&runtime, &port} {
		slices.Sort(r.lat)
		r.n = len(r.lat)
	}
	return runtime, port, nil
}

func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 100 || (len(out) > 0 && n <= out[len(out)-1]) {
			return nil, fmt.Errorf("-sessions %q: want increasing sizes of at least 100", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// growthDuration is the load run at each size of the sessions table, per
// round: shorter than the main load runs, as there are three sizes and the
// figure that matters is the ratio between them.
func growthDuration() time.Duration { return min(*duration, 2*time.Second) }

// growthWarmup precedes each of those load runs; the sequential requests
// before it have warmed the home already.
func growthWarmup() time.Duration { return min(*warmup, 300*time.Millisecond) }

// sizeRun is the session check timed at one size of the sessions table.
type sizeRun struct {
	rows, live, sample int
	dbBytes            int64
	fill               time.Duration // to insert the rows added for this size
	seq, par, nat      result
}

// Filler: tenants and people that the filler sessions belong to.
const (
	fillTenants = 2_000
	fillUsers   = 10_000
	// liveShare of the filler sessions are live (recent, not ended); the
	// rest ended or went idle over the last 30 days, as the sweep keeps
	// them.
	liveShare  = 0.05
	sampleSize = 1024
)

var fillID = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// filler writes realistic rows straight into a home's SQL (natively,
// through the local platform's storage.SQL) and keeps a uniform sample of
// the live sessions' tokens for the timed requests.
type filler struct {
	sql     storage.SQL
	rng     *rand.Rand
	now     int64
	tenants []string
	users   [][2]string // user id, tenant id
	live    int
	seen    int // live sessions so far (reservoir sampling)
	sample  []string
}

func (f *filler) id(prefix string) string {
	var b [16]byte
	for i := range b {
		b[i] = byte(f.rng.Uint32())
	}
	return prefix + "_" + fillID.EncodeToString(b[:])
}

// people inserts the filler tenants, users and memberships.
func (f *filler) people(ctx context.Context) error {
	const hash = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$mKqZ8aF0xqUq3bW0n8y9Yl3n1Fq2t6u0w4o7h2c5d8A"
	var stmts []storage.Stmt
	for range fillTenants {
		f.tenants = append(f.tenants, f.id("t"))
	}
	for i := 0; i < fillTenants; i += 500 {
		q, args := "INSERT INTO tenants (id, name, created_at) VALUES ", []any{}
		for j := i; j < min(i+500, fillTenants); j++ {
			q += "(?, ?, ?),"
			args = append(args, f.tenants[j], fmt.Sprintf("Filler %04d Ltd", j), f.now-int64(f.rng.IntN(365))*86_400_000)
		}
		stmts = append(stmts, storage.Stmt{Query: strings.TrimSuffix(q, ","), Args: args})
	}
	for i := 0; i < fillUsers; i += 500 {
		uq, ua := "INSERT INTO users (id, email, name, password_hash, password_changed_at, created_at) VALUES ", []any{}
		mq, ma := "INSERT INTO memberships (tenant_id, user_id, role, status, created_at, updated_at) VALUES ", []any{}
		for j := i; j < min(i+500, fillUsers); j++ {
			u, t := f.id("u"), f.tenants[j%fillTenants]
			f.users = append(f.users, [2]string{u, t})
			role := "agent"
			if j < fillTenants {
				role = "owner"
			}
			uq += "(?, ?, ?, ?, ?, ?),"
			ua = append(ua, u, fmt.Sprintf("filler-%05d@example.com", j), "Filler Person", hash, f.now, f.now)
			mq += "(?, ?, ?, 'active', ?, ?),"
			ma = append(ma, t, u, role, f.now, f.now)
		}
		stmts = append(stmts, storage.Stmt{Query: strings.TrimSuffix(uq, ","), Args: ua},
			storage.Stmt{Query: strings.TrimSuffix(mq, ","), Args: ma})
	}
	_, err := f.sql.Batch(ctx, stmts)
	return err
}

var userAgents = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
}

// sessions inserts n filler sessions, 1,000 rows per INSERT and 50 INSERTs
// per transaction.
func (f *filler) sessions(ctx context.Context, n int) error {
	const perStmt, perTx = 1000, 50
	const day = 86_400_000
	for done := 0; done < n; {
		var stmts []storage.Stmt
		for range perTx {
			if done >= n {
				break
			}
			var q strings.Builder
			q.WriteString("INSERT OR IGNORE INTO sessions (id, token_hash, tenant_id, user_id, created_at, last_seen_at, ip, user_agent, ended_at, ended_reason) VALUES ")
			k := min(perStmt, n-done)
			args := make([]any, 0, 10*k)
			for j := range k {
				if j > 0 {
					q.WriteByte(',')
				}
				q.WriteString("(?,?,?,?,?,?,?,?,?,?)")
				var tb [32]byte
				for i := range tb {
					tb[i] = byte(f.rng.Uint32())
				}
				token := base64.RawURLEncoding.EncodeToString(tb[:])
				th := sha256.Sum256([]byte(token))
				u := f.users[f.rng.IntN(len(f.users))]
				var created, seen int64
				var ended, reason any
				if f.rng.Float64() < liveShare {
					// Live: signed in within the absolute timeout, seen now.
					created = f.now - f.rng.Int64N(6*3_600_000)
					seen = f.now
					f.seen++
					if len(f.sample) < sampleSize {
						f.sample = append(f.sample, token)
					} else if r := f.rng.IntN(f.seen); r < sampleSize {
						f.sample[r] = token
					}
					f.live++
				} else {
					created = f.now - f.rng.Int64N(30*day)
					seen = created + f.rng.Int64N(min(12*3_600_000, f.now-created+1))
					if f.rng.IntN(3) == 0 {
						ended, reason = seen, []string{"logout", "replaced", "idle_timeout", "absolute_timeout"}[f.rng.IntN(4)]
					}
				}
				ip := fmt.Sprintf("%d.%d.%d.%d", 1+f.rng.IntN(223), f.rng.IntN(256), f.rng.IntN(256), 1+f.rng.IntN(254))
				args = append(args, f.id("s"), th[:], u[1], u[0], created, seen, ip, userAgents[f.rng.IntN(len(userAgents))], ended, reason)
			}
			stmts = append(stmts, storage.Stmt{Query: q.String(), Args: args})
			done += k
		}
		if _, err := f.sql.Batch(ctx, stmts); err != nil {
			return err
		}
	}
	return nil
}

// touch marks the sampled sessions seen now, so the timed checks read
// (as most checks do) instead of each writing last_seen_at on first use.
func (f *filler) touch(ctx context.Context) error {
	args := []any{time.Now().UnixMilli()}
	for _, t := range f.sample {
		h := sha256.Sum256([]byte(t))
		args = append(args, h[:])
	}
	_, err := f.sql.Exec(ctx, "UPDATE sessions SET last_seen_at = ? WHERE token_hash IN (?"+strings.Repeat(",?", len(f.sample)-1)+")", args...)
	return err
}

func countRows(ctx context.Context, sql storage.SQL, table string) (int, error) {
	rows, err := sql.Query(ctx, "SELECT count(*) FROM "+table)
	if err != nil {
		return 0, err
	}
	var n int64
	if err := rows.Scan(0, &n); err != nil {
		return 0, err
	}
	return int(n), nil
}

// sessionGrowth times GET /v1/me against one pooled host per size of the
// sessions table, each on its own database filled to that size, with the
// tokens of live sessions sampled across the whole table: sequentially and
// with the load run's clients through the host, and sequentially through
// native handlers on the same platform (same database) for reference. The
// sizes take turns in two rounds, the second in reverse order, like the
// homes of the load runs. It also returns the query plan of the session
// lookup on the largest database.
func (x *b) sessionGrowth(ctx context.Context, sizes []int) ([]sizeRun, []string, error) {
	progress("identity: session check with %v sessions stored, one pooled host and database per size...", sizes)
	type sized struct {
		h   *home
		nat *httptest.Server
		f   *filler
		r   sizeRun
	}
	var all []*sized
	defer func() {
		for _, s := range all {
			s.nat.Close()
			s.h.close()
			os.RemoveAll(filepath.Join(x.tmp, "data-"+s.h.name)) // up to a gigabyte of sessions
		}
	}()
	for _, size := range sizes {
		h, err := x.startHost(fmt.Sprintf("identity-%d", size), host.Options{})
		if err != nil {
			return nil, nil, err
		}
		// Native handlers on the host's own platform: the same database
		// without the guest.
		np := h.p.Platform
		np.Home = "native"
		s := &sized{h: h, nat: httptest.NewServer(handlers.New(np, x.cfg)), r: sizeRun{rows: size}}
		all = append(all, s)
		start := time.Now()
		if s.f, err = fill(ctx, h.p.DB.Path(), size, uint64(size)); err != nil {
			return nil, nil, fmt.Errorf("filling %d sessions: %w", size, err)
		}
		s.r.fill = time.Since(start)
		// From here the sample is touched through the home's own SQL.
		s.f.sql = h.p.SQL
		if n, err := countRows(ctx, h.p.SQL, "sessions"); err != nil || n != size {
			return nil, nil, fmt.Errorf("sessions: %d rows, want %d (%v)", n, size, err)
		}
		for _, suffix := range []string{"", "-wal"} {
			if st, err := os.Stat(h.p.DB.Path() + suffix); err == nil {
				s.r.dbBytes += st.Size()
			}
		}
		s.r.live, s.r.sample = s.f.live, len(s.f.sample)
		progress("  %s sessions (%d live, %d sampled) filled in %s, database %s", thousands(int64(size)), s.f.live, len(s.f.sample), ms(s.r.fill), bytesMB(s.r.dbBytes))
	}

	reqs := func(base string, sample []string) func() request {
		rs := make([]request, len(sample))
		for i, t := range sample {
			rs[i] = meRequest(base, t)
		}
		// Each request a session drawn at random from the sample.
		var n atomic.Uint64
		return func() request {
			i := n.Add(1) * 0x9E3779B97F4A7C15
			return rs[i>>32%uint64(len(rs))]
		}
	}
	up := make([]int, len(all))
	for i := range up {
		up[i] = i
	}
	down := slices.Clone(up)
	slices.Reverse(down)
	for round, order := range [][]int{up, down} {
		for _, i := range order {
			s := all[i]
			progress("  round %d, %s sessions: GET /v1/me...", round+1, thousands(int64(s.r.rows)))
			if err := s.f.touch(ctx); err != nil {
				return nil, nil, fmt.Errorf("touching the sample: %w", err)
			}
			runtime.GC()
			seq := sequentialEach(x.client, reqs(s.h.url, s.f.sample), 50, *sessionSeq/2)
			nat := sequentialEach(x.client, reqs(s.nat.URL, s.f.sample), 50, *sessionSeq/2)
			runEach(x.client, reqs(s.h.url, s.f.sample), *conc, growthWarmup())
			par := runEach(x.client, reqs(s.h.url, s.f.sample), *conc, growthDuration())
			progress("    host p50 %s, native p50 %s, %d clients %s req/s", ms(seq.pct(50)), ms(nat.pct(50)), *conc, rate(par.rps()))
			s.r.seq, s.r.nat, s.r.par = merge(s.r.seq, seq), merge(s.r.nat, nat), merge(s.r.par, par)
		}
	}
	var out []sizeRun
	for _, s := range all {
		for _, r := range []struct {
			what string
			res  result
		}{{"host, sequential", s.r.seq}, {"native, sequential", s.r.nat}, {fmt.Sprintf("host, %d clients", *conc), s.r.par}} {
			x.rep.measured(fmt.Sprintf("GET /v1/me with %s sessions stored, %s", thousands(int64(s.r.rows)), r.what), r.res)
		}
		progress("  %s sessions: host p50 %s p99 %s, %d clients %s req/s; native p50 %s", thousands(int64(s.r.rows)),
			ms(s.r.seq.pct(50)), ms(s.r.seq.pct(99)), *conc, rate(s.r.par.rps()), ms(s.r.nat.pct(50)))
		out = append(out, s.r)
	}
	big := all[len(all)-1]
	plan, err := sessionPlan(ctx, x.root, big.h.p.SQL, big.f.sample[0])
	if err != nil {
		plan = []string{"not shown: " + err.Error()}
	}
	return out, plan, nil
}

// fill writes filler tenants, people and n sessions into the database at
// path through a connection of its own, with a large page cache and
// synchronous=NORMAL: with the home's settings (2 MB of cache per
// connection, an fsync per commit) a million rows with random keys in four
// indexes take minutes. The home's own connections are untouched. It ends
// with a WAL checkpoint, as a running home would have done.
func fill(ctx context.Context, path string, n int, seed uint64) (*filler, error) {
	fdb, err := sqlite.OpenWith(path, sqlite.Options{Synchronous: "NORMAL", MaxConns: 1})
	if err != nil {
		return nil, err
	}
	defer fdb.Close()
	// 512 MiB of pages while filling. No foreign-key checks (the filler's
	// rows are consistent by construction) and INSERT OR IGNORE (256-bit
	// random keys do not collide), so that no multi-row INSERT can abort
	// half done and SQLite keeps no statement journal for it.
	for _, p := range []string{"PRAGMA cache_size = -524288", "PRAGMA foreign_keys = OFF"} {
		if _, err := fdb.Exec(ctx, p); err != nil {
			return nil, err
		}
	}
	f := &filler{sql: fdb, rng: rand.New(rand.NewPCG(seed, 2)), now: time.Now().UnixMilli()}
	if err := f.people(ctx); err != nil {
		return nil, fmt.Errorf("filler people: %w", err)
	}
	have, err := countRows(ctx, fdb, "sessions")
	if err != nil {
		return nil, err
	}
	if err := f.sessions(ctx, n-have); err != nil {
		return nil, err
	}
	if _, err := fdb.Exec(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	return f, nil
}

// sessionPlan is SQLite's EXPLAIN QUERY PLAN of the session lookup as the
// handlers send it: the query is read from the handlers' source, so the
// plan shown is of the query that runs.
func sessionPlan(ctx context.Context, root string, sql storage.SQL, token string) ([]string, error) {
	files, _ := filepath.Glob(filepath.Join(root, "handlers", "*.go"))
	lit := regexp.MustCompile("`[^`]*`")
	query := ""
	for _, file := range files {
		src, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		for _, q := range lit.FindAllString(string(src), -1) {
			if strings.Contains(q, "FROM sessions s") && strings.Contains(q, "s.token_hash = ?") && strings.HasPrefix(q, "`SELECT") {
				query = strings.Trim(q, "`")
			}
		}
	}
	if query == "" {
		return nil, fmt.Errorf("no session lookup (`SELECT … FROM sessions s … s.token_hash = ?`) found in handlers/")
	}
	h := sha256.Sum256([]byte(token))
	rows, err := sql.Query(ctx, "EXPLAIN QUERY PLAN "+query, h[:])
	if err != nil {
		return nil, err
	}
	col := slices.Index(rows.Columns, "detail")
	if col < 0 {
		return nil, fmt.Errorf("EXPLAIN QUERY PLAN: columns %v", rows.Columns)
	}
	out := []string{strings.Join(strings.Fields(query), " ")}
	for i := range rows.Len() {
		d, ok := rows.Values[i][col].(string)
		if !ok {
			return nil, fmt.Errorf("EXPLAIN QUERY PLAN: detail %v", rows.Values[i][col])
		}
		out = append(out, d)
	}
	return out, nil
}

func (x *b) reportGrowth(growth []sizeRun, plan []string) {
	var rows [][]string
	for _, r := range growth {
		rows = append(rows, []string{thousands(int64(r.rows)), thousands(int64(r.live)), bytesMB(r.dbBytes), ms(r.fill),
			ms(r.seq.pct(50)), ms(r.seq.pct(99)), rate(r.par.rps()), ms(r.par.pct(50)), ms(r.par.pct(99)),
			ms(r.nat.pct(50)), ms(r.nat.pct(99)), strconv.Itoa(r.seq.errors + r.par.errors + r.nat.errors)})
	}
	x.rep.para("**Session check as sessions pile up.** One pooled host per size, each on a fresh data directory whose database is filled natively "+
		"through the SQLite adapter before it is timed (multi-row `INSERT`s of 1,000 rows, 50,000 rows a transaction, on a connection of its own with a "+
		"512 MiB page cache, `synchronous=NORMAL` and no foreign-key checks, then a WAL checkpoint; the home's own connections keep their settings): "+
		"%s tenants and %s people (one membership each), then sessions up to the size: random 256-bit tokens stored as their SHA-256, random ids, "+
		"people and IPv4 addresses, real browser user agents, created over the last 30 days (what the sweep keeps); a third of the older ones ended, "+
		"%.0f %% live (signed in within 6 h and seen now). The timed requests present the tokens of up to %d live sessions sampled uniformly across "+
		"the whole table (reservoir sampling), each request one drawn at random, so the lookups land all over the indexes rather than on one hot row; "+
		"the sample is marked seen just before each turn, so the checks read as most do. Each size, per round: %d sequential requests through the host "+
		"and %d through native handlers on the same platform and database (the database alone, for reference), each after 50 unmeasured, then %d clients "+
		"for %s after a %s warm-up. Two rounds, smallest to largest then back, added up, as in the load runs above.",
		thousands(fillTenants), thousands(fillUsers), 100*liveShare, sampleSize, *sessionSeq/2, *sessionSeq/2, *conc, growthDuration(), growthWarmup())
	x.rep.table([]string{"sessions stored", "live", "database (+WAL)", "filled in", "host p50", "host p99",
		fmt.Sprintf("host, %d clients: req/s", *conc), "p50", "p99", "native p50", "native p99", "errors"}, rows)
	if len(growth) >= 2 {
		lo, hi := growth[0], growth[len(growth)-1]
		p50 := float64(hi.seq.pct(50)) / float64(lo.seq.pct(50))
		p99 := float64(hi.seq.pct(99)) / float64(lo.seq.pct(99))
		rps := lo.par.rps() / hi.par.rps()
		nat := float64(hi.nat.pct(50)) / float64(lo.nat.pct(50))
		x.rep.para("%s vs %s sessions stored: host p50 %s, p99 %s; %d-client req/s %s of what they were; native p50 %s. Goal: flat within 1.5× (host p50): **%s**.",
			thousands(int64(hi.rows)), thousands(int64(lo.rows)), times(p50), times(p99), *conc, pct(1/rps), times(nat), map[bool]string{true: "met", false: "not met"}[p50 <= 1.5])
		x.rep.check(fmt.Sprintf("session check p50 with %s vs %s sessions stored (host, sequential)", thousands(int64(hi.rows)), thousands(int64(lo.rows))),
			times(p50)+fmt.Sprintf(" (%s vs %s)", ms(hi.seq.pct(50)), ms(lo.seq.pct(50))), "≤ 1.5×", met(p50 <= 1.5))
	}
	if len(plan) == 1 {
		x.rep.para("The session lookup's query plan: %s", plan[0])
	} else if len(plan) > 1 {
		seek := true
		for _, l := range plan[1:] {
			if !strings.HasPrefix(l, "SEARCH") || !strings.Contains(l, "INDEX") {
				seek = false
			}
		}
		var b strings.Builder
		b.WriteString("The session lookup's plan (`EXPLAIN QUERY PLAN` on the filled database, the query read from handlers/):\n\n```\n")
		b.WriteString(plan[0] + "\n")
		for _, l := range plan[1:] {
			b.WriteString("  " + l + "\n")
		}
		b.WriteString("```\n\n")
		if seek {
			b.WriteString("Every table is reached by an index seek (`SEARCH … USING … INDEX`), none by a scan: the check costs O(log n) in the sessions stored.\n")
		} else {
			b.WriteString("**Not every step is an index seek**: a `SCAN` makes the check grow with the table.\n")
		}
		x.rep.para("%s", strings.TrimRight(b.String(), "\n"))
	}
}

func (x *b) reportLogin(hostLabel, nativeLabel string, logins []result, guest, port, nat result) {
	x.rep.para("**Login.** `POST /v1/login` for the owner signed up above, %d in a row per home after %d unmeasured, each from one of 16 client "+
		"addresses in turn (the `%s` header, honoured only with test routes on), so the per-IP login limiter (30 a minute) never sheds one; "+
		"every attempt succeeds, and the SQL login throttle counts failures only. A login verifies the password with argon2id through the home's "+
		"`Passwords` port (natively in the host; the guest calls it over the ABI), reads the known-IP, throttle and membership rows, writes the session "+
		"and the audit record. argon2id alone is `GET /__test/argon2` (%d runs after 1 unmeasured; median and max), which hashes one password at the "+
		"default parameters (m=19456 KiB, t=2, p=1) twice: in the runtime serving the route (`runtimeNs`: Go compiled to wasip1 in the guest, "+
		"native Go in the native handlers) and through the `Passwords` port (`portNs`). Verify costs what Hash does (it recomputes the hash).",
		*loginN, 16, apitest.TestClientIP, *argon2N)
	natP50 := float64(nat.pct(50))
	rel := func(d time.Duration) string { return times(float64(d) / natP50) }
	est := logins[1].pct(50) - port.pct(50) + guest.pct(50)
	x.rep.table([]string{"what", "p50", "p99 (max)", "n", "vs native argon2id"}, [][]string{
		{"argon2id hash in the guest (Go in wasip1, as the host runs it)", ms(guest.pct(50)), ms(guest.pct(100)), strconv.Itoa(guest.n), rel(guest.pct(50))},
		{"argon2id hash, guest → host `Passwords` port (native)", ms(port.pct(50)), ms(port.pct(100)), strconv.Itoa(port.n), rel(port.pct(50))},
		{"argon2id hash, native Go (native handlers)", ms(nat.pct(50)), ms(nat.pct(100)), strconv.Itoa(nat.n), "1 (baseline)"},
		{"`POST /v1/login`, " + hostLabel + " (argon2id in the host)", ms(logins[1].pct(50)), ms(logins[1].pct(99)), strconv.Itoa(logins[1].n), rel(logins[1].pct(50))},
		{"`POST /v1/login`, " + nativeLabel, ms(logins[0].pct(50)), ms(logins[0].pct(99)), strconv.Itoa(logins[0].n), rel(logins[0].pct(50))},
		{"`POST /v1/login` if the guest hashed itself (estimate: host login − port + guest hash)", ms(est), "–", "–", rel(est)},
	})
	x.rep.check("login (`POST /v1/login`) through the host, p50 (p99)", ms(logins[1].pct(50))+" ("+ms(logins[1].pct(99))+")", "–", "–")
	x.rep.check("argon2id in the guest vs through the host's port (p50)", times(float64(guest.pct(50))/float64(port.pct(50)))+
		fmt.Sprintf(" (%s vs %s)", ms(guest.pct(50)), ms(port.pct(50))), "–", "–")
}
