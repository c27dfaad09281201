// Package shipped checks what the shipped programs are built from: the
// edge worker (GOOS=js), the wasip1 guest and the native host command, as
// `make` and wrangler build them. Test code (the test-only routes, the
// storage contract suites, anything under tests/, the testing package) is
// linked only into test builds (-tags testroutes; docs/decisions.md, "Test
// code stays out of the shipped modules").
package shipped

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "pommy.ai/edge"

// testRoutes is the package that test builds link in.
const testRoutes = module + "/handlers/testroutes"

type program struct {
	name, pkg string
	env       []string
	// tagged reports whether -tags testroutes adds the test routes (the
	// host never runs the application itself, so it has no test build).
	tagged bool
}

var programs = []program{
	{"edge worker", "./worker", []string{"GOOS=js", "GOARCH=wasm"}, true},
	{"wasip1 guest", "./wasm/guest", []string{"GOOS=wasip1", "GOARCH=wasm"}, true},
	{"native host", "./cmd/pommy", nil, false},
}

// testCode reports whether an imported package is test code.
func testCode(pkg string) bool {
	switch {
	case pkg == "testing" || strings.HasPrefix(pkg, "testing/"),
		pkg == "net/http/httptest",
		pkg == testRoutes,
		strings.HasPrefix(pkg, module+"/tests/"),
		// the OpenAPI validator the acceptance suite is checked with
		strings.HasPrefix(pkg, "github.com/getkin/kin-openapi/"),
		// the reference WebAuthn relying party the software authenticator is
		// checked with (the application verifies passkeys itself:
		// docs/decisions.md), and the CBOR writer of that authenticator
		strings.HasPrefix(pkg, "github.com/go-webauthn/"),
		strings.HasPrefix(pkg, "github.com/fxamacker/cbor/"),
		// storagetest and any other *test helper package of the module
		strings.HasPrefix(pkg, module+"/") && strings.HasSuffix(pkg, "test"):
		return true
	}
	return false
}

func TestNoTestCodeShips(t *testing.T) {
	root := repoRoot(t)
	for _, p := range programs {
		t.Run(p.name, func(t *testing.T) {
			shipped := deps(t, root, p, "")
			for _, d := range shipped {
				if testCode(d) {
					t.Errorf("the shipped %s (%s %s) links test code: %s", p.name, strings.Join(p.env, " "), p.pkg, d)
				}
			}
			if !p.tagged {
				return
			}
			// The tag must still add the test routes: without this, the
			// check above would also pass if the test build lost them.
			if tagged := deps(t, root, p, "testroutes"); !slices.Contains(tagged, testRoutes) {
				t.Errorf("%s built with -tags testroutes does not link %s", p.name, testRoutes)
			}
		})
	}
}

// TestMakeBuildsUntagged: the Makefile's guest and worker targets (the
// worker target is also wrangler's build command) build without the tag.
func TestMakeBuildsUntagged(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	root := repoRoot(t)
	for _, target := range []string{"guest", "worker"} {
		cmd := exec.Command("make", "-n", "--no-print-directory", target)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make -n %s: %v\n%s", target, err, out)
		}
		if !strings.Contains(string(out), "go build") {
			t.Errorf("make -n %s shows no go build:\n%s", target, out)
		}
		if strings.Contains(string(out), "testroutes") {
			t.Errorf("make %s builds with the test routes:\n%s", target, out)
		}
	}
	toml, err := os.ReadFile(filepath.Join(root, "wrangler.toml"))
	if err != nil {
		t.Fatal(err)
	}
	// wrangler dev and deploy build with [build] command: make's worker
	// target, checked above, and nothing else.
	var command string
	for _, line := range strings.Split(string(toml), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && strings.TrimSpace(k) == "command" {
			command = strings.TrimSpace(v)
		}
	}
	if command != `"make --no-print-directory -f worker/worker.mk worker"` {
		t.Errorf("wrangler.toml builds the worker with %s; want make's worker target, the shipped build", command)
	}
}

// deps lists every package p links, with the given build tags.
func deps(t *testing.T, root string, p program, tags string) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-tags="+tags, p.pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps -tags=%q %s: %v", tags, p.pkg, err)
	}
	list := strings.Fields(string(out))
	if !slices.Contains(list, module+"/handlers") {
		t.Fatalf("go list -deps %s: no %s/handlers in %d packages; is this the right module?", p.pkg, module, len(list))
	}
	return list
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			t.Fatalf("no go.mod at or above %s", dir)
		}
	}
}
