package diagram

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Machine is a state machine to draw: its states and the transitions
// between them, laid out in layers from the start down, each transition a
// curve with its label beside it.
type Machine struct {
	Title       string
	States      []State
	Transitions []Transition
	// Notes are lines of text drawn under the machine.
	Notes []string
}

// State is one state of a Machine.
type State struct {
	Name string
	// Detail says what the state waits for; it is drawn under the name.
	Detail string
}

// Transition is a labelled arrow between two states. From "" starts the
// machine (drawn from a filled dot); To "" ends it (into a ringed dot).
type Transition struct {
	From, To string
	Label    string
	// Exception marks a transition out of the normal course (a timeout, a
	// rollback): drawn dashed and grey.
	Exception bool
}

// Check reports a machine that cannot be drawn: a state without a name or
// named twice, a transition from or to no state, or from a state to
// itself.
func (m *Machine) Check() error {
	seen := map[string]bool{}
	for _, s := range m.States {
		if s.Name == "" || seen[s.Name] {
			return fmt.Errorf("diagram: machine %q: state %q is empty or named twice", m.Title, s.Name)
		}
		seen[s.Name] = true
	}
	for _, t := range m.Transitions {
		for _, end := range []string{t.From, t.To} {
			if end != "" && !seen[end] {
				return fmt.Errorf("diagram: machine %q: transition %s → %s: no state %q", m.Title, t.From, t.To, end)
			}
		}
		if t.From == t.To {
			return fmt.Errorf("diagram: machine %q: transition %q from %q to itself", m.Title, t.Label, t.From)
		}
	}
	return nil
}

// Geometry of a machine's drawing, in pixels.
const (
	smLabelWidth  = 26 // characters at which transition labels wrap
	smDetailWidth = 30 // characters at which a state's detail wraps
	smDetailFont  = 11
	smDetailCharW = charW * smDetailFont / fontSize
	smBoxPad      = 10
	smLayerGap    = 30 // between a layer and the next
	smNodeGap     = 24 // between neighbours in a layer
	smEdgeGap     = 14 // between an edge and its label; a bare edge's room
	smDotR        = 7
)

// smNode is a box, a start or end dot, or a point an edge passes in a
// layer it crosses (a dummy, the one with its label included).
type smNode struct {
	kind       smKind
	state      int      // index in States, for a box
	lines      []string // a box's detail, or an edge's label
	w, h       float64
	layer, pos int
	x, y       float64 // centre
	edge       int     // for a dummy: its edge
	left       bool    // for a label: it is drawn left of its edge
}

type smKind uint8

const (
	smBox smKind = iota
	smStart
	smEnd
	smDummy
	smLabel
)

// smEdge is a transition laid out from its upper end down to its lower.
type smEdge struct {
	t        int   // index in Transitions
	up, down int   // nodes
	reversed bool  // the transition goes up
	path     []int // dummies, top down
}

type smLayout struct {
	m      *Machine
	nodes  []*smNode
	edges  []*smEdge
	layers [][]int
}

// SVG draws the machine. States are boxes (name, then detail), the start
// a filled dot, the end a ringed dot; transitions curves with an arrowhead
// and their label beside them. The layout depends on nothing but the
// machine, so the same machine draws the same bytes.
func (m *Machine) SVG() ([]byte, error) {
	if err := m.Check(); err != nil {
		return nil, err
	}
	l := &smLayout{m: m}
	l.build()
	l.layer()
	l.order()
	l.sides()
	l.place()
	return l.svg(), nil
}

func (l *smLayout) add(n *smNode) int {
	l.nodes = append(l.nodes, n)
	return len(l.nodes) - 1
}

// build makes the nodes of states and dots and breaks the cycles: a
// depth-first walk from the start, in the order transitions are listed,
// turns every edge back to a state on the walk's path upside down.
func (l *smLayout) build() {
	m := l.m
	index := map[string]int{}
	for i, s := range m.States {
		detail := wrap(s.Detail, smDetailWidth)
		if s.Detail == "" {
			detail = nil
		}
		w := math.Max(textW(s.Name), linesW(detail)*smDetailFont/fontSize) + 2*smBoxPad
		h := lineH + float64(len(detail))*(lineH-2) + 2*smBoxPad - 4
		index[s.Name] = l.add(&smNode{kind: smBox, state: i, lines: detail, w: math.Max(w, 90), h: h})
	}
	start, end := -1, -1
	for _, t := range m.Transitions {
		if t.From == "" && start < 0 {
			start = l.add(&smNode{kind: smStart, w: 2 * smDotR, h: 2 * smDotR})
		}
		if t.To == "" && end < 0 {
			end = l.add(&smNode{kind: smEnd, w: 2*smDotR + 4, h: 2*smDotR + 4})
		}
	}
	node := func(name string, dot int) int {
		if name == "" {
			return dot
		}
		return index[name]
	}
	out := make([][]int, len(l.nodes)) // edges by source, in listed order
	for i, t := range m.Transitions {
		e := &smEdge{t: i, up: node(t.From, start), down: node(t.To, end)}
		l.edges = append(l.edges, e)
		out[e.up] = append(out[e.up], i)
	}
	const (
		unseen = iota
		onPath
		done
	)
	mark := make([]int, len(l.nodes))
	var visit func(v int)
	visit = func(v int) {
		mark[v] = onPath
		for _, ei := range out[v] {
			e := l.edges[ei]
			switch mark[e.down] {
			case onPath:
				e.reversed = true
			case unseen:
				visit(e.down)
			}
		}
		mark[v] = done
	}
	if start >= 0 {
		visit(start)
	}
	for v := range l.nodes {
		if mark[v] == unseen {
			visit(v)
		}
	}
	for _, e := range l.edges {
		if e.reversed {
			e.up, e.down = e.down, e.up
		}
	}
}

// layer puts every node at the end of its longest path from a source, on
// the even layers; an edge then gets a
// dummy in every odd layer it crosses, its label on the one in the middle.
func (l *smLayout) layer() {
	n := len(l.nodes)
	rank := make([]int, n)
	// Longest path: relax until nothing changes (the graph is a DAG and
	// small).
	for changed := true; changed; {
		changed = false
		for _, e := range l.edges {
			if rank[e.down] < rank[e.up]+1 {
				rank[e.down] = rank[e.up] + 1
				changed = true
			}
		}
	}
	for v, nd := range l.nodes {
		nd.layer = 2 * rank[v]
	}
	for ei, e := range l.edges {
		a, b := l.nodes[e.up].layer, l.nodes[e.down].layer
		span := (b - a) / 2
		labelAt := a + 1 + 2*((span-1)/2)
		for k := a + 1; k < b; k++ {
			d := &smNode{kind: smDummy, edge: ei, w: smEdgeGap, h: 16}
			if k == labelAt {
				t := l.m.Transitions[e.t]
				d.kind, d.lines = smLabel, wrap(t.Label, smLabelWidth)
				d.w, d.h = linesW(d.lines)+2*smEdgeGap, float64(len(d.lines))*lineH+4
			}
			d.layer = k
			e.path = append(e.path, l.add(d))
		}
	}
	top := 0
	for _, nd := range l.nodes {
		top = max(top, nd.layer)
	}
	l.layers = make([][]int, top+1)
	for v, nd := range l.nodes {
		l.layers[nd.layer] = append(l.layers[nd.layer], v)
	}
}

// neighbours lists, for every node, the nodes next to it on its edges in
// the layer above and in the layer below.
func (l *smLayout) neighbours() (above, below [][]int) {
	above, below = make([][]int, len(l.nodes)), make([][]int, len(l.nodes))
	for _, e := range l.edges {
		chain := append(append([]int{e.up}, e.path...), e.down)
		for k := 1; k < len(chain); k++ {
			u, v := chain[k-1], chain[k]
			below[u] = append(below[u], v)
			above[v] = append(above[v], u)
		}
	}
	return above, below
}

// order orders each layer to cross few edges: barycentre sweeps down and
// up, keeping the best order seen.
func (l *smLayout) order() {
	above, below := l.neighbours()
	setPos := func() {
		for _, layer := range l.layers {
			for i, v := range layer {
				l.nodes[v].pos = i
			}
		}
	}
	setPos()
	best := l.crossings(below)
	bestLayers := cloneLayers(l.layers)
	for iter := 0; iter < 12; iter++ {
		down := iter%2 == 0
		for k := range l.layers {
			li := k
			adj := above
			if !down {
				li, adj = len(l.layers)-1-k, below
			}
			layer := l.layers[li]
			bary := make(map[int]float64, len(layer))
			for _, v := range layer {
				bary[v] = float64(l.nodes[v].pos)
				if ns := adj[v]; len(ns) > 0 {
					sum := 0.0
					for _, u := range ns {
						sum += float64(l.nodes[u].pos)
					}
					bary[v] = sum / float64(len(ns))
				}
			}
			slices.SortStableFunc(layer, func(a, b int) int { return cmp.Compare(bary[a], bary[b]) })
			for i, v := range layer {
				l.nodes[v].pos = i
			}
		}
		if c := l.crossings(below); c < best {
			best, bestLayers = c, cloneLayers(l.layers)
		}
	}
	l.layers = bestLayers
	setPos()
}

func cloneLayers(ls [][]int) [][]int {
	out := make([][]int, len(ls))
	for i, l := range ls {
		out[i] = slices.Clone(l)
	}
	return out
}

// crossings counts the pairs of edge segments that cross between
// neighbouring layers.
func (l *smLayout) crossings(below [][]int) int {
	type seg struct{ a, b int }
	count := 0
	for _, layer := range l.layers {
		var segs []seg
		for _, u := range layer {
			for _, v := range below[u] {
				segs = append(segs, seg{l.nodes[u].pos, l.nodes[v].pos})
			}
		}
		for i := range segs {
			for j := i + 1; j < len(segs); j++ {
				if (segs[i].a-segs[j].a)*(segs[i].b-segs[j].b) < 0 {
					count++
				}
			}
		}
	}
	return count
}

// edgeX is where an edge passes a dummy: its centre, or beside its label.
func (n *smNode) edgeX() float64 {
	switch {
	case n.kind != smLabel:
		return n.x
	case n.left:
		return n.x + n.w/2 - smEdgeGap/2
	}
	return n.x - n.w/2 + smEdgeGap/2
}

// sides puts labels on either side of their edges where edges that share
// an end run side by side: the left half of them get their labels on the
// left, so that the edges run close together between their labels.
func (l *smLayout) sides() {
	for _, layer := range l.layers {
		for _, v := range layer {
			n := l.nodes[v]
			if n.kind != smLabel {
				continue
			}
			e := l.edges[n.edge]
			var group []int
			for _, u := range layer {
				if o := l.nodes[u]; o.kind == smLabel {
					f := l.edges[o.edge]
					if f.up == e.up || f.down == e.down || f.up == e.down || f.down == e.up {
						group = append(group, u)
					}
				}
			}
			n.left = slices.Index(group, v) < len(group)/2
		}
	}
}

// place gives every node its coordinates: each layer's nodes keep their
// order and their distance, and are pulled towards the nodes they are
// joined to (a long edge's dummies harder, so that it runs straight).
func (l *smLayout) place() {
	above, below := l.neighbours()
	for _, layer := range l.layers {
		x := 0.0
		for _, v := range layer {
			n := l.nodes[v]
			n.x = x + n.w/2
			x += n.w + smNodeGap
		}
	}
	weight := func(u, v int) float64 {
		du, dv := l.nodes[u].kind >= smDummy, l.nodes[v].kind >= smDummy
		switch {
		case du && dv:
			return 8
		case du || dv:
			return 2
		}
		return 1
	}
	for iter := 0; iter < 40; iter++ {
		down := iter%2 == 0
		for k := range l.layers {
			li := k
			if !down {
				li = len(l.layers) - 1 - k
			}
			layer := l.layers[li]
			want := make([]float64, len(layer))
			for i, v := range layer {
				n := l.nodes[v]
				sum, wsum := 0.0, 0.0
				for _, u := range append(slices.Clone(above[v]), below[v]...) {
					w := weight(u, v)
					// Aim the edge's point, not the label's centre, at the
					// neighbour's.
					sum += w * (l.nodes[u].edgeX() + (n.x - n.edgeX()))
					wsum += w
				}
				want[i] = n.x
				if wsum > 0 {
					want[i] = sum / wsum
				}
			}
			xs := spread(layer, want, func(i int) float64 {
				return (l.nodes[layer[i]].w+l.nodes[layer[i+1]].w)/2 + smNodeGap
			})
			for i, v := range layer {
				l.nodes[v].x = xs[i]
			}
		}
	}
	minX := math.Inf(1)
	for _, n := range l.nodes {
		minX = math.Min(minX, n.x-n.w/2)
	}
	for _, n := range l.nodes {
		n.x += margin - minX
	}
	y := float64(margin)
	if l.m.Title != "" {
		y += titleH
	}
	for _, layer := range l.layers {
		h := 0.0
		for _, v := range layer {
			h = math.Max(h, l.nodes[v].h)
		}
		for _, v := range layer {
			l.nodes[v].y = y + h/2
		}
		y += h + smLayerGap
	}
}

// spread places a layer's nodes as near to want as their order and
// distances allow (least squares): with c the sum of the gaps before each
// node, x - c must not decrease, which the pool-adjacent-violators
// algorithm solves.
func spread(layer []int, want []float64, gap func(i int) float64) []float64 {
	n := len(layer)
	c := make([]float64, n)
	for i := 1; i < n; i++ {
		c[i] = c[i-1] + gap(i-1)
	}
	type block struct {
		sum   float64
		count int
	}
	var blocks []block
	for i := 0; i < n; i++ {
		blocks = append(blocks, block{want[i] - c[i], 1})
		for len(blocks) > 1 {
			a, b := blocks[len(blocks)-2], blocks[len(blocks)-1]
			if a.sum/float64(a.count) <= b.sum/float64(b.count) {
				break
			}
			blocks = append(blocks[:len(blocks)-2], block{a.sum + b.sum, a.count + b.count})
		}
	}
	xs := make([]float64, 0, n)
	for _, b := range blocks {
		for k := 0; k < b.count; k++ {
			xs = append(xs, b.sum/float64(b.count)+c[len(xs)])
		}
	}
	return xs
}

type point struct{ x, y float64 }

// ports spreads the edges that leave a box at the bottom (or enter it at
// the top) across its width, in the order of where they go.
func (l *smLayout) ports() map[[2]int]float64 {
	type end struct {
		edge  int
		other float64
	}
	bottoms, tops := map[int][]end{}, map[int][]end{}
	for ei, e := range l.edges {
		first, last := e.down, e.up
		if len(e.path) > 0 {
			first, last = e.path[0], e.path[len(e.path)-1]
		}
		bottoms[e.up] = append(bottoms[e.up], end{ei, l.nodes[first].edgeX()})
		tops[e.down] = append(tops[e.down], end{ei, l.nodes[last].edgeX()})
	}
	out := map[[2]int]float64{}
	assign := func(side int, m map[int][]end) {
		for v, ends := range m {
			n := l.nodes[v]
			slices.SortStableFunc(ends, func(a, b end) int { return cmp.Compare(a.other, b.other) })
			for k, e := range ends {
				x := n.x
				if n.kind == smBox && len(ends) > 1 {
					span := math.Min(n.w-2*smBoxPad, float64(len(ends)-1)*22)
					x = n.x - span/2 + span*float64(k)/float64(len(ends)-1)
				}
				out[[2]int{e.edge, side}] = x
			}
		}
	}
	assign(0, bottoms)
	assign(1, tops)
	return out
}

func (l *smLayout) svg() []byte {
	m := l.m
	width, height := 0.0, 0.0
	for _, n := range l.nodes {
		width = math.Max(width, n.x+n.w/2)
		height = math.Max(height, n.y+n.h/2)
	}
	notesY := height + 24
	for _, line := range m.Notes {
		width = math.Max(width, margin+textW(line))
		height = notesY + float64(len(m.Notes))*lineH
	}
	width += margin
	if m.Title != "" {
		width = math.Max(width, textW(m.Title)*14/fontSize+2*margin)
	}
	height += margin

	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="%s" font-size="%d" xml:space="preserve">`+"\n",
		px(width), px(height), px(width), px(height), fontFamily, fontSize)
	b.WriteString(`<defs>
<marker id="head" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="10" markerHeight="10" markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#222"/></marker>
<marker id="grey" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="10" markerHeight="10" markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#999"/></marker>
</defs>
`)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", px(width), px(height))
	if m.Title != "" {
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" font-size="14" font-weight="bold" fill="#111">%s</text>`+"\n",
			px(width/2), px(margin+18), esc(m.Title))
	}
	ports := l.ports()
	// Edges first, then labels over them, then the boxes.
	for ei, e := range l.edges {
		up, down := l.nodes[e.up], l.nodes[e.down]
		pts := []point{{ports[[2]int{ei, 0}], up.y + up.h/2}}
		for _, d := range e.path {
			n := l.nodes[d]
			pts = append(pts, point{n.edgeX(), n.y})
		}
		pts = append(pts, point{ports[[2]int{ei, 1}], down.y - down.h/2})
		if e.reversed {
			slices.Reverse(pts)
		}
		var d strings.Builder
		fmt.Fprintf(&d, "M%s,%s", f1(pts[0].x), f1(pts[0].y))
		for k := 1; k < len(pts); k++ {
			p, q := pts[k-1], pts[k]
			if p.x == q.x {
				fmt.Fprintf(&d, " L%s,%s", f1(q.x), f1(q.y))
				continue
			}
			mid := (q.y - p.y) / 2
			fmt.Fprintf(&d, " C%s,%s %s,%s %s,%s", f1(p.x), f1(p.y+mid), f1(q.x), f1(q.y-mid), f1(q.x), f1(q.y))
		}
		stroke, dash, marker := "#333", "", "head"
		if m.Transitions[e.t].Exception {
			stroke, dash, marker = "#999", ` stroke-dasharray="5 4"`, "grey"
		}
		fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="%s" stroke-width="1.4"%s marker-end="url(#%s)"/>`+"\n",
			d.String(), stroke, dash, marker)
	}
	for _, n := range l.nodes {
		if n.kind != smLabel {
			continue
		}
		fill := "#1a1a1a"
		if m.Transitions[l.edges[n.edge].t].Exception {
			fill = "#777"
		}
		x0 := n.edgeX() + smEdgeGap/2
		if n.left {
			x0 = n.edgeX() - smEdgeGap/2 - linesW(n.lines)
		}
		top := n.y - float64(len(n.lines))*lineH/2
		fmt.Fprintf(&b, `<rect x="%s" y="%s" width="%s" height="%s" fill="#ffffff" fill-opacity="0.85"/>`+"\n",
			f1(x0-2), f1(top), f1(linesW(n.lines)+4), f1(float64(len(n.lines))*lineH))
		for k, line := range n.lines {
			fmt.Fprintf(&b, `<text x="%s" y="%s" fill="%s">%s</text>`+"\n", f1(x0), f1(top+float64(k+1)*lineH-4), fill, esc(line))
		}
	}
	for _, n := range l.nodes {
		switch n.kind {
		case smStart:
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="%d" fill="#222"/>`+"\n", f1(n.x), f1(n.y), smDotR)
		case smEnd:
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="%d" fill="#ffffff" stroke="#222" stroke-width="1.5"/>`+"\n", f1(n.x), f1(n.y), smDotR+2)
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="%d" fill="#222"/>`+"\n", f1(n.x), f1(n.y), smDotR-2)
		case smBox:
			fmt.Fprintf(&b, `<rect x="%s" y="%s" width="%s" height="%s" rx="8" fill="#e8eefc" stroke="#3b5bdb" stroke-width="1.2"/>`+"\n",
				f1(n.x-n.w/2), f1(n.y-n.h/2), f1(n.w), f1(n.h))
			top := n.y - n.h/2 + smBoxPad
			fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="middle" font-weight="bold" fill="#1a1a1a">%s</text>`+"\n",
				f1(n.x), f1(top+lineH-4), esc(m.States[n.state].Name))
			for k, line := range n.lines {
				fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="middle" font-size="%d" fill="#555">%s</text>`+"\n",
					f1(n.x), f1(top+lineH-4+float64(k+1)*(lineH-2)), smDetailFont, esc(line))
			}
		}
	}
	for k, line := range m.Notes {
		fmt.Fprintf(&b, `<text x="%d" y="%s" fill="#333">%s</text>`+"\n", margin, f1(notesY+float64(k+1)*lineH-4), esc(line))
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// f1 formats a coordinate with one decimal, the same on every platform.
func f1(v float64) string {
	s := fmt.Sprintf("%.1f", v)
	if s == "-0.0" {
		s = "0.0"
	}
	return strings.TrimSuffix(s, ".0")
}
