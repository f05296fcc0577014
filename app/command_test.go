package app

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"dht/app/state"
	"dht/wire"
)

func TestParseCommand(t *testing.T) {
	tests := []struct {
		line   string
		reason string // "" when the line parses
		check  func(t *testing.T, c command)
	}{
		{"register alice 127.0.0.1 5000", "", func(t *testing.T, c command) {
			if c.bind.String() != "127.0.0.1:5000" || c.msg.(wire.Register).Name != "alice" {
				t.Errorf("got %+v", c)
			}
		}},
		{"register alice 127.0.0.1", "usage: register NAME IPV4 PORT", nil},
		{"register al1ce 127.0.0.1 5000", "invalid user name", nil},
		{"register abcdefghijklmnop 127.0.0.1 5000", "invalid user name", nil},
		{"register alice ::1 5000", "invalid IPv4 address", nil},
		{"register alice 127.0.0.01 5000", `invalid IPv4 address "127.0.0.01": write its four numbers without leading zeros, e.g. 127.0.0.1`, nil},
		{"register alice 1.2.3.x 5000", `invalid IPv4 address "1.2.3.x": need a unicast dotted-decimal address such as 127.0.0.1`, nil},
		{"register alice 224.0.0.1 5000", "invalid IPv4 address \"224.0.0.1\": 224.0.0.1 is a multicast address", nil},
		{"register q 255.255.255.255 20031", "invalid IPv4 address \"255.255.255.255\": 255.255.255.255 is the broadcast address", nil},
		{"register alice 239.1.2.3 5000", "multicast", nil},
		{"register alice 0.0.0.0 5000", "0.0.0.0 means any address", nil},
		{"register alice 0.1.2.3 5000", "0.0.0.0/8", nil},
		{"register alice 240.0.0.1 5000", "240.0.0.0/4", nil},
		{"register alice 10.255.255.255 5000", "", nil}, // may be a subnet's broadcast: only the host knows
		{"register alice 127.0.0.1 0", "invalid port", nil},
		{"register alice 127.0.0.1 65536", "invalid port", nil},
		{"register alice 127.0.0.1 05001", "without leading zeros", nil},
		{"setup-dht 4 alice", "", func(t *testing.T, c command) {
			if m := c.msg.(wire.SetupDHT); m.N != 4 || m.Name != "alice" {
				t.Errorf("got %+v", m)
			}
		}},
		{"setup-dht four alice", `ring size N must be a whole number from 2 to 64, got "four"`, nil},
		{"setup-dht 65536 alice", `ring size N must be a whole number from 2 to 64, got "65536"`, nil},
		{"setup-dht 4", "usage: setup-dht N NAME", nil},
		{"setup-dht 1 alice", "", nil}, // the server decides n ≥ 2
		{"setup-dht 03 alice", `ring size N "03": write it without leading zeros (3)`, nil},
		{"setup-dht 00 alice", `ring size N must be a whole number from 2 to 64, got "00"`, nil},
		{"setup-dht 065 alice", `ring size N must be a whole number from 2 to 64, got "065"`, nil},
		{"query-dht bob Republic of Albania", "", func(t *testing.T, c command) {
			if c.longName != "Republic of Albania" {
				t.Errorf("long name %q", c.longName)
			}
		}},
		{"query-dht bob   Bahamas,  The  ", "", func(t *testing.T, c command) {
			if c.longName != "Bahamas,  The" {
				t.Errorf("long name %q", c.longName)
			}
		}},
		{"query-dht bob", "", func(t *testing.T, c command) {
			if c.longName != "" || c.msg != (wire.QueryDHT{Name: "bob"}) {
				t.Errorf("long name %q, message %+v: want none, and query-dht bob for the server", c.longName, c.msg)
			}
		}},
		{"query-dht", "usage: query-dht", nil},
		{"dht-rebuilt bob", "usage: dht-rebuilt NAME NEWLEADER", nil},
		{"dht-rebuilt bob carol", "", nil},
		{"leave-dht bob extra", "usage: leave-dht NAME", nil},
		{"join-dht dave", "", func(t *testing.T, c command) {
			if c.cmd != CmdJoinDHT || c.msg != (wire.JoinDHT{Name: "dave"}) {
				t.Errorf("got %+v", c)
			}
		}},
		{"join-dht", "usage: join-dht NAME", nil},
		{"deregister " + strings.Repeat("x", wire.MaxName+1), `invalid user name "` + strings.Repeat("x", 32) + `"… (65 bytes): ASCII letters only (A-Z, a-z), 1 to 15`, nil},
		// A name no register could make is refused here, not sent to the
		// server (a new user's review: README says a line the peer cannot
		// use sends nothing).
		{"deregister al1ce", `invalid user name "al1ce": ASCII letters only`, nil},
		{"query-dht abcdefghijklmnopq Aruba", `invalid user name "abcdefghijklmnopq"`, nil},
		{"setup-dht 2 al1ce", `invalid user name "al1ce"`, nil},
		{"dht-rebuilt ivy b0b", `invalid user name "b0b"`, nil},
		{"dht-rebuilt b0b ivy", `invalid user name "b0b"`, nil},
		{"teardown-dht jos\u00e9", `invalid user name`, nil},
		{"join-dht a_b", `invalid user name "a_b"`, nil},
		{"sleep 200ms", "", func(t *testing.T, c command) {
			if c.sleep.Milliseconds() != 200 {
				t.Errorf("sleep %v", c.sleep)
			}
		}},
		{"sleep forever", "invalid duration", nil},
		{"sleep -1s", "invalid duration", nil},
		{"help", "", nil},
		{"help me", "usage: help", nil},
		{"frobnicate now", "unknown command", nil},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			c := parseCommand(tt.line)
			if tt.reason == "" && c.usageReason != "" || !strings.Contains(c.usageReason, tt.reason) {
				t.Fatalf("reason %q, want %q", c.usageReason, tt.reason)
			}
			if tt.reason != "" && c.msg != nil {
				t.Fatalf("a refused line must send nothing, got %+v", c.msg)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

// A ring size that is not a number (refused by the peer) and one out of
// range (refused by the server) get the same words, one rule stated once.
func TestRingSizeOneWording(t *testing.T) {
	peer := parseCommand("setup-dht x y").usageReason
	srv := NewServer(ServerConfig{}, state.ServerState{Users: []state.User{{Name: "alice", Addr: netip.MustParseAddrPort("10.0.0.1:5000")}}}, nil)
	var server []string
	for _, n := range []uint16{1, MaxRing + 1} {
		for _, o := range srv.stepTrusted(time.Unix(1_700_000_000, 0), netip.MustParseAddrPort("10.0.0.1:5000"), wire.Header{ID: uint32(n)}, wire.SetupDHT{N: n, Name: "alice"}) {
			if s, ok := o.(Send); ok {
				server = append(server, s.Msg.(wire.Reply).Reason)
			}
		}
	}
	if len(server) != 2 {
		t.Fatalf("server answers %q", server)
	}
	want := func(got string) string { return "ring size N must be a whole number from 2 to 64, got " + got }
	if peer != want(`"x"`) || server[0] != want("1") || server[1] != want("65") {
		t.Fatalf("peer says %q, server %q; want one wording, %q", peer, server, want("..."))
	}
}

// FuzzCommand feeds arbitrary lines to a peer: nothing panics, every line
// that is not blank or a comment yields exactly one result line (or waits
// for the server, or for the next line), and any message it sends encodes.
func FuzzCommand(f *testing.F) {
	for _, s := range []string{"register alice 127.0.0.1 5000", "setup-dht 4 alice", "query-dht bob Aruba", "query-dht bob",
		"sleep 1s", "help", "# comment", "", "dht-rebuilt a b", "deregister \xab", "register a 1.2.3.4 99999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		if strings.ContainsAny(line, "\n\r") {
			return
		}
		p := NewPeer(PeerConfig{})
		for _, o := range p.Input(time.Unix(1_700_000_000, 0), line) {
			switch o := o.(type) {
			case Send:
				if _, err := wire.Append(nil, o.ID, o.Flags, o.Msg); err != nil {
					t.Fatalf("%q: message does not encode: %v", line, err)
				}
			case Result:
				if !utf8.ValidString(line) {
					continue
				}
				// The word as typed, or quoted if it is not printable.
				if f := strings.Fields(line); len(f) > 0 && !strings.HasPrefix(o.String(), f[0]) && !strings.HasPrefix(o.String(), strconv.Quote(f[0])) && f[0] != "help" {
					t.Fatalf("%q printed %q", line, o.String())
				}
			}
		}
	})
}

// A word near a command's name gets the name suggested (a new-user
// review: Query-dht, query-DHT and query_dht were only 'unknown').
func TestUnknownCommandSuggestsANearOne(t *testing.T) {
	for word, want := range map[string]string{
		"Query-dht": "query-dht", "query-DHT": "query-dht", "query_dht": "query-dht", "querydht": "query-dht",
		"qeury-dht": "query-dht", "regster": "register", "registerr": "register", "HELP": "help",
		"setup-dth": "setup-dht", "Aruba": "", "sleeep": "sleep", "dht": "", "complete": "",
		"query": "query-dht", "setup": "setup-dht", "Leave": "leave-dht", "join": "join-dht", "teardown": "teardown-dht",
	} {
		c := parseCommand(word + " alice")
		got := c.usageReason
		switch {
		case want == "" && got != "unknown command (type help for the list)":
			t.Errorf("%s: %q, want no suggestion", word, got)
		case want != "" && got != "unknown command; did you mean "+want+"? (type help for the list)":
			t.Errorf("%s: %q, want %s suggested", word, got, want)
		}
	}
}

// exit and quit, which a user tries first, say how the peer stops.
func TestExitSaysHowThePeerStops(t *testing.T) {
	for _, word := range []string{"exit", "quit", "QUIT", "bye"} {
		if got := parseCommand(word).usageReason; got != "unknown command: Ctrl-C (SIGINT or SIGTERM) stops the peer (type help for the list)" {
			t.Errorf("%s: %q", word, got)
		}
	}
}
