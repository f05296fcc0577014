package diagram

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
)

// svgText checks that b is well-formed XML and returns its text.
func svgText(t *testing.T, b []byte) string {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(b))
	var text strings.Builder
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return text.String()
		}
		if err != nil {
			t.Fatalf("not well-formed: %v\n%s", err, b)
		}
		if cd, ok := tok.(xml.CharData); ok {
			text.Write(cd)
			text.WriteByte('\n')
		}
	}
}

var traffic = Machine{
	Title: "lights <&>",
	States: []State{
		{Name: "red", Detail: "stop"},
		{Name: "green", Detail: "go, for a long while until the timer says otherwise"},
		{Name: "amber"},
	},
	Transitions: []Transition{
		{From: "", To: "red", Label: "power on"},
		{From: "red", To: "green", Label: "timer"},
		{From: "green", To: "amber", Label: "timer"},
		{From: "amber", To: "red", Label: "timer: back to the top"},
		{From: "green", To: "red", Label: "fault", Exception: true},
		{From: "red", To: "", Label: "power off"},
	},
	Notes: []string{"a note & more"},
}

// Every state, label and note is drawn, in well-formed SVG, the same bytes
// every time.
func TestMachineSVG(t *testing.T) {
	svg, err := traffic.SVG()
	if err != nil {
		t.Fatal(err)
	}
	text := svgText(t, svg)
	for _, s := range []string{"lights <&>", "red", "green", "amber", "stop", "power on", "timer", "back to the top", "fault", "power off", "a note & more"} {
		if !strings.Contains(text, s) {
			t.Errorf("the drawing lacks %q", s)
		}
	}
	if !strings.Contains(string(svg), `stroke-dasharray`) {
		t.Error("the exception is not dashed")
	}
	if n := strings.Count(string(svg), "<circle"); n != 3 {
		t.Errorf("%d circles, want a start dot and a ringed end dot", n)
	}
	for range 3 {
		again, _ := traffic.SVG()
		if !bytes.Equal(svg, again) {
			t.Fatal("the drawing is not deterministic")
		}
	}
}

func TestMachineCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    Machine
	}{
		{"a state twice", Machine{States: []State{{Name: "a"}, {Name: "a"}}}},
		{"a state without a name", Machine{States: []State{{}}}},
		{"to no state", Machine{States: []State{{Name: "a"}}, Transitions: []Transition{{From: "a", To: "b"}}}},
		{"to itself", Machine{States: []State{{Name: "a"}}, Transitions: []Transition{{From: "a", To: "a"}}}},
	} {
		if _, err := tc.m.SVG(); err == nil {
			t.Errorf("%s: drawn without an error", tc.name)
		}
	}
}

// The layer of a node is its longest path from the start, once the
// transitions back up the machine are turned over.
func TestMachineLayers(t *testing.T) {
	l := &smLayout{m: &traffic}
	l.build()
	l.layer()
	layers := map[string]int{}
	for _, n := range l.nodes {
		if n.kind == smBox {
			layers[traffic.States[n.state].Name] = n.layer
		}
	}
	if layers["red"] != 2 || layers["green"] != 4 || layers["amber"] != 6 {
		t.Errorf("layers %v, want red 2, green 4, amber 6", layers)
	}
	reversed := 0
	for _, e := range l.edges {
		if e.reversed {
			reversed++
		}
	}
	if reversed != 2 {
		t.Errorf("%d transitions turned over, want 2 (amber → red, green → red)", reversed)
	}
}

func TestSpread(t *testing.T) {
	gap := func(int) float64 { return 10 }
	for _, tc := range []struct {
		want, got []float64
	}{
		{[]float64{0, 50, 100}, []float64{0, 50, 100}}, // room enough
		{[]float64{5, 5, 5}, []float64{-5, 5, 15}},     // pushed apart round their mean
		{[]float64{0, 1, 100}, []float64{-4.5, 5.5, 100}},
	} {
		xs := spread(make([]int, len(tc.want)), tc.want, gap)
		for i := range xs {
			if d := xs[i] - tc.got[i]; d > 1e-9 || d < -1e-9 {
				t.Errorf("spread(%v) = %v, want %v", tc.want, xs, tc.got)
				break
			}
		}
	}
}
