package app

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"dht/wire"
)

// command is one parsed input line.
type command struct {
	cmd  Command
	word string         // the command as typed (for a word that names none)
	msg  wire.Message   // the request for the server; nil for local commands
	bind netip.AddrPort // register: the address to bind and register
	// query-dht: "" if not typed, to be read from the next input line
	longName    string
	sleep       time.Duration
	usageReason string
}

// Usage lines of the peer's commands, in the order help lists them.
var commandUsage = []struct{ name, args, what string }{
	{"register", "NAME IPV4 PORT", "register NAME at IPV4:PORT (the peer binds that address and sends from it)"},
	{"setup-dht", "N NAME", "build a DHT of N nodes led by NAME (this peer), spread the dataset round it"},
	{"dht-complete", "NAME", "tell the server the DHT led by NAME is built (the leader sends it itself)"},
	{"query-dht", "NAME [LONG NAME...]", "look up a Long Name (rest of the line, or the next line once the server agrees) through a random node"},
	{"leave-dht", "NAME", "leave the DHT: tear it down, renumber, rebuild the smaller ring"},
	{"join-dht", "NAME", "join the DHT (NAME Free): its leader tears it down, takes NAME in last, rebuilds"},
	{"dht-rebuilt", "NAME NEWLEADER", "tell the server the ring was rebuilt (the leaver or joiner sends it itself)"},
	{"deregister", "NAME", "remove NAME from the registry; the peer then exits"},
	{"teardown-dht", "NAME", "delete the DHT led by NAME"},
	{"teardown-complete", "NAME", "tell the server the DHT is deleted (the leader sends it itself)"},
	{"sleep", "DURATION", "pause reading commands (e.g. sleep 200ms), for scripts"},
	{"help", "", "this list"},
}

// stopping, after the commands in what help prints, says how a peer stops:
// no command does but deregister.
const stopping = "Ctrl-C (SIGINT, SIGTERM, or SIGHUP: the terminal closed) stops the peer, its file closed;\n" +
	"the end of input (Ctrl-D) stops it only while it is not registered (registered, it goes on\n" +
	"serving its ring)"

// HelpText is the list of commands the help command prints.
func HelpText() string {
	var b strings.Builder
	b.WriteString("commands (one per line; blank lines and lines starting with # are skipped):\n")
	for _, c := range commandUsage {
		fmt.Fprintf(&b, "  %-38s %s\n", strings.TrimSpace(c.name+" "+c.args), c.what)
	}
	return strings.TrimRight(b.String(), "\n")
}

func usage(name string) string {
	for _, c := range commandUsage {
		if c.name == name {
			return "usage: " + strings.TrimSpace(c.name+" "+c.args)
		}
	}
	return ""
}

// invalidUserName says why name is no user's, quoting at most its first
// 32 bytes.
func invalidUserName(name string) string {
	q := strconv.Quote(name)
	if len(name) > 32 {
		q = fmt.Sprintf("%s… (%d bytes)", strconv.Quote(name[:32]), len(name))
	}
	return fmt.Sprintf("invalid user name %s: ASCII letters only (A-Z, a-z), 1 to %d", q, MaxNameLen)
}

// parseCommand turns one input line into a command. A line it cannot use
// yields a command with usageReason set; nothing is sent for it.
func parseCommand(line string) command {
	f := strings.Fields(line)
	c := command{word: f[0]}
	c.cmd, _ = commandNamed(f[0])
	args := f[1:]
	bad := func(format string, a ...any) command {
		c.msg = nil
		c.usageReason = fmt.Sprintf(format, a...)
		return c
	}
	nargs := func(n int) bool { return len(args) == n }
	// A name no register could make is refused here, with register's
	// words, as every line the peer cannot use: nothing is sent for it.
	badName := ""
	name := func(i int) (string, bool) {
		if !ValidName(args[i]) {
			badName = invalidUserName(args[i])
			return "", false
		}
		return args[i], true
	}
	switch c.cmd {
	case CmdRegister:
		if !nargs(3) {
			return bad("%s", usage(c.word))
		}
		if !ValidName(args[0]) {
			return bad("%s", invalidUserName(args[0]))
		}
		ip, err := netip.ParseAddr(args[1])
		if err != nil || !ip.Is4() {
			return bad("invalid IPv4 address %q: %s", args[1], IPv4Syntax(args[1], "a unicast dotted-decimal address such as 127.0.0.1"))
		}
		if why := NotUnicast(ip); why != "" {
			return bad("invalid IPv4 address %q: %s; need a unicast address such as 127.0.0.1", args[1], why)
		}
		port, why := ParsePort(args[2])
		if why != "" {
			return bad("%s", why)
		}
		c.bind = netip.AddrPortFrom(ip, port)
		c.msg = wire.Register{Name: args[0], Addr: c.bind}
	case CmdSetupDHT:
		if !nargs(2) {
			return bad("%s", usage(c.word))
		}
		n, err := strconv.ParseUint(args[0], 10, 16)
		if err != nil {
			// The server checks the range, with the same words.
			return bad("%s", badRingSize(strconv.Quote(args[0])))
		}
		if len(args[0]) > 1 && args[0][0] == '0' {
			// As a port: 010 is 8 to some tools, 10 to others.
			if n < 2 || n > MaxRing {
				return bad("%s", badRingSize(strconv.Quote(args[0])))
			}
			return bad("ring size N %q: write it without leading zeros (%d)", args[0], n)
		}
		nm, ok := name(1)
		if !ok {
			return bad("%s", badName)
		}
		c.msg = wire.SetupDHT{N: uint16(n), Name: nm}
	case CmdDHTComplete, CmdLeaveDHT, CmdDeregister, CmdTeardownDHT, CmdTeardownComplete, CmdJoinDHT:
		if !nargs(1) {
			return bad("%s", usage(c.word))
		}
		nm, ok := name(0)
		if !ok {
			return bad("%s", badName)
		}
		switch c.cmd {
		case CmdDHTComplete:
			c.msg = wire.DHTComplete{Name: nm}
		case CmdLeaveDHT:
			c.msg = wire.LeaveDHT{Name: nm}
		case CmdDeregister:
			c.msg = wire.Deregister{Name: nm}
		case CmdTeardownDHT:
			c.msg = wire.TeardownDHT{Name: nm}
		case CmdTeardownComplete:
			c.msg = wire.TeardownComplete{Name: nm}
		case CmdJoinDHT:
			c.msg = wire.JoinDHT{Name: nm}
		}
	case CmdDHTRebuilt:
		if !nargs(2) {
			return bad("%s", usage(c.word))
		}
		a, ok1 := name(0)
		b, ok2 := name(1)
		if !ok1 || !ok2 {
			return bad("%s", badName)
		}
		c.msg = wire.DHTRebuilt{Name: a, NewLeader: b}
	case CmdQueryDHT:
		if len(args) < 1 {
			return bad("%s", usage(c.word))
		}
		nm, ok := name(0)
		if !ok {
			return bad("%s", badName)
		}
		c.msg = wire.QueryDHT{Name: nm}
		rest := strings.TrimSpace(line)
		rest = strings.TrimSpace(strings.TrimPrefix(rest, c.word))
		rest = strings.TrimSpace(strings.TrimPrefix(rest, nm))
		c.longName = rest
		if len(rest) > wire.MaxField {
			return bad("Long Name too long (%d bytes, at most %d)", len(rest), wire.MaxField)
		}
	case CmdSleep:
		if !nargs(1) {
			return bad("%s", usage(c.word))
		}
		d, err := time.ParseDuration(args[0])
		if err != nil || d < 0 || d > time.Hour {
			return bad("invalid duration %q: e.g. 200ms or 2s (at most 1h)", args[0])
		}
		c.sleep = d
	case CmdHelp:
		if !nargs(0) {
			return bad("%s", usage(c.word))
		}
	default:
		switch strings.ToLower(c.word) {
		case "exit", "quit", "bye", "logout":
			return bad("unknown command: Ctrl-C (SIGINT or SIGTERM) stops the peer (type help for the list)")
		}
		if near := nearCommand(c.word); near != "" {
			return bad("unknown command; did you mean %s? (type help for the list)", near)
		}
		return bad("unknown command (type help for the list)")
	}
	return c
}

// ParsePort reads a UDP port as a user writes it: 1-65535 in decimal, with
// no sign and no leading zero (an address refuses them too: 049007 is read
// as octal by some tools, as decimal by others). why says what is wrong,
// "" when nothing is.
func ParsePort(s string) (port uint16, why string) {
	p, err := strconv.ParseUint(s, 10, 16)
	switch {
	case err != nil || p == 0:
		return 0, fmt.Sprintf("invalid port %q: need 1-65535", s)
	case s[0] == '0':
		return 0, fmt.Sprintf("invalid port %q: write it without leading zeros (%d)", s, p)
	}
	return uint16(p), ""
}

// nearCommand is the command word a user probably meant by word, or "":
// the same but for case, '_' for '-' or a dash left out (Query-DHT,
// query_dht, querydht), or one letter wrong, missing, extra or swapped
// with the next (qeury-dht, regster).
func nearCommand(word string) string {
	fold := func(s string) string {
		return strings.ReplaceAll(strings.ReplaceAll(strings.ToLower(s), "_", ""), "-", "")
	}
	w := fold(word)
	for _, c := range commandUsage {
		// A command named without its -dht (query, setup, leave, join,
		// teardown) is that command.
		if name := fold(c.name); w == name || w+"dht" == name || len(w) >= 4 && oneEditApart(w, name) {
			return c.name
		}
	}
	return ""
}

// oneEditApart reports whether a and b differ by one letter changed,
// added or removed, or two neighbours swapped.
func oneEditApart(a, b string) bool {
	if len(a) > len(b) {
		a, b = b, a
	}
	if len(b)-len(a) > 1 {
		return false
	}
	i := 0
	for i < len(a) && a[i] == b[i] {
		i++
	}
	if i == len(a) {
		return len(a) != len(b) // one added at the end (equal: no edit)
	}
	if len(a) < len(b) {
		return a[i:] == b[i+1:]
	}
	return a[i+1:] == b[i+1:] || i+1 < len(a) && a[i] == b[i+1] && a[i+1] == b[i] && a[i+2:] == b[i+2:]
}

// IPv4Syntax says what is wrong with s, which does not parse as an IPv4
// address: a number written with a leading zero (which some tools read as
// octal, and netip refuses), or else that it needs want.
func IPv4Syntax(s, want string) string {
	parts := strings.Split(s, ".")
	if len(parts) == 4 {
		zeros := false
		for _, p := range parts {
			if p == "" || strings.Trim(p, "0123456789") != "" {
				return "need " + want
			}
			zeros = zeros || len(p) > 1 && p[0] == '0'
		}
		if zeros {
			return "write its four numbers without leading zeros, e.g. 127.0.0.1"
		}
	}
	return "need " + want
}
