package main

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"dht/dataset"
	"dht/diagram"
	"dht/store"
	"dht/wire"
)

func ringCommand(e env) *cli.Command {
	return &cli.Command{
		Name:      "ring",
		Usage:     "draw the ring from the bbolt files of a run",
		ArgsUsage: "[SERVER_DB] PEER_DB...",
		Description: "Reads the server's file and the peers' files, read-only as 'dht inspect' does,\n" +
			"and shows the ring they hold: each member's name, id, address and number of\n" +
			"records, in id order, which is the way every ring message travels (to the right\n" +
			"neighbour, id + 1), and the leader. The server's file gives the ring's order; the\n" +
			"peers' files give each member's place and table, and where they disagree the\n" +
			"output says so. Without the server's file, the peers' files alone make the ring:\n" +
			"their ring size and ids, and their neighbours for the members whose files are not\n" +
			"given (drawn without a table; '?' where no file names the member).\n" +
			"With --query, it draws the walk of a query for that Long Name from the member\n" +
			"--from (the server picks that member at random; default the leader).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "svg", TakesFile: true, Usage: "draw the ring as an SVG image in `FILE` as well as the text (- or /dev/stdout: on stdout, instead of the text)"},
			&cli.StringFlag{Name: "query", Usage: "draw the walk of a query for `LONG_NAME`"},
			&cli.StringFlag{Name: "from", Usage: "the member `NAME` the query starts at (default: the leader)"},
			&cli.StringFlag{Name: "title", Usage: "title drawn above the ring"},
			&cli.DurationFlag{Name: "wait", Value: 500 * time.Millisecond, Usage: "how long to wait for a file held by a running process (0: try once)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return usagef("ring takes the server's file and the peers' files (see 'dht ring --help')")
			}
			if c.Duration("wait") < 0 {
				return usagef("--wait must not be negative, got %s (0 tries once)", c.Duration("wait"))
			}
			// A Long Name as the peer takes one typed: its spaces around it
			// trimmed, and not empty.
			query := strings.TrimSpace(c.String("query"))
			if c.IsSet("query") && query == "" {
				return usagef("--query needs a Long Name, got %q", c.String("query"))
			}
			if len(query) > wire.MaxField {
				// As query-dht refuses it: no query could ask for it.
				return usagef("--query: Long Name too long (%d bytes, at most %d)", len(query), wire.MaxField)
			}
			if c.String("from") != "" && query == "" {
				return usagef("--from is where a --query starts: give --query too")
			}
			svgOut, err := stdoutDash(e, "svg", c.String("svg"), outSVG, c.Args().Slice())
			if err != nil {
				return err
			}
			if err := checkOutput("svg", svgOut, outSVG, c.Args().Slice()...); err != nil {
				return err
			}
			var server *store.ServerReport
			var peers []*store.PeerReport
			var unregistered []string // peer files that hold no registration
			for _, path := range c.Args().Slice() {
				rep, err := store.Inspect(path, c.Duration("wait"))
				if err != nil {
					return err
				}
				switch r := rep.(type) {
				case *store.ServerReport:
					if server != nil {
						return usagef("%s: a second server file; a ring has one server", path)
					}
					server = r
				case *store.PeerReport:
					if r.Name == "" {
						unregistered = append(unregistered, path)
						continue
					}
					peers = append(peers, r)
				default:
					return fmt.Errorf("%s: unknown report %T", path, rep)
				}
			}
			ring := buildRing(server, peers)
			if len(unregistered) > 0 {
				ring.Info = append(ring.Info, "no registration (deregistered, or never registered) in "+strings.Join(unregistered, ", "))
			}
			ring.Title = c.String("title")
			if name := query; name != "" {
				if len(ring.Nodes) == 0 {
					return fmt.Errorf("--query: the files hold no ring to walk")
				}
				q, err := ringQuery(ring, peers, name, c.String("from"))
				if err != nil {
					return err
				}
				ring.Query = q
			}
			// The image first: a FILE that cannot be written fails
			// before the text is printed.
			svg := c.String("svg")
			if svg != "" {
				if err := writeOut(e, svg, ring.SVG()); err != nil {
					return err
				}
			}
			if !toStdout(e, svg) {
				if _, err := fmt.Fprint(e.stdout, ring.Text()); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

// unknownMember stands for a ring member no file read names.
const unknownMember = "?"

// peersRing is the ring as the peers' files hold it, without the server's:
// of the ring size most files give (the larger on a tie), each file's
// member at the id it gives, and an id no file holds named by its
// neighbour's file where one names it (unknownMember where none does), so
// that the files of some members draw the whole ring, the others missing.
// A file of another ring size, or of an id another file took, is a
// warning and stays out.
func peersRing(peers []*store.PeerReport, byName map[string]*store.PeerReport, warn func(string, ...any)) []string {
	sizes := map[int]int{}
	for _, p := range peers {
		if p.ID != nil && byName[p.Name] == p {
			sizes[*p.RingSize]++
		}
	}
	n := 0
	for size, count := range sizes {
		if count > sizes[n] || count == sizes[n] && size > n {
			n = size
		}
	}
	if n == 0 {
		return nil
	}
	members := make([]string, n)
	var placed []int // ids, in the order of the files
	for _, p := range peers {
		switch {
		case p.ID == nil || byName[p.Name] != p:
		case *p.RingSize != n || *p.ID < 0 || *p.ID >= n:
			warn("%s's file says id %d of %d; the other files say a ring of %d", p.Name, *p.ID, *p.RingSize, n)
		case members[*p.ID] != "":
			warn("%s's file says id %d, which %s's file says too; the ring shows %s", p.Name, *p.ID, members[*p.ID], members[*p.ID])
		default:
			members[*p.ID] = p.Name
			placed = append(placed, *p.ID)
		}
	}
	for _, i := range placed {
		p := byName[members[i]]
		if l := (i + n - 1) % n; members[l] == "" && p.Left != nil {
			members[l] = p.Left.Name
		}
		if r := (i + 1) % n; members[r] == "" && p.Right != nil {
			members[r] = p.Right.Name
		}
	}
	for i := range members {
		if members[i] == "" {
			members[i] = unknownMember
		}
	}
	return members
}

// buildRing makes the ring the files hold: in the server's ring order when
// the server has a DHT, else in the order of the ids the peers' files give.
// Every disagreement between the files is a warning.
func buildRing(server *store.ServerReport, peers []*store.PeerReport) *diagram.Ring {
	r := &diagram.Ring{}
	warn := func(format string, args ...any) { r.Warnings = append(r.Warnings, fmt.Sprintf(format, args...)) }
	byName := map[string]*store.PeerReport{}
	for _, p := range peers {
		if byName[p.Name] != nil {
			warn("two files of %s were given; the ring shows the first", p.Name)
			continue
		}
		byName[p.Name] = p
	}
	var members []string
	leader := ""
	fromServer := server != nil && len(server.DHT.Members) > 0
	switch {
	case fromServer:
		members, leader = server.DHT.Members, server.DHT.Leader
		line := fmt.Sprintf("server: DHT %s, leader %s", server.DHT.Phase, leader)
		if server.DHT.Leaver != "" {
			line += ", leaver " + server.DHT.Leaver
		}
		if server.DHT.Joiner != "" {
			line += ", joiner " + server.DHT.Joiner
		}
		r.Info = append(r.Info, line)
	default:
		if server != nil {
			r.Info = append(r.Info, fmt.Sprintf("server: DHT %s", server.DHT.Phase))
		} else {
			r.Info = append(r.Info, "no server file: the ring as the peers' files hold it")
		}
		members = peersRing(peers, byName, warn)
		if len(members) > 0 && members[0] != unknownMember {
			// Id 0 leads; an id no file names is no one's to mark.
			leader = members[0]
		}
	}
	n := len(members)
	addrs := map[string]string{}
	if server != nil {
		for _, u := range server.Users {
			addrs[u.Name] = joinAddr(u.IP, u.Port)
		}
	}
	// A member whose file was not read has the address its neighbours'
	// files give, when the server's file gives none.
	for _, p := range peers {
		for _, m := range []*store.MemberJSON{p.Left, p.Right} {
			if m != nil && addrs[m.Name] == "" {
				addrs[m.Name] = joinAddr(m.IP, m.Port)
			}
		}
	}
	total := 0
	var missing []string
	for i, name := range members {
		nd := diagram.RingNode{Name: name, Addr: addrs[name], Leader: name == leader}
		p := byName[name]
		if p == nil {
			nd.Missing = true
			if name == unknownMember {
				missing = append(missing, fmt.Sprintf("id %d (no file names it)", i))
			} else {
				missing = append(missing, name)
			}
			r.Nodes = append(r.Nodes, nd)
			continue
		}
		if a := joinAddr(p.IP, p.Port); a != "" {
			if nd.Addr != "" && nd.Addr != a {
				warn("%s's file says address %s; the server's says %s", name, a, nd.Addr)
			}
			nd.Addr = a
		}
		nd.Records = p.Records
		total += p.Records
		r.Nodes = append(r.Nodes, nd)
		if p.ID == nil {
			if fromServer {
				warn("%s's file says it is in no ring; the server counts it as member %d", name, i)
			} else {
				warn("%s's file says it is in no ring; a neighbour's file names it as member %d", name, i)
			}
			continue
		}
		if *p.ID != i || *p.RingSize != n {
			warn("%s's file says id %d of %d; it is member %d of %d", name, *p.ID, *p.RingSize, i, n)
		}
		left, right := members[(i+n-1)%n], members[(i+1)%n]
		if p.Left.Name != left || p.Right.Name != right {
			warn("%s's file has neighbours %s (left) and %s (right); the ring's order says %s and %s",
				name, p.Left.Name, p.Right.Name, left, right)
		}
		misplaced := 0
		for _, s := range p.Slots {
			if s.Pos%n != i {
				misplaced += len(s.Records)
			}
		}
		if misplaced > 0 {
			warn("%s holds %d records whose id (slot mod %d) is not %d", name, misplaced, n, i)
		}
	}
	if n > 0 {
		line := fmt.Sprintf("%d records in the ring's files", total)
		if len(missing) > 0 {
			line += "; no file read of " + strings.Join(missing, ", ")
		}
		r.Info = append(r.Info, line)
	}
	var outside []string
	if server != nil {
		for _, u := range server.Users {
			if !slices.Contains(members, u.Name) {
				outside = append(outside, fmt.Sprintf("%s (%s, %s)", u.Name, joinAddr(u.IP, u.Port), u.State))
			}
		}
	}
	for _, p := range peers {
		if !slices.Contains(members, p.Name) && (server == nil || !slices.ContainsFunc(server.Users, func(u store.UserJSON) bool { return u.Name == p.Name })) {
			outside = append(outside, fmt.Sprintf("%s (%s)", p.Name, joinAddr(p.IP, p.Port)))
		}
		if p.ID != nil && !slices.Contains(members, p.Name) {
			warn("%s's file says id %d of %d, but it is not a member of the ring", p.Name, *p.ID, *p.RingSize)
		}
	}
	if len(outside) > 0 {
		r.Info = append(r.Info, "not in the ring: "+strings.Join(outside, ", "))
	}
	return r
}

// ringQuery is the walk of a query for longName from the member named
// from (the leader when "").
func ringQuery(r *diagram.Ring, peers []*store.PeerReport, longName, from string) (*diagram.RingQuery, error) {
	n := len(r.Nodes)
	q := &diagram.RingQuery{LongName: longName, Pos: dataset.Pos(longName)}
	q.Target = dataset.ID(q.Pos, n)
	if from != "" {
		q.From = slices.IndexFunc(r.Nodes, func(nd diagram.RingNode) bool { return nd.Name == from })
		if q.From < 0 {
			var names []string
			for _, nd := range r.Nodes {
				names = append(names, nd.Name)
			}
			return nil, usagef("--from %s: not a member of the ring (%s)", from, strings.Join(names, " "))
		}
	} else {
		q.From = slices.IndexFunc(r.Nodes, func(nd diagram.RingNode) bool { return nd.Leader })
		q.From = max(q.From, 0)
	}
	target := r.Nodes[q.Target].Name
	for _, p := range peers {
		if p.Name != target {
			continue
		}
		for _, s := range p.Slots {
			if s.Pos != q.Pos {
				continue
			}
			for _, rec := range s.Records {
				if dataset.FromFields(rec).LongName == longName {
					q.Found = true
				}
			}
		}
		break
	}
	return q, nil
}

func joinAddr(ip string, port uint16) string {
	if ip == "" {
		return ""
	}
	return net.JoinHostPort(ip, strconv.Itoa(int(port)))
}
