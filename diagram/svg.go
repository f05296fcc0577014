package diagram

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"unicode/utf8"
)

// Geometry of the SVG drawing, in pixels. Text is monospace so that a
// label's width is known without a font engine.
const (
	fontSize   = 12
	charW      = 7.3 // advance of one monospace character at fontSize
	lineH      = 15
	margin     = 20
	boxH       = 30
	minGap     = 150
	arrowPad   = 30 // room beside an arrow's label
	notePad    = 8  // inside a note, around the text
	itemGap    = 12 // between rows
	selfLoopW  = 28
	selfLoopH  = 16
	titleH     = 34
	fontFamily = "DejaVu Sans Mono, Menlo, Consolas, monospace"
)

// SVG draws d as a standalone SVG image: lifelines with their names in
// boxes at the top and the bottom, arrows with their labels above them,
// notes as boxes on their lifeline. Replies are dashed, acks light grey
// and dashed, folded arrows thick, lost datagrams red and ending in a
// cross.
func (d *Diagram) SVG() []byte {
	n := len(d.Lifelines)
	if n == 0 {
		return []byte(`<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>` + "\n")
	}
	boxW := make([]float64, n)
	for i, name := range d.Lifelines {
		boxW[i] = math.Max(80, textW(name)+24)
	}
	// Horizontal layout: gaps between neighbouring lifelines, widened until
	// every label fits.
	gaps := make([]float64, max(n-1, 0))
	for i := range gaps {
		gaps[i] = math.Max(minGap, (boxW[i]+boxW[i+1])/2+20)
	}
	leftNeed := boxW[0] / 2
	rightNeed := boxW[n-1] / 2
	need := func(a, b int, w float64) { // x[b]-x[a] >= w
		have := 0.0
		for k := a; k < b; k++ {
			have += gaps[k]
		}
		if have < w {
			for k := a; k < b; k++ {
				gaps[k] += (w - have) / float64(b-a)
			}
		}
	}
	for pass := 0; pass < 2; pass++ { // spans of one gap first, then wider
		for _, it := range d.Items {
			w := linesW(it.Text())
			switch {
			case it.Kind == Note:
				half := w/2 + notePad + 6
				if it.From > 0 && pass == 0 {
					need(it.From-1, it.From, half+12)
				} else if it.From == 0 {
					leftNeed = math.Max(leftNeed, half)
				}
				if it.From < n-1 && pass == 0 {
					need(it.From, it.From+1, half+12)
				} else if it.From == n-1 {
					rightNeed = math.Max(rightNeed, half)
				}
			case it.From == it.To:
				if it.From < n-1 && pass == 0 {
					need(it.From, it.From+1, w+arrowPad)
				} else if it.From == n-1 {
					rightNeed = math.Max(rightNeed, w+arrowPad)
				}
			default:
				a, b := min(it.From, it.To), max(it.From, it.To)
				if (b-a == 1) == (pass == 0) {
					need(a, b, w+arrowPad)
				}
			}
		}
	}
	xs := make([]float64, n)
	xs[0] = margin + leftNeed
	for i := 1; i < n; i++ {
		xs[i] = xs[i-1] + gaps[i-1]
	}
	width := xs[n-1] + rightNeed + margin
	if d.Title != "" {
		width = math.Max(width, textW(d.Title)*14/fontSize+2*margin)
	}

	// Vertical layout.
	top := float64(margin)
	if d.Title != "" {
		top += titleH
	}
	y := top + boxH + 24
	type placed struct {
		y float64 // arrow: the line; note: the box's top
	}
	pos := make([]placed, len(d.Items))
	for i, it := range d.Items {
		h := float64(len(it.Lines)) * lineH
		switch {
		case it.Kind == Note:
			pos[i].y = y
			y += h + notePad + itemGap
		case it.From == it.To:
			pos[i].y = y + h + 2
			y = pos[i].y + selfLoopH + itemGap
		default:
			pos[i].y = y + h + 2
			y = pos[i].y + itemGap
		}
	}
	bottom := y + 12
	height := bottom + boxH + margin

	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="%s" font-size="%d" xml:space="preserve">`+"\n",
		px(width), px(height), px(width), px(height), fontFamily, fontSize)
	b.WriteString(`<defs>
<marker id="head" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="10" markerHeight="10" markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#222"/></marker>
<marker id="open" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="10" markerHeight="10" markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0 L10,5 L0,10" fill="none" stroke="#555" stroke-width="1.5"/></marker>
<marker id="light" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0 L10,5 L0,10" fill="none" stroke="#aaa" stroke-width="1.5"/></marker>
<marker id="cross" viewBox="0 0 10 10" refX="5" refY="5" markerWidth="12" markerHeight="12" markerUnits="userSpaceOnUse" orient="auto"><path d="M1,1 L9,9 M9,1 L1,9" stroke="#c62828" stroke-width="2"/></marker>
</defs>
`)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", px(width), px(height))
	if d.Title != "" {
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" font-size="14" font-weight="bold" fill="#111">%s</text>`+"\n",
			px(width/2), px(margin+18), esc(d.Title))
	}
	// Lifelines and their boxes.
	for i, name := range d.Lifelines {
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#999" stroke-dasharray="4 4"/>`+"\n",
			px(xs[i]), px(top+boxH), px(xs[i]), px(bottom))
		for _, by := range []float64{top, bottom} {
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" rx="4" fill="#e8eefc" stroke="#3b5bdb"/>`+"\n",
				px(xs[i]-boxW[i]/2), px(by), px(boxW[i]), boxH)
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" font-weight="bold" fill="#1a1a1a">%s</text>`+"\n",
				px(xs[i]), px(by+boxH/2+4), esc(name))
		}
	}
	// Items.
	for i, it := range d.Items {
		ly := pos[i].y
		if it.Kind == Note {
			w := linesW(it.Lines) + 2*notePad
			h := float64(len(it.Lines))*lineH + notePad
			fill, stroke := "#fff5c2", "#c9a227"
			if it.Warn {
				fill, stroke = "#ffe3e3", "#c62828"
			}
			x0 := xs[it.From] - w/2
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" rx="3" fill="%s" stroke="%s"/>`+"\n",
				px(x0), px(ly), px(w), px(h), fill, stroke)
			for k, line := range it.Lines {
				fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#1a1a1a">%s</text>`+"\n",
					px(x0+notePad), px(ly+notePad/2+float64(k+1)*lineH-3), esc(line))
			}
			continue
		}
		stroke, dash, marker, sw := "#222", "", "head", "1.5"
		switch it.Kind {
		case Response:
			stroke, dash, marker = "#555", ` stroke-dasharray="6 4"`, "open"
		case Ack:
			stroke, dash, marker, sw = "#aaa", ` stroke-dasharray="3 3"`, "light", "1"
		}
		if it.Count > 1 {
			sw = "3"
		}
		if it.Lost {
			stroke, marker = "#c62828", "cross"
		}
		textFill := "#111"
		if it.Kind == Ack {
			textFill = "#888"
		}
		if it.Lost {
			textFill = "#c62828"
		}
		if it.From == it.To {
			x := xs[it.From]
			fmt.Fprintf(&b, `<path d="M%d,%d h%d v%d h%d" fill="none" stroke="%s" stroke-width="%s"%s marker-end="url(#%s)"/>`+"\n",
				px(x), px(ly), selfLoopW, selfLoopH, -selfLoopW+2, stroke, sw, dash, marker)
			for k, line := range it.Text() {
				fmt.Fprintf(&b, `<text x="%d" y="%d" fill="%s">%s</text>`+"\n",
					px(x+6), px(ly-4-float64(len(it.Lines)-1-k)*lineH), textFill, esc(line))
			}
			continue
		}
		x1, x2 := xs[it.From], xs[it.To]
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="%s"%s marker-end="url(#%s)"/>`+"\n",
			px(x1), px(ly), px(x2), px(ly), stroke, sw, dash, marker)
		mid := (x1 + x2) / 2
		lw := linesW(it.Text())
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="#ffffff" fill-opacity="0.85"/>`+"\n",
			px(mid-lw/2-2), px(ly-4-float64(len(it.Lines))*lineH), px(lw+4), px(float64(len(it.Lines))*lineH))
		for k, line := range it.Lines {
			note := ""
			if k == len(it.Lines)-1 && it.AckNote != "" {
				note = `<tspan fill="#999">` + esc(it.AckNote) + `</tspan>`
			}
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="%s">%s%s</text>`+"\n",
				px(mid), px(ly-5-float64(len(it.Lines)-1-k)*lineH), textFill, esc(line), note)
		}
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

func textW(s string) float64 { return float64(utf8.RuneCountInString(s)) * charW }

func linesW(lines []string) float64 {
	w := 0.0
	for _, l := range lines {
		w = math.Max(w, textW(l))
	}
	return w
}

func px(v float64) int { return int(math.Round(v)) }

func esc(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s)) // writes to a bytes.Buffer cannot fail
	return b.String()
}
