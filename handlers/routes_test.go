package handlers

import (
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"pommy.ai/edge/handlers/web"
)

var update = flag.Bool("update", false, "rewrite generated docs (docs/permissions.md)")

const permissionsDoc = "../docs/permissions.md"

// TestPermissionsDoc keeps docs/permissions.md equal to what the route
// table generates.
func TestPermissionsDoc(t *testing.T) {
	want := PermissionsDoc()
	if *update || os.Getenv("POMMY_UPDATE_DOCS") == "1" {
		if err := os.WriteFile(permissionsDoc, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(permissionsDoc)
	if err != nil || string(got) != want {
		t.Fatalf("docs/permissions.md is not what the route table generates (err=%v).\n"+
			"Regenerate it: go test ./handlers -run TestPermissionsDoc -update", err)
	}
}

// TestRouteTable: every route has a handler and a summary, every
// authenticated route a permission some role has, and no pattern repeats.
func TestRouteTable(t *testing.T) {
	seen := map[string]bool{}
	for _, rt := range (&app{}).routes() {
		k := rt.Method + " " + rt.Pattern
		if seen[k] {
			t.Errorf("%s twice", k)
		}
		seen[k] = true
		if rt.Summary == "" {
			t.Errorf("%s: no summary", k)
		}
		if rt.Perm == permPublic {
			if rt.public == nil || rt.handle != nil || rt.Scope != nil {
				t.Errorf("%s: public route must have only a public handler", k)
			}
			continue
		}
		if rt.handle == nil || rt.public != nil {
			t.Errorf("%s: tenant route must have a scoped handler", k)
		}
		if rt.Perm == permVisitor {
			// The widget's visitor: no role, no API key scope.
			for _, role := range roles {
				if roleAllows(role, rt.Perm) {
					t.Errorf("%s: the %s role holds the visitor permission", k, role)
				}
			}
			if rt.Scope != nil {
				t.Errorf("%s: a visitor route must not be reachable with an API key scope", k)
			}
			continue
		}
		if !roleAllows(roleOwner, rt.Perm) {
			t.Errorf("%s: permission %q is granted to no role", k, rt.Perm)
		}
		// Errors say what was refused in words, never the internal name.
		if ph := permPhrases[rt.Perm]; ph == "" || strings.ContainsAny(ph, "._") {
			t.Errorf("%s: permission %q has no phrase for people (permPhrases)", k, rt.Perm)
		}
		if rt.Scope != nil && safeMethod(rt.Method) == rt.Scope.Write {
			t.Errorf("%s: scope %s does not match the method", k, rt.Scope)
		}
	}
	// Least privilege, as promised.
	for _, p := range []perm{permMembersManage, permSettingsWrite, permKeysManage, permOwnershipMove, permTenantDelete} {
		if roleAllows(roleAgent, p) {
			t.Errorf("agent may %s", p)
		}
	}
	for _, p := range []perm{permOwnershipMove, permTenantDelete} {
		if roleAllows(roleAdmin, p) {
			t.Errorf("admin may %s", p)
		}
	}
}

var (
	sqlLiteral   = regexp.MustCompile(`^\s*(SELECT|INSERT INTO|UPDATE|DELETE FROM|WITH|REPLACE INTO)\s`)
	insertTenant = regexp.MustCompile(`(?is)^\s*INSERT\s+INTO\s+\w+\s*\([^)]*\btenant_id\b`)
	whereTenant  = regexp.MustCompile(`(?i)\btenant_id\s*(=|IN)\s*\?`)
)

// TestSQLHasTenantCondition is the lint of DESIGN.md §4: every SQL string
// literal in the handlers, in every package under handlers/ (each
// capability's own and any added later), must carry its tenant condition
// (a tenant_id compared with a bound parameter, or tenant_id among an
// INSERT's columns), unless the line before it explains, with
// "// tenant-lookup: why", that it resolves a principal or is global by
// nature.
func TestSQLHasTenantCondition(t *testing.T) {
	problems, checked, pending, err := lintSQL(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
	for _, p := range pending {
		t.Log(p)
	}
	if checked < 20 {
		t.Fatalf("the lint saw only %d SQL literals; is it looking in the right place?", checked)
	}
	// Capability packages are found by walking, not by a list: each of
	// today's must have been read.
	for _, dir := range []string{"identity", "tenant", "conversations", "audit", "jobs", "webhooks", "widget"} {
		if checked := checkedIn[dir]; checked == 0 {
			t.Errorf("the lint read no SQL in handlers/%s", dir)
		}
	}
}

// TestSQLLintCatchesEveryPackage proves the lint can fail: an unscoped
// query in a new capability package, however deep, is reported, and the
// same query with its tenant condition or an explanation is not.
func TestSQLLintCatchesEveryPackage(t *testing.T) {
	root := t.TempDir()
	write := func(path, src string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, path)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, path), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("conversations/messages.go", "package conversations\n\nconst q = `SELECT body FROM messages WHERE id = ?`\n")
	write("inbox/views/views.go", "package views\n\nvar q = \"DELETE FROM views \" + \"WHERE id = ?\"\n")
	write("widget/ok.go", "package widget\n\nconst q = `SELECT 1 FROM widgets WHERE tenant_id = ? AND id = ?`\n\n"+
		"// tenant-lookup: resolves the widget's tenant from its public key.\nconst k = `SELECT tenant_id FROM widgets WHERE public_key = ?`\n")
	write("widget/ok_test.go", "package widget\n\nconst q = `SELECT body FROM messages`\n")
	problems, checked, _, err := lintSQL(root)
	if err != nil {
		t.Fatal(err)
	}
	if checked != 4 || len(problems) != 2 ||
		!strings.Contains(problems[0], "conversations/messages.go") || !strings.Contains(problems[1], filepath.Join("inbox", "views", "views.go")) {
		t.Fatalf("checked %d, problems:\n%s", checked, strings.Join(problems, "\n"))
	}
}

// checkedIn counts, per top-level directory, the SQL literals lintSQL read
// under the handlers package (for TestSQLHasTenantCondition).
var checkedIn = map[string]int{}

// lintSQL reads every non-test .go file under root and reports each SQL
// literal without its tenant condition.
func lintSQL(root string) (problems []string, checked int, pending []string, err error) {
	var files []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return nil, 0, nil, err
	}
	pendingSeen := map[string]bool{}
	for _, path := range files {
		f, _ := filepath.Rel(root, path)
		f = filepath.ToSlash(f)
		fset := token.NewFileSet()
		file, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return nil, 0, nil, err
		}
		explained := map[int]bool{}
		for _, cg := range file.Comments {
			for _, c := range cg.List {
				if strings.Contains(c.Text, "tenant-lookup:") || strings.Contains(c.Text, "tenant-scoped:") {
					explained[fset.Position(c.End()).Line] = true
				}
			}
		}
		ast.Inspect(file, func(n ast.Node) bool {
			var lit *ast.BasicLit
			var s string
			switch x := n.(type) {
			case *ast.BinaryExpr:
				// A query built by concatenation is checked whole: its
				// constant parts, with each non-constant part as "…".
				if x.Op != token.ADD {
					return true
				}
				parts, first := concatText(x)
				if first == nil || !sqlLiteral.MatchString(parts) {
					return true
				}
				lit, s = first, parts
			case *ast.BasicLit:
				if x.Kind != token.STRING {
					return true
				}
				v, err := strconv.Unquote(x.Value)
				if err != nil || !sqlLiteral.MatchString(v) {
					return true
				}
				lit, s = x, v
			default:
				return true
			}
			checked++
			if root == "." {
				dir, _, _ := strings.Cut(f, "/")
				checkedIn[dir]++
			}
			pos := fset.Position(lit.Pos())
			if whereTenant.MatchString(s) || insertTenant.MatchString(s) || explained[pos.Line-1] {
				return false // a checked chain's parts are not checked again
			}
			if why, ok := pendingElsewhere[f+": "+firstLine(s)]; ok && root == "." {
				pendingSeen[f+": "+firstLine(s)] = true
				pending = append(pending, fmt.Sprintf("%s: pending in a package this test's owner does not own: %s", pos, why))
				return false
			}
			problems = append(problems, fmt.Sprintf("%s: SQL without its tenant condition (add `tenant_id = ?`, or explain with a `// tenant-lookup: why` comment on the line before):\n\t%s", pos, firstLine(s)))
			return false
		})
	}
	if root == "." {
		for k := range pendingElsewhere {
			if !pendingSeen[k] {
				problems = append(problems, fmt.Sprintf("pendingElsewhere entry %q no longer matches any SQL; delete it", k))
			}
		}
	}
	return problems, checked, pending, nil
}

// pendingElsewhere lists, by file and query text, SQL in packages owned by
// others whose tenant condition is built outside the literal (so the lint
// cannot see it) and which still need a "// tenant-scoped: why" comment on
// the line before. Each entry must keep matching, so the list cannot rot.
var pendingElsewhere = map[string]string{
	"audit/query.go: SELECT … FROM audit_events WHERE … ORDER BY seq DESC LIMIT ?":        "Filter.where starts with tenant_id = ?; add a // tenant-scoped: comment (audit engineer)",
	"audit/query.go: SELECT … FROM audit_events WHERE … AND seq > ? ORDER BY seq LIMIT ?": "Filter.where starts with tenant_id = ?; add a // tenant-scoped: comment (audit engineer)",
}

// concatText joins a + chain's string literals, writing "…" for the parts
// that are not literals; first is the chain's leftmost literal.
func concatText(e ast.Expr) (string, *ast.BasicLit) {
	switch x := e.(type) {
	case *ast.BinaryExpr:
		if x.Op != token.ADD {
			return "…", nil
		}
		l, lf := concatText(x.X)
		r, rf := concatText(x.Y)
		if lf == nil {
			lf = rf
		}
		return l + r, lf
	case *ast.BasicLit:
		if v, err := strconv.Unquote(x.Value); err == nil && x.Kind == token.STRING {
			return v, x
		}
	case *ast.ParenExpr:
		return concatText(x.X)
	}
	return "…", nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i > 0 {
		return s[:i]
	}
	return s
}

// TestRoleMatrix pins the roles of the permissions that capabilities added
// later rely on, and that every permission is declared whole (listed,
// phrased, granted to the owner).
func TestRoleMatrix(t *testing.T) {
	for _, p := range perms {
		if permPhrases[p] == "" || !roleAllows(roleOwner, p) || !roleAllows(roleAdmin, p) && p != permOwnershipMove && p != permTenantDelete {
			t.Errorf("%s: no phrase, or not granted to owner and admin", p)
		}
	}
	for role, ps := range rolePerms {
		for _, p := range ps {
			if !slices.Contains(perms, p) {
				t.Errorf("%s holds %s, which perms does not list", role, p)
			}
		}
	}
	for _, p := range []perm{permConversationsRead, permConversationsWrite, permContactsRead, permContactsWrite} {
		if !roleAllows(roleAgent, p) {
			t.Errorf("an agent may not %s", p)
		}
	}
	if roleAllows(roleAgent, permWebhooksManage) {
		t.Error("an agent may manage webhooks")
	}
	want := []string{"conversations:read", "conversations:write", "contacts:read", "contacts:write", "webhooks:read", "webhooks:write"}
	for _, sc := range want {
		if !slices.Contains(APIKeyScopes(), sc) {
			t.Errorf("API keys cannot be given %s", sc)
		}
	}
}
func TestForbiddenSaysWhatInWords(t *testing.T) {
	s := &web.Scope{Role: roleAgent}
	err := authorize(s, route{Method: "POST", Pattern: "/v1/api-keys", Perm: permKeysManage})
	var ae *web.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusForbidden {
		t.Fatalf("got %v", err)
	}
	if ae.Message != "the agent role may not manage API keys" {
		t.Errorf("message %q", ae.Message)
	}
}
