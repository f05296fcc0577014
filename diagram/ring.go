package diagram

import (
	"bytes"
	"fmt"
	"math"
	"strings"
)

// Ring is a picture of a DHT's ring as its files hold it: the nodes round
// a circle in id order, clockwise from the top, which is the way every
// ring message travels (from a node to its right neighbour, id + 1); the
// leader marked; and, when asked, the walk of one query.
type Ring struct {
	Title string
	// Nodes are the ring's members; Nodes[i] has id i.
	Nodes []RingNode
	// Query, if not nil, is drawn as a walk round the ring.
	Query *RingQuery
	// Info lines are drawn under the ring (what the server says, who is
	// outside the ring); Warnings after them, in red (the files disagree).
	Info, Warnings []string
}

// RingNode is one member of a Ring.
type RingNode struct {
	Name, Addr string
	Records    int
	Leader     bool
	// Missing marks a member no file of which was read: it is drawn
	// dashed, without a record count.
	Missing bool
}

// RingQuery is a query's walk: it enters the ring at node From, travels
// right until node Target (the id its key hashes to), which answers the
// querier directly.
type RingQuery struct {
	LongName     string
	Pos          int // the key's slot, 0..352
	From, Target int
	// Found says whether Target holds the record (false, and not known,
	// when Target's file was not read: RingNode.Missing).
	Found bool
}

// Hops is the number of forwards from From to Target.
func (q *RingQuery) Hops(n int) int { return ((q.Target-q.From)%n + n) % n }

func (r *Ring) lines(i int) []string {
	nd := r.Nodes[i]
	id := fmt.Sprintf("id %d", i)
	if nd.Leader {
		id += " · leader"
	}
	recs := fmt.Sprintf("%d records", nd.Records)
	if nd.Records == 1 {
		recs = "1 record"
	}
	if nd.Missing {
		recs = "(no file read)"
	}
	return []string{nd.Name, id, nd.Addr, recs}
}

// Text describes the ring for a terminal, one node a line in id order.
func (r *Ring) Text() string {
	var b strings.Builder
	n := len(r.Nodes)
	if r.Title != "" {
		fmt.Fprintf(&b, "%s\n", r.Title)
	}
	if n == 0 {
		b.WriteString("no ring\n")
	} else {
		fmt.Fprintf(&b, "ring of %d; every message travels right, from id i to id i+1 mod %d:\n", n, n)
		width := 0
		for _, nd := range r.Nodes {
			width = max(width, len(nd.Name))
		}
		for i := range r.Nodes {
			l := r.lines(i)
			right := r.Nodes[(i+1)%n].Name
			fmt.Fprintf(&b, "  id %-2d %-*s  %-21s  %-14s  right: %s", i, width, l[0], l[2], l[3], right)
			if r.Nodes[i].Leader {
				b.WriteString("  (leader)")
			}
			b.WriteByte('\n')
		}
	}
	if q := r.Query; q != nil && n > 0 {
		b.WriteString(r.queryText())
		b.WriteByte('\n')
	}
	for _, l := range r.Info {
		fmt.Fprintf(&b, "%s\n", l)
	}
	for _, l := range r.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", l)
	}
	return b.String()
}

// queryText says where a query goes and why.
func (r *Ring) queryText() string {
	q, n := r.Query, len(r.Nodes)
	var walk []string
	for k := 0; k <= q.Hops(n); k++ {
		walk = append(walk, r.Nodes[(q.From+k)%n].Name)
	}
	found := "holds it and answers the querier"
	switch {
	case r.Nodes[q.Target].Missing:
		found = "would hold it; its file was not read, so whether it has the record is not known"
	case !q.Found:
		found = "would hold it, has no such record, and answers the querier: not found"
	}
	return fmt.Sprintf("query %q: slot %d, id %d mod %d = %d; from %s: %s, %s; %s %s",
		q.LongName, q.Pos, q.Pos, n, q.Target, r.Nodes[q.From].Name, strings.Join(walk, " → "), hops(q.Hops(n)),
		r.Nodes[q.Target].Name, found)
}

// Geometry of the ring drawing.
const (
	ringNodePad = 8
	ringGap     = 44 // at least between neighbouring boxes
	ringMinR    = 150
	ringOutward = 46 // length of the arrows from and to the querier
)

// svgBuf collects SVG elements and the box they cover.
type svgBuf struct {
	b                      bytes.Buffer
	minX, minY, maxX, maxY float64
}

func (s *svgBuf) cover(x0, y0, x1, y1 float64) {
	s.minX, s.minY = math.Min(s.minX, x0), math.Min(s.minY, y0)
	s.maxX, s.maxY = math.Max(s.maxX, x1), math.Max(s.maxY, y1)
}

// text writes one line of text at (x, y) with anchor "start", "middle" or
// "end", and covers it.
func (s *svgBuf) text(x, y float64, anchor, attrs, line string) {
	w := textW(line)
	x0 := x
	switch anchor {
	case "middle":
		x0 = x - w/2
	case "end":
		x0 = x - w
	}
	s.cover(x0, y-lineH+3, x0+w, y+4)
	fmt.Fprintf(&s.b, `<text x="%s" y="%s" text-anchor="%s"%s>%s</text>`+"\n", f1(x), f1(y), anchor, attrs, esc(line))
}

// SVG draws the ring. The drawing depends on nothing but r, and every
// coordinate is written with one decimal, so that the same ring draws the
// same bytes.
func (r *Ring) SVG() []byte {
	n := len(r.Nodes)
	var s svgBuf
	// Box size: the same for every node.
	bw, bh := 0.0, 4*lineH+2*ringNodePad-2.0
	for i := range r.Nodes {
		bw = math.Max(bw, linesW(r.lines(i))+2*ringNodePad)
	}
	bw = math.Max(bw, 110)
	radius := ringMinR + 0.0
	if n > 1 {
		// Neighbouring centres at least a box and a gap apart.
		radius = math.Max(radius, (math.Max(bw, bh)+ringGap)/(2*math.Sin(math.Pi/float64(n))))
	}
	angle := func(i float64) float64 { return -math.Pi/2 + 2*math.Pi*i/float64(max(n, 1)) }
	at := func(a, rad float64) (float64, float64) { return rad * math.Cos(a), rad * math.Sin(a) }
	// leave is how far round the circle, from a node's centre, the circle
	// leaves its box (with a margin for the arrowhead).
	leave := func(i int) float64 {
		cx, cy := at(angle(float64(i)), radius)
		lo, hi := 0.0, math.Pi/float64(max(n, 1))
		for k := 0; k < 40; k++ {
			mid := (lo + hi) / 2
			x, y := at(angle(float64(i))+mid, radius)
			if math.Abs(x-cx) <= bw/2+6 && math.Abs(y-cy) <= bh/2+6 {
				lo = mid
			} else {
				hi = mid
			}
		}
		return hi
	}
	arc := func(i int, stroke, width, marker string) (mx, my float64) {
		a0 := angle(float64(i)) + leave(i)
		a1 := angle(float64(i+1)) - leave((i+1)%n)
		x0, y0 := at(a0, radius)
		x1, y1 := at(a1, radius)
		large := 0
		if a1-a0 > math.Pi {
			large = 1
		}
		fmt.Fprintf(&s.b, `<path d="M%s,%s A%s,%s 0 %d 1 %s,%s" fill="none" stroke="%s" stroke-width="%s" marker-end="url(#%s)"/>`+"\n",
			f1(x0), f1(y0), f1(radius), f1(radius), large, f1(x1), f1(y1), stroke, width, marker)
		return at((a0+a1)/2, radius)
	}

	s.cover(-radius-bw/2, -radius-bh/2, radius+bw/2, radius+bh/2)
	// The ring: one arc from every node to its right neighbour.
	for i := 0; i < n; i++ {
		arc(i, "#8a94a6", "2", "ring")
	}
	// The direction of travel, in the middle.
	if n > 0 {
		mid := []string{fmt.Sprintf("ring of %d", n), "messages travel", "clockwise: each node", "sends to its right", "neighbour, id + 1"}
		for k, l := range mid {
			attrs := ` fill="#555"`
			if k == 0 {
				attrs = ` font-weight="bold" fill="#333"`
			}
			s.text(0, float64(k-2)*lineH+4, "middle", attrs, l)
		}
	}
	q := r.Query
	if q != nil && n > 0 {
		// The walk: the arcs it takes, numbered.
		for k := 0; k < q.Hops(n); k++ {
			i := (q.From + k) % n
			mx, my := arc(i, "#e8590c", "4", "walk")
			bx, by := mx*(radius+18)/radius, my*(radius+18)/radius
			fmt.Fprintf(&s.b, `<circle cx="%s" cy="%s" r="9" fill="#e8590c"/>`+"\n", f1(bx), f1(by))
			s.text(bx, by+4, "middle", ` font-size="11" font-weight="bold" fill="#ffffff"`, fmt.Sprint(k+1))
		}
		// The querier's query in, and the answer out, outside the ring.
		outward := func(i int, skew float64, in bool, label string, dashed bool) {
			a := angle(float64(i)) + skew
			cx, cy := at(angle(float64(i)), radius)
			ux, uy := math.Cos(a), math.Sin(a)
			// Where the ray from the box's centre leaves the box.
			t := math.Min((bw/2+4)/math.Max(math.Abs(ux), 1e-9), (bh/2+4)/math.Max(math.Abs(uy), 1e-9))
			ex, ey := cx+ux*t, cy+uy*t
			ox, oy := ex+ux*ringOutward, ey+uy*ringOutward
			x0, y0, x1, y1 := ox, oy, ex, ey
			if !in {
				x0, y0, x1, y1 = ex, ey, ox, oy
			}
			dash := ""
			if dashed {
				dash = ` stroke-dasharray="6 4"`
			}
			fmt.Fprintf(&s.b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#e8590c" stroke-width="2"%s marker-end="url(#walk)"/>`+"\n",
				f1(x0), f1(y0), f1(x1), f1(y1), dash)
			anchor := "middle"
			switch {
			case ux > 0.3:
				anchor = "start"
			case ux < -0.3:
				anchor = "end"
			}
			lx, ly := ox+ux*6, oy+uy*6+4
			if uy > 0.3 {
				ly += 8
			} else if uy < -0.3 {
				ly -= 4
			}
			s.text(lx, ly, anchor, ` fill="#c2410c"`, label)
		}
		skew := 0.0
		if q.From == q.Target {
			skew = 0.35
		}
		outward(q.From, -skew, true, fmt.Sprintf("query %q from the querier", q.LongName), false)
		answer := "query-result to the querier: found"
		switch {
		case r.Nodes[q.Target].Missing:
			answer = "query-result to the querier (its file not read)"
		case !q.Found:
			answer = "query-result to the querier: not found"
		}
		outward(q.Target, skew, false, answer, true)
	}
	// The nodes.
	for i := 0; i < n; i++ {
		cx, cy := at(angle(float64(i)), radius)
		nd := r.Nodes[i]
		fill, stroke, width, dash := "#e8eefc", "#3b5bdb", "1.2", ""
		if nd.Leader {
			fill, stroke, width = "#fff3bf", "#e67700", "2.5"
		}
		if nd.Missing {
			fill, dash = "#f8f9fa", ` stroke-dasharray="5 4"`
		}
		fmt.Fprintf(&s.b, `<rect x="%s" y="%s" width="%s" height="%s" rx="8" fill="%s" stroke="%s" stroke-width="%s"%s/>`+"\n",
			f1(cx-bw/2), f1(cy-bh/2), f1(bw), f1(bh), fill, stroke, width, dash)
		for k, l := range r.lines(i) {
			attrs := ` fill="#333"`
			switch {
			case k == 0:
				attrs = ` font-size="13" font-weight="bold" fill="#111"`
			case k == 1 && nd.Leader:
				attrs = ` font-weight="bold" fill="#a35200"`
			}
			s.text(cx, cy-bh/2+ringNodePad+float64(k+1)*lineH-3, "middle", attrs, l)
		}
	}
	// Under the ring: the query's arithmetic, what the files say, warnings.
	y := s.maxY + 24
	var under []string
	if q != nil && n > 0 {
		under = append(under, wrap(r.queryText(), 90)...)
	}
	for _, l := range r.Info {
		under = append(under, wrap(l, 90)...)
	}
	x0 := s.minX
	for _, l := range under {
		s.text(x0, y, "start", ` fill="#333"`, l)
		y += lineH
	}
	for _, w := range r.Warnings {
		for _, l := range wrap("warning: "+w, 90) {
			s.text(x0, y, "start", ` fill="#c62828"`, l)
			y += lineH
		}
	}
	top := s.minY - margin
	if r.Title != "" {
		top -= titleH
	}
	left, width, height := s.minX-margin, s.maxX-s.minX+2*margin, s.maxY-top+margin
	if r.Title != "" {
		width = math.Max(width, textW(r.Title)*14/fontSize+2*margin)
	}
	var out bytes.Buffer
	fmt.Fprintf(&out, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="%s %s %d %d" font-family="%s" font-size="%d" xml:space="preserve">`+"\n",
		px(width), px(height), f1(left), f1(top), px(width), px(height), fontFamily, fontSize)
	out.WriteString(`<defs>
<marker id="ring" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="10" markerHeight="10" markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#8a94a6"/></marker>
<marker id="walk" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="12" markerHeight="12" markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#e8590c"/></marker>
</defs>
`)
	fmt.Fprintf(&out, `<rect x="%s" y="%s" width="%d" height="%d" fill="#ffffff"/>`+"\n", f1(left), f1(top), px(width), px(height))
	if r.Title != "" {
		fmt.Fprintf(&out, `<text x="%s" y="%s" text-anchor="middle" font-size="14" font-weight="bold" fill="#111">%s</text>`+"\n",
			f1(left+width/2), f1(top+margin+18), esc(r.Title))
	}
	out.Write(s.b.Bytes())
	out.WriteString("</svg>\n")
	return out.Bytes()
}
