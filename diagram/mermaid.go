package diagram

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
)

// Mermaid writes d as Mermaid sequenceDiagram text: messages as solid
// arrows, replies and acks dashed (Mermaid has no lighter arrow), lost datagrams ending in a cross, folded
// runs as one arrow whose label counts them, actions as notes.
func (d *Diagram) Mermaid() []byte {
	var b bytes.Buffer
	b.WriteString("sequenceDiagram\n")
	if d.Title != "" {
		fmt.Fprintf(&b, "    title %s\n", mermaidTitle(d.Title))
	}
	ids := make([]string, len(d.Lifelines))
	for i, name := range d.Lifelines {
		if plainID.MatchString(name) && !mermaidKeywords[strings.ToLower(name)] {
			ids[i] = name
			fmt.Fprintf(&b, "    participant %s\n", name)
		} else {
			ids[i] = fmt.Sprintf("p%d", i)
			fmt.Fprintf(&b, "    participant %s as %s\n", ids[i], mermaidText([]string{name}))
		}
	}
	for _, it := range d.Items {
		text := mermaidText(it.Text())
		if it.Kind == Note {
			fmt.Fprintf(&b, "    Note over %s: %s\n", ids[it.From], text)
			continue
		}
		arrow := "->>"
		if it.Kind == Response || it.Kind == Ack {
			arrow = "-->>"
		}
		if it.Lost {
			arrow = strings.TrimSuffix(arrow, ">>") + "x"
		}
		fmt.Fprintf(&b, "    %s%s%s: %s\n", ids[it.From], arrow, ids[it.To], text)
	}
	return b.Bytes()
}

var plainID = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)

// mermaidKeywords cannot name a participant bare.
var mermaidKeywords = map[string]bool{
	"participant": true, "actor": true, "as": true, "note": true, "over": true, "left": true, "right": true,
	"of": true, "loop": true, "alt": true, "else": true, "opt": true, "par": true, "and": true, "end": true,
	"rect": true, "critical": true, "break": true, "option": true, "activate": true, "deactivate": true,
	"title": true, "autonumber": true, "box": true, "link": true, "links": true, "properties": true,
	"details": true, "create": true, "destroy": true, "sequencediagram": true,
}

// mermaidText escapes label lines for Mermaid: '#', ';', '<', '>' and '%'
// as entity codes, lines joined with <br/>.
func mermaidText(lines []string) string {
	esc := make([]string, len(lines))
	for i, l := range lines {
		var b strings.Builder
		for _, r := range l {
			switch r {
			case '#':
				b.WriteString("#35;")
			case ';':
				b.WriteString("#59;")
			case '<':
				b.WriteString("#lt;")
			case '>':
				b.WriteString("#gt;")
			case '%':
				b.WriteString("#37;")
			default:
				b.WriteRune(r)
			}
		}
		esc[i] = b.String()
	}
	return strings.Join(esc, "<br/>")
}

// mermaidTitle keeps a title on one line without the characters the
// title statement stops at: a semicolon becomes a comma, so that the
// clauses it parts stay apart.
func mermaidTitle(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '\n', '\r', '#':
			return ' '
		case ';':
			return ','
		}
		return r
	}, s)
}
