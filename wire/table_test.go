package wire

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The table of messages is complete. Read from the source of types.go:
// every constant of type Type has a row with a name and a decoder, and a
// golden and a sample for the layout tables of docs/DESIGN.md; every type
// with a codec (an appendBody method) has a golden, so it is Append's and
// Decode's through a row; no row is left without a constant; and the table
// of message types in docs/DESIGN.md has a row for each, by code and name,
// and no other.
func TestMessagesTable(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "types.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]Type{}
	codecs := map[string]bool{}
	for _, decl := range f.Decls {
		switch decl := decl.(type) {
		case *ast.GenDecl:
			if decl.Tok != token.CONST {
				continue
			}
			for _, spec := range decl.Specs {
				vs := spec.(*ast.ValueSpec)
				if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Type" {
					continue
				}
				for i, name := range vs.Names {
					lit, ok := vs.Values[i].(*ast.BasicLit)
					v, err := strconv.ParseUint(fmt.Sprint(lit.Value), 0, 8)
					if !ok || err != nil {
						t.Fatalf("constant %s: cannot read its value", name.Name)
					}
					consts[name.Name] = Type(v)
				}
			}
		case *ast.FuncDecl:
			if decl.Recv != nil && decl.Name.Name == "appendBody" {
				if id, ok := decl.Recv.List[0].Type.(*ast.Ident); ok {
					codecs[id.Name] = true
				}
			}
		}
	}
	if len(consts) == 0 || len(codecs) == 0 {
		t.Fatalf("read %d Type constants and %d codecs from types.go", len(consts), len(codecs))
	}

	goldenTypes := map[Type]bool{}
	goldenNames := map[string]bool{}
	for _, g := range goldens {
		goldenTypes[g.msg.Type()] = true
		goldenNames[fmt.Sprintf("%T", g.msg)] = true
	}
	samples := layoutSamples()
	names := map[string]string{}
	for c, typ := range consts {
		switch {
		case !typ.known():
			t.Errorf("%s (%d) has no row in messages", c, typ)
		case messages[typ].decode == nil:
			t.Errorf("%s (%d) has no decoder in messages", c, typ)
		case names[typ.String()] != "":
			t.Errorf("%s and %s are both named %q", c, names[typ.String()], typ)
		default:
			names[typ.String()] = c
		}
		if !goldenTypes[typ] {
			t.Errorf("%s (%d) has no golden in codec_test.go", c, typ)
		}
		if _, ok := samples[typ]; !ok {
			t.Errorf("%s (%d) has no sample in layoutSamples", c, typ)
		}
	}
	rows := 0
	for typ := range messages {
		if Type(typ).known() {
			rows++
		}
	}
	if rows != len(consts) {
		t.Errorf("messages has %d rows for %d Type constants", rows, len(consts))
	}
	for c := range codecs {
		if !goldenNames["wire."+c] {
			t.Errorf("%s has a codec but no golden", c)
		}
	}
	doc := designTypes(t)
	for c, typ := range consts {
		if name, ok := doc[typ]; !ok {
			t.Errorf("%s (%d) has no row in DESIGN.md's table of message types", c, typ)
		} else if name != typ.String() {
			t.Errorf("DESIGN.md's table of message types names %d %q; the code, %q", typ, name, typ)
		}
	}
	for typ, name := range doc {
		if !typ.known() {
			t.Errorf("DESIGN.md's table of message types has %d (%s), which the code has not", typ, name)
		}
	}
}

// designTypes reads the table of message types of docs/DESIGN.md: each
// row's type code and name.
func designTypes(t *testing.T) map[Type]string {
	b, err := os.ReadFile("../docs/DESIGN.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(b), "\n### Message types\n")
	if !ok {
		t.Fatal("DESIGN.md has no section \"Message types\"")
	}
	table, _, _ = strings.Cut(strings.TrimLeft(table, "\n"), "\n\n")
	row := regexp.MustCompile(`(?m)^\| (\d+) \| ([a-z-]+) \|`)
	types := map[Type]string{}
	for _, m := range row.FindAllStringSubmatch(table, -1) {
		v, _ := strconv.ParseUint(m[1], 10, 8)
		if _, dup := types[Type(v)]; dup {
			t.Errorf("DESIGN.md's table of message types has two rows for %d", v)
		}
		types[Type(v)] = m[2]
	}
	if len(types) == 0 {
		t.Fatal("read no row of DESIGN.md's table of message types")
	}
	return types
}
