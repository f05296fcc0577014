package diagram

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

var arcs = regexp.MustCompile(` A[-0-9.]+,[-0-9.]+ 0 [01] 1 `)

func testRing(n int) *Ring {
	r := &Ring{Title: fmt.Sprintf("a ring of %d", n), Info: []string{"server: DHT ready"}}
	for i := range n {
		r.Nodes = append(r.Nodes, RingNode{Name: fmt.Sprintf("n%d", i), Addr: fmt.Sprintf("192.0.2.%d:5000", 10+i), Records: 10 * i, Leader: i == 0})
	}
	return r
}

// A ring of any size draws every node with its id, address and records,
// the leader marked, in well-formed SVG, the same bytes every time.
func TestRingSVG(t *testing.T) {
	for _, n := range []int{1, 2, 3, 8, 64} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			r := testRing(n)
			r.Query = &RingQuery{LongName: "A & <B>", Pos: 100, From: n - 1, Target: 100 % n, Found: true}
			r.Warnings = []string{"x <disagrees>"}
			svg := r.SVG()
			text := svgText(t, svg)
			for i := range n {
				for _, s := range []string{fmt.Sprintf("n%d\n", i), fmt.Sprintf("192.0.2.%d:5000", 10+i), fmt.Sprintf("%d records", 10*i)} {
					if !strings.Contains(text, s) {
						t.Errorf("the drawing lacks %q", s)
					}
				}
			}
			for _, s := range []string{"id 0 · leader", `query "A & <B>" from the querier`, "query-result to the querier: found", "warning: x <disagrees>", "server: DHT ready"} {
				if !strings.Contains(text, s) {
					t.Errorf("the drawing lacks %q", s)
				}
			}
			// One arc a node, and one more for every hop of the walk.
			hops := r.Query.Hops(n)
			if got := len(arcs.FindAll(svg, -1)); got != n+hops {
				t.Errorf("%d arcs, want %d for the ring and %d for the walk", got, n, hops)
			}
			if !bytes.Equal(svg, r.SVG()) {
				t.Fatal("the drawing is not deterministic")
			}
		})
	}
}

func TestRingText(t *testing.T) {
	r := testRing(3)
	r.Nodes[2].Missing = true
	r.Query = &RingQuery{LongName: "Aruba", Pos: 138, From: 1, Target: 0}
	got := r.Text()
	for _, want := range []string{
		"ring of 3; every message travels right",
		"id 0  n0  192.0.2.10:5000",
		"right: n1  (leader)",
		"id 2  n2  192.0.2.12:5000        (no file read)",
		`query "Aruba": slot 138, id 138 mod 3 = 0; from n1: n1 → n2 → n0, 2 hops; n0 would hold it, has no such record`,
		"server: DHT ready",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the text lacks %q:\n%s", want, got)
		}
	}
	// A walk that ends at a member whose file was not read cannot say
	// what that member answers.
	r.Query = &RingQuery{LongName: "Aruba", Pos: 140, From: 0, Target: 2}
	if got := r.Text(); !strings.Contains(got, "n2 would hold it; its file was not read, so whether it has the record is not known") || strings.Contains(got, "no such record") {
		t.Errorf("a walk to a member whose file was not read:\n%s", got)
	}
	if text := svgText(t, r.SVG()); !strings.Contains(text, "query-result to the querier (its file not read)") || strings.Contains(text, "not found") {
		t.Errorf("the drawing of a walk to a member whose file was not read says:\n%s", text)
	}
	if h := (&RingQuery{From: 2, Target: 2}).Hops(3); h != 0 {
		t.Errorf("a query that starts at its node: %d hops", h)
	}
	if h := (&RingQuery{From: 2, Target: 1}).Hops(3); h != 2 {
		t.Errorf("from 2 to 1 in a ring of 3: %d hops, want 2", h)
	}
}
