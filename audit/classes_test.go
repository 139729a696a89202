package audit

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// eventTypeLit is what an event type looks like: dotted lower-case words.
var eventTypeLit = regexp.MustCompile(`^[a-z][a-z_]*(\.[a-z_]+)+$`)

// recordedEventTypes reads every non-test Go file of the module and
// returns the event types it records, with where each was found: string
// literals given as `Type:` in a composite literal, passed to a function
// or method whose name contains "event" (o.Event, a.event, RecordEvent
// helpers), or assigned to a variable whose name contains "type".
// storage/storagetest is skipped: its synthetic types only test stores.
func recordedEventTypes(t *testing.T, root string) map[string]string {
	t.Helper()
	found := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); n == "node_modules" || n == "testdata" || n == "storagetest" || strings.HasPrefix(n, ".") && path != root {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		add := func(e ast.Expr) {
			bl, ok := e.(*ast.BasicLit)
			if !ok || bl.Kind != token.STRING {
				return
			}
			s, err := strconv.Unquote(bl.Value)
			if err == nil && eventTypeLit.MatchString(s) {
				if _, seen := found[s]; !seen {
					found[s] = fset.Position(bl.Pos()).String()
				}
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.KeyValueExpr:
				if id, ok := x.Key.(*ast.Ident); ok && id.Name == "Type" {
					add(x.Value)
				}
			case *ast.CallExpr:
				name := ""
				switch fn := x.Fun.(type) {
				case *ast.SelectorExpr:
					name = fn.Sel.Name
				case *ast.Ident:
					name = fn.Name
				}
				if strings.Contains(strings.ToLower(name), "event") {
					for _, a := range x.Args {
						add(a)
					}
				}
			case *ast.AssignStmt:
				for i, l := range x.Lhs {
					if id, ok := l.(*ast.Ident); ok && i < len(x.Rhs) && strings.Contains(strings.ToLower(id.Name), "type") {
						add(x.Rhs[i])
					}
				}
			case *ast.ValueSpec:
				for i, id := range x.Names {
					if i < len(x.Values) && strings.Contains(strings.ToLower(id.Name), "type") {
						add(x.Values[i])
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// TestEveryEventTypeIsClassified: each event type the code base records
// belongs to exactly one retention class list. A new event domain (say
// "letter.sent") fails here until it is added to BusinessTypes (follows the
// records, redacted after the message retention) or SecurityTypes (kept
// for the audit retention).
func TestEveryEventTypeIsClassified(t *testing.T) {
	found := recordedEventTypes(t, "..")
	// The scan must see the domains we know of, or it scans nothing.
	for _, want := range []string{"auth.login", "vorgang.status.changed", "mailbox.message.sent", "intake.pin.login",
		"intake.upload.completed", "notifier.mail.failed", "audit.query", "audit.retention.applied"} {
		if _, ok := found[want]; !ok {
			t.Errorf("the source scan did not find %q; is recordedEventTypes still looking in the right places?", want)
		}
	}
	types := make([]string, 0, len(found))
	for typ := range found {
		types = append(types, typ)
	}
	sort.Strings(types)
	for _, typ := range types {
		b, s := IsBusinessType(typ), IsSecurityType(typ)
		switch {
		case !b && !s:
			t.Errorf("event type %q (%s) is in neither audit.BusinessTypes nor audit.SecurityTypes: decide its retention class", typ, found[typ])
		case b && s:
			t.Errorf("event type %q (%s) is in both audit.BusinessTypes and audit.SecurityTypes", typ, found[typ])
		}
	}
}

// TestClassListsArePlainTypes: both lists hold only what
// BusinessPredicate may inline into SQL.
func TestClassListsArePlainTypes(t *testing.T) {
	for _, l := range [][]string{BusinessTypes, SecurityTypes} {
		for _, typ := range l {
			if !plainType.MatchString(typ) {
				t.Errorf("class list entry %q is not a plain type", typ)
			}
		}
	}
}
