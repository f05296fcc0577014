package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestExitStatus: 0 on normal exit, 2 on usage errors, 1 on runtime
// failures, for every command.
func TestExitStatus(t *testing.T) {
	// A usage error that regresses runs the command for real: its files go
	// to a folder of the test's, not into the package's.
	t.Chdir(t.TempDir())
	missing := filepath.Join(t.TempDir(), "missing")
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"no command shows the help, a usage error", nil, 2},
		{"--help", []string{"--help"}, 0},
		{"an unknown command", []string{"frobnicate"}, 2},
		{"an unknown global flag", []string{"--frobnicate"}, 2},
		{"server without PORT", []string{"server"}, 2},
		{"server with a bad port", []string{"server", "70000"}, 2},
		{"server with a bad address", []string{"server", "--addr", "::1", "4000"}, 2},
		{"server with an unknown flag", []string{"server", "--frobnicate", "4000"}, 2},
		{"server with too short a --dead-after", []string{"server", "--dead-after", "500ms", "4000"}, 2},
		{"server with too short an --op-timeout", []string{"server", "--op-timeout", "500ms", "4000"}, 2},
		{"server with an unusable file", []string{"server", "--addr", "127.0.0.1", "--db", filepath.Join(missing, "s.db"), "4000"}, 1}, // 1 too if the port is taken
		{"peer with one argument", []string{"peer", "127.0.0.1"}, 2},
		{"peer with a bad address", []string{"peer", "1.2.3", "4000"}, 2},
		{"peer with a bad window", []string{"peer", "--window", "0", "127.0.0.1", "4000"}, 2},
		{"peer at end of input", []string{"peer", "--quiet", "127.0.0.1", "4000"}, 0},
		{"inspect without FILE", []string{"inspect"}, 2},
		{"inspect a missing file", []string{"inspect", filepath.Join(missing, "x.db")}, 1},
		{"play without FILE", []string{"play"}, 2},
		{"play a missing file", []string{"play", "--dir", t.TempDir(), filepath.Join(missing, "x.play")}, 1},
		{"demo with too few peers", []string{"demo", "--peers", "1"}, 2},
		{"demo with a missing dataset", []string{"demo", "--data", filepath.Join(missing, "d.csv")}, 1},
		{"bench with no processors", []string{"bench", "--procs", "0"}, 2},
		{"bench with a ring of one", []string{"bench", "--peers", "1"}, 2},
		{"bench typing no query ahead", []string{"bench", "--processes", "--queries-ahead", "0"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runDHT(t, "", serverGuarded(tt.args, missing)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errOut)
			}
			if code != 0 && !strings.HasPrefix(errOut, "dht: ") {
				t.Fatalf("a failure without a message: %q", errOut)
			}
		})
	}
}

// TestHelp: every command's help exits 0 and says how to call it and what
// each flag does.
func TestHelp(t *testing.T) {
	tests := []struct {
		cmd  string
		want []string
	}{
		{"", []string{"server", "peer", "inspect", "demo", "play"}},
		{"server", []string{"dht server [command options] PORT", "--db", "--addr", "--dead-after", "--op-timeout", "--quiet", "--fault-loss", "--help, -h"}},
		{"peer", []string{"dht peer [command options] SERVER_IPV4 SERVER_PORT", "(default: the embedded StatsCountry.csv, 241 records)", "prompt", "register NAME IPV4 PORT", "query-dht NAME [LONG NAME...]", "sleep DURATION", "--data", "--db", "--rto", "--give-up", "--window", "--query-timeout", "--help, -h"}},
		{"inspect", []string{"dht inspect [command options] FILE", "--json", "--wait", "--help, -h"}},
		{"demo", []string{"dht demo [command options]", "--data", "--peers", "--dir", "--port", "--keep-running", "--seed", "--trace"}},
		{"play", []string{"dht play [command options] FILE", "${PORT:KEY}", "expect SUCCESS|FAILURE [TEXT]", "sleep DURATION", "seed N", "--data", "--dir", "--seed", "--timeout", "--trace"}},
	}
	for _, tt := range tests {
		t.Run("help "+tt.cmd, func(t *testing.T) {
			args, helpArgs := []string{"--help"}, []string{"help"}
			if tt.cmd != "" {
				args, helpArgs = []string{tt.cmd, "--help"}, []string{"help", tt.cmd}
			}
			code, out, errOut := runDHT(t, "", args...)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("help lacks %q:\n%s", w, out)
				}
			}
			// dht help [COMMAND] prints the same.
			code, helpOut, errOut := runDHT(t, "", helpArgs...)
			if code != 0 || errOut != "" || helpOut != out {
				t.Errorf("dht %s: exit %d, stderr %q, stdout differs from dht %s:\n%s", strings.Join(helpArgs, " "), code, errOut, strings.Join(args, " "), helpOut)
			}
			if tt.cmd == "" {
				// dht help help: the help, as git gives it.
				if code, again, errOut := runDHT(t, "", "help", "help"); code != 0 || errOut != "" || again != out {
					t.Errorf("dht help help: exit %d, stderr %q, stdout differs from dht --help:\n%s", code, errOut, again)
				}
			}
		})
	}
}

// TestUsageErrors: a command line the user got wrong gets one line on
// stderr that says what is wrong and where the help is, exit status 2, and
// nothing on stdout.
func TestUsageErrors(t *testing.T) {
	// A usage error that regresses runs the command for real: its files go
	// to a folder of the test's, not into the package's.
	t.Chdir(t.TempDir())
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--frobnicate"}, "unknown flag --frobnicate (see 'dht --help')"},
		{[]string{"-x"}, "unknown flag -x (see 'dht --help')"}, // as typed
		{[]string{"peer", "--quiet", "-x", "127.0.0.1", "4000"}, "unknown flag -x (see 'dht peer --help')"},
		{[]string{"frobnicate"}, `unknown command "frobnicate" (see 'dht --help')`},
		{[]string{"server", "--frobnicate", "4000"}, "unknown flag --frobnicate (see 'dht server --help')"},
		{[]string{"server", "--db", "", "4000"}, "--db needs a file name (without --db the server's file is dht-server.db)"},
		{[]string{"peer", "--db", "", "127.0.0.1", "4000"}, "--db needs a file name (without --db the peer's file is dht-peer-NAME.db, named at register)"},
		{[]string{"peer", "--data", "", "127.0.0.1", "4000"}, "--data needs a file name (without --data the embedded StatsCountry.csv is used)"},
		{[]string{"demo", "--data", ""}, "--data needs a file name (without --data the embedded StatsCountry.csv is used)"},
		{[]string{"server", "--fault-loss", "nan", "4000"}, "--fault-loss must be in [0,1), got NaN"},
		{[]string{"peer", "--fault-dup", "NaN", "127.0.0.1", "4000"}, "--fault-dup must be in [0,1], got NaN"},
		{[]string{"bench", "--loss", "nan"}, "--loss must be in [0,1), got NaN"},
		{[]string{"peer", "127.0.0.01", "4000"}, `invalid IPv4 address "127.0.0.01": write its four numbers without leading zeros, e.g. 127.0.0.1`},
		{[]string{"server", "4000", "--db", "x.db"}, "flags go before PORT: --db (see 'dht server --help')"},
		{[]string{"peer", "127.0.0.1", "4000", "--quiet"}, "flags go before SERVER_IPV4 SERVER_PORT: --quiet (see 'dht peer --help')"},
		{[]string{"inspect", "x.db", "--json"}, "flags go before FILE: --json (see 'dht inspect --help')"},
		{[]string{"demo", "--peers", "x"}, `invalid value "x" for --peers: need a whole number (see 'dht demo --help')`},
		{[]string{"server", "--dead-after", "5", "4000"}, `invalid value "5" for --dead-after: need a duration, e.g. 200ms, 15s or 2m (see 'dht server --help')`},
		{[]string{"bench", "--loss", "x"}, `invalid value "x" for --loss: need a number, e.g. 0.1 (see 'dht bench --help')`},
		{[]string{"inspect", "--json=maybe", "x.db"}, `invalid value "maybe" for --json: need true or false (see 'dht inspect --help')`},
		{[]string{"inspect", "--wait", "-1s", "x.db"}, "--wait must not be negative, got -1s (0 tries once)"},
		{[]string{"ring", "--wait", "-1s", "x.db"}, "--wait must not be negative, got -1s (0 tries once)"},
		{[]string{"version", "x"}, "version takes no arguments (see 'dht version --help')"},
		{[]string{"server", "--op-timeout", "1ns", "4000"}, "--op-timeout must be 1s to 24h0m0s, got 1ns"},
		{[]string{"server", "--op-timeout", "2000000h", "4000"}, "--op-timeout must be 1s to 24h0m0s, got 2000000h0m0s"},
		{[]string{"server", "--dead-after", "25h", "4000"}, "--dead-after must be 2s to 24h0m0s, got 25h0m0s"},
		{[]string{"peer", "--rto", "0s", "127.0.0.1", "4000"}, "--rto must be positive and at most 1m0s, got 0s"},
		// Past these the sums of the protocol's timers overflowed (a
		// review: the first query timeout came out 0).
		{[]string{"peer", "--rto", "1300000h", "--give-up", "1400000h", "127.0.0.1", "4000"}, "--rto must be positive and at most 1m0s, got 1300000h0m0s"},
		{[]string{"peer", "--give-up", "1400000h", "127.0.0.1", "4000"}, "--give-up must be at most 24h0m0s, got 1400000h0m0s"},
		{[]string{"peer", "--query-timeout", "25h", "127.0.0.1", "4000"}, "--query-timeout must be positive and at most 24h0m0s, got 25h0m0s"},
		{[]string{"peer", "--give-up", "20ms", "127.0.0.1", "4000"}, "--give-up must be longer than --rto (30ms), got 20ms"},
		{[]string{"peer", "--rto", "1m", "127.0.0.1", "4000"}, "--give-up must be longer than --rto (1m0s), got 10s"},
		{[]string{"peer", "--window", "0", "127.0.0.1", "4000"}, "--window must be 1-1024, got 0"},
		{[]string{"bench", "--window", "2000"}, "--window must be 0-1024 (0: the default), got 2000"},
		{[]string{"bench", "--records", "-5"}, "--records must be 0-1000000 (0: the dataset), got -5"},
		// Past these a bench failed late, on memory or open files (a new
		// user's review: a crash of the runtime; two minutes of forks).
		{[]string{"bench", "--records", "99999999999"}, "--records must be 0-1000000 (0: the dataset), got 99999999999"},
		{[]string{"bench", "--queriers", "100000"}, "--queriers must be at most 1024, got 100000"},
		{[]string{"bench", "--processes", "--queriers", "5000"}, "--queriers must be at most 64 with --processes (each is a process), got 5000"},
		{[]string{"ring", "--query", strings.Repeat("x", 1025), "x.db"}, "--query: Long Name too long (1025 bytes, at most 1024)"},
		{[]string{"bench", "--scaling", "-"}, "--scaling needs a FILE for the SVG: the table goes to stdout"},
		{[]string{"bench", "--scaling", "s.svg", "--loss-sweep"}, "--loss-sweep and --scaling are two benches: give one"},
		{[]string{"bench", "--records", "10", "--data", "x.csv"}, "--records and --data are two datasets: give one"},
		{[]string{"diagram", "--mermaid", "-", "--svg", "-", "x.jsonl"}, "--mermaid - and --svg - would both write to stdout: give one of them a FILE"},
		{[]string{"diagram", "--svg", ".", "x.jsonl"}, "--svg . is a folder: give --svg a FILE (e.g. image.svg)"},
		{[]string{"peer", "--trace-json", ".", "127.0.0.1", "4000"}, "--trace-json . is a folder: give --trace-json a FILE (e.g. trace.jsonl)"},
		{[]string{"server", "--fault-loss", "2", "4000"}, "--fault-loss must be in [0,1), got 2"},
		{[]string{"server", "--fault-dup", "-1", "4000"}, "--fault-dup must be in [0,1], got -1"},
		{[]string{"--help", "extra"}, `no help for "extra": --help takes no arguments (see 'dht help COMMAND')`},
		{[]string{"peer", "--query-timeout", "-1s", "127.0.0.1", "4000"}, "--query-timeout must be positive and at most 24h0m0s, got -1s"},
		{[]string{"help", "frobnicate"}, `unknown command "frobnicate" (see 'dht --help')`},
		{[]string{"help", "bench-floor"}, `unknown command "bench-floor" (see 'dht --help')`},
		{[]string{"help", "peer", "server"}, "help takes at most one command (see 'dht --help')"},
		// A network's broadcast address is no host's either (the loopback's).
		{[]string{"peer", "127.255.255.255", "4000"}, `invalid IPv4 address "127.255.255.255": 127.255.255.255 is the broadcast address of lo's network 127.0.0.0/8, not one host's address`},
		{[]string{"server", "--addr", "127.255.255.255", "4000"}, `invalid IPv4 address "127.255.255.255": 127.255.255.255 is the broadcast address of lo's network 127.0.0.0/8, not one host's address`},
		// After --, --help is no help asked: an argument, in the wrong place.
		{[]string{"peer", "--", "--help"}, "flags go before SERVER_IPV4 SERVER_PORT: --help (see 'dht peer --help')"},
		// A negative number is no flag: the port's own check, or said so.
		{[]string{"server", "-1"}, "-1 is not a flag, and no argument here takes a negative number (see 'dht server --help')"},
		{[]string{"peer", "127.0.0.1", "-1"}, `invalid port "-1": need 1-65535`},
		{[]string{"server", "04000"}, `invalid port "04000": write it without leading zeros (4000)`},
		{[]string{"peer", "127.0.0.1", "+4000"}, `invalid port "+4000": need 1-65535`},
	}
	missing := filepath.Join(t.TempDir(), "missing")
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errOut := runDHT(t, "", serverGuarded(tt.args, missing)...)
			if code != 2 || out != "" || errOut != "dht: "+tt.want+"\n" {
				t.Errorf("exit %d, stdout %q, stderr %q; want 2, nothing, %q", code, out, errOut, "dht: "+tt.want+"\n")
			}
		})
	}
}

// serverGuarded is args, with a --db in the folder missing, which is not
// there, put first for a server given none: a usage check that regresses
// then fails at the file (status 1), instead of running a server on the
// port the row names until the test times out (a mutation review).
func serverGuarded(args []string, missing string) []string {
	if len(args) == 0 || args[0] != "server" || slices.Contains(args, "--db") || slices.Contains(args, "--help") {
		return args
	}
	return append([]string{"server", "--db", filepath.Join(missing, "s.db")}, args[1:]...)
}

// A command's --help or -h shows its help wherever it is typed among its
// arguments, and 'dht help --help' the whole help: a new user's review got
// "flags go before …", "no help for …" and "unknown command "--help"".
func TestHelpAnywhere(t *testing.T) {
	t.Chdir(t.TempDir())
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"peer", "127.0.0.1", "46000", "--help"}, "NAME:\n   dht peer - "},
		{[]string{"peer", "--quiet", "127.0.0.1", "46000", "-h"}, "NAME:\n   dht peer - "},
		{[]string{"server", "--help", "46010"}, "NAME:\n   dht server - "},
		{[]string{"inspect", "x.db", "--help"}, "NAME:\n   dht inspect - "},
		{[]string{"help", "--help"}, "NAME:\n   dht - "},
		{[]string{"help", "-h"}, "NAME:\n   dht - "},
		{[]string{"help", "peer", "--help"}, "NAME:\n   dht peer - "},
		{[]string{"help", "server", "-h", "--help"}, "NAME:\n   dht server - "},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errOut := runDHT(t, "", tt.args...)
			if code != 0 || errOut != "" || !strings.HasPrefix(out, tt.want) {
				t.Errorf("exit %d, stderr %q, stdout %.60q; want 0 and the help", code, errOut, out)
			}
		})
	}
	if entries, _ := os.ReadDir("."); len(entries) != 0 {
		t.Errorf("the help left %d files", len(entries))
	}
}

// TestVersion: --version and the version command print the module version
// and the Go version.
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		code, out, errOut := runDHT(t, "", args...)
		if code != 0 || errOut != "" || !strings.HasPrefix(out, "dht version ") || !strings.HasSuffix(out, " "+runtime.Version()+"\n") {
			t.Errorf("dht %s: exit %d, stdout %q, stderr %q", args[0], code, out, errOut)
		}
	}
}

// TestTableFileError: a register whose table file cannot be opened (here
// its default path, dht-peer-NAME.db, is a folder) blames the file, names
// its path once, and binds nothing.
func TestTableFileError(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "dht-peer-p.db"), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	port := freePorts(t, 1)[0]
	code, out, errOut := runDHT(t, fmt.Sprintf("register p 127.0.0.1 %d\n", port), "peer", "--quiet", "127.0.0.1", "4000")
	want := "register FAILURE: cannot open the table file: store: open dht-peer-p.db: is a directory\n"
	if code != 0 || out != want {
		t.Errorf("exit %d, stdout %q, stderr %q; want 0 and %q", code, out, errOut, want)
	}
	if c, err := net.ListenPacket("udp4", fmt.Sprintf("127.0.0.1:%d", port)); err != nil {
		t.Errorf("the port is still bound after the failed register: %v", err)
	} else {
		c.Close()
	}
}

// An address no host holds is refused at once, saying why, before anything
// is bound or created: a server that bound a multicast or the broadcast
// address would listen on every interface instead, and a peer would wait
// for a server that cannot answer. 0.0.0.0 is the server's "every
// interface", and nothing else.
func TestAddressesOfNoHostRefused(t *testing.T) {
	db := filepath.Join(t.TempDir(), "missing", "s.db") // opening it would fail with status 1
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"server", "--db", db, "--addr", "224.0.0.1", "4000"}, "224.0.0.1 is a multicast address"},
		{[]string{"server", "--db", db, "--addr", "255.255.255.255", "4000"}, "255.255.255.255 is the broadcast address"},
		{[]string{"server", "--db", db, "--addr", "240.1.2.3", "4000"}, "reserved"},
		{[]string{"peer", "--quiet", "0.0.0.0", "4000"}, "0.0.0.0 means any address"},
		{[]string{"peer", "--quiet", "255.255.255.255", "4000"}, "broadcast"},
		{[]string{"peer", "--quiet", "239.0.0.1", "4000"}, "multicast"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errOut := runDHT(t, "", tt.args...)
			if code != 2 || !strings.Contains(errOut, "invalid IPv4 address") || !strings.Contains(errOut, tt.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and a message with %q\nstdout:\n%s", code, errOut, tt.want, out)
			}
		})
	}
}

// A number flag's value is decimal, as the ports and ring sizes given as
// arguments are: package flag, which parses it, took 046040 for octal
// (port 19488), 0x46 for hex, 0b11, 1_0, and 0x.8p0 for a fraction, and a
// user who typed a leading zero got another port than asked (a new user's
// review). Nothing starts: each is refused with status 2, before anything
// binds or opens a file.
func TestNumberFlagsAreDecimal(t *testing.T) {
	db := filepath.Join(t.TempDir(), "missing", "p.db") // opening it would fail with status 1
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"demo", "--port", "046040"}, `invalid value "046040" for --port: need a whole number in decimal, without leading zeros (46040)`},
		{[]string{"demo", "--port=0x46"}, `invalid value "0x46" for --port`},
		{[]string{"demo", "--peers", "0b11"}, `invalid value "0b11" for --peers`},
		{[]string{"demo", "--peers", "1_0"}, `invalid value "1_0" for --peers`},
		{[]string{"bench", "--runs", "007"}, `(7)`},
		{[]string{"peer", "--db", db, "--window", "0x20", "127.0.0.1", "4000"}, `invalid value "0x20" for --window`},
		{[]string{"peer", "--db=" + db, "--window=010", "127.0.0.1", "4000"}, `invalid value "010" for --window`},
		{[]string{"peer", "--db", db, "--fault-loss", "0x.8p0", "127.0.0.1", "4000"}, `invalid value "0x.8p0" for --fault-loss: need a number in decimal`},
		{[]string{"peer", "--db", db, "--fault-dup", "0_1", "127.0.0.1", "4000"}, `invalid value "0_1" for --fault-dup`},
		{[]string{"server", "--db", db, "--fault-loss", "0x1p-2", "4000"}, `invalid value "0x1p-2" for --fault-loss`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errOut := runDHT(t, "", tt.args...)
			if code != 2 || !strings.Contains(errOut, tt.want) || out != "" {
				t.Fatalf("exit %d, stderr %q; want 2 and a message with %q\nstdout:\n%s", code, errOut, tt.want, out)
			}
		})
	}
	// Decimal values pass on to the flags' own checks.
	if code, _, errOut := runDHT(t, "", "peer", "--db", db, "--window", "2000", "--fault-loss", "0.5", "127.0.0.1", "4000"); code != 2 || !strings.Contains(errOut, "--window") || strings.Contains(errOut, "decimal") {
		t.Fatalf("exit %d, stderr %q; want the window's range", code, errOut)
	}
}

// A flag that takes one value, given twice, is refused with status 2,
// naming both values: package flag kept the last and dropped the other
// unsaid (a new user's review: two --query of dht ring drew one walk).
// Aliases count as the flag; a switch given twice is no conflict.
func TestAFlagGivenTwiceIsRefused(t *testing.T) {
	db := filepath.Join(t.TempDir(), "missing", "p.db") // opening it would fail with status 1
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"ring", "--query", "Aruba", "--query", "Puerto Rico", db}, `--query is given twice ("Aruba", then "Puerto Rico"): it takes one value (see 'dht ring --help')`},
		{[]string{"peer", "--db", db, "--db=" + db + "2", "127.0.0.1", "4000"}, `--db is given twice ("` + db + `", then "` + db + `2")`},
		{[]string{"server", "--db", db, "--dead-after", "5s", "--dead-after=6s", "4000"}, `--dead-after is given twice ("5s", then "6s")`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errOut := runDHT(t, "", tt.args...)
			if code != 2 || !strings.Contains(errOut, tt.want) || out != "" {
				t.Fatalf("exit %d, stderr %q; want 2 and a message with %q\nstdout:\n%s", code, errOut, tt.want, out)
			}
		})
	}
	if code, _, errOut := runDHT(t, "", "peer", "-q", "-q", "--db", db, "127.0.0.1", "99999"); code != 2 || !strings.Contains(errOut, `invalid port "99999"`) {
		t.Fatalf("exit %d, stderr %q; want a switch given twice taken, and the port refused", code, errOut)
	}
}

// play's --seed, when absent, gives way to the file's seed line: its help
// says so rather than "(default: 1)".
func TestPlaySeedHelpNamesTheFileSeed(t *testing.T) {
	code, out, errOut := runDHT(t, "", "play", "--help")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	i := strings.Index(out, "--seed")
	if i < 0 {
		t.Fatalf("help lacks --seed:\n%s", out)
	}
	line, _, _ := strings.Cut(out[i:], "\n--")
	if strings.Contains(line, "(default: 1)") || !strings.Contains(line, "(default: the file's seed line, or 1 without one)") {
		t.Fatalf("--seed help %q: want the file's seed line named as the default", line)
	}
}

// A server whose port is taken fails before it creates its file: nothing
// is left behind.
func TestServerPortInUseCreatesNoFile(t *testing.T) {
	busy, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := busy.LocalAddr().(*net.UDPAddr).Port
	db := filepath.Join(t.TempDir(), "s.db")
	code, out, errOut := runDHT(t, "", "server", "--quiet", "--db", db, "--addr", "127.0.0.1", strconv.Itoa(port))
	if code != 1 || !strings.Contains(errOut, "address already in use (another process has port "+strconv.Itoa(port)+": stop it, or give the server another PORT)") {
		t.Fatalf("exit %d, stderr %q; want 1 and the port in use, with what to do\nstdout:\n%s", code, errOut, out)
	}
	if _, err := os.Lstat(db); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s was created (%v)", db, err)
	}
}

// failingInput reads one line, then fails as a folder given as stdin does.
type failingInput struct{ sent bool }

func (f *failingInput) Read(b []byte) (int, error) {
	if !f.sent {
		f.sent = true
		return copy(b, "# a comment\n"), nil
	}
	return 0, errors.New("read /dev/stdin: is a directory")
}

// A peer whose standard input fails says so on stderr and takes it as the
// end of its input, where before it ended as silently as at an end of file.
func TestPeerSaysItsInputFailed(t *testing.T) {
	t.Chdir(t.TempDir())
	var out, errOut strings.Builder
	code := run([]string{"dht", "peer", "--quiet", "127.0.0.1", "4000"}, &failingInput{}, &out, &errOut)
	if want := "dht: peer: standard input cannot be read, taken as its end: read /dev/stdin: is a directory\n"; code != 0 || out.String() != "" || errOut.String() != want {
		t.Errorf("exit %d, stdout %q, stderr %q; want 0, nothing and %q", code, out.String(), errOut.String(), want)
	}
}

// closedInput fails as a read under way does when the peer closes its
// stdin as it exits.
type closedInput struct{}

func (closedInput) Read([]byte) (int, error) { return 0, os.ErrClosed }

// That is no failure of the input: nothing is said (a review saw the note
// at every exit of a peer reading a pipe).
func TestPeerSaysNothingOfItsOwnClose(t *testing.T) {
	t.Chdir(t.TempDir())
	var out, errOut strings.Builder
	if code := run([]string{"dht", "peer", "--quiet", "127.0.0.1", "4000"}, closedInput{}, &out, &errOut); code != 0 || errOut.String() != "" {
		t.Errorf("exit %d, stderr %q; want 0 and nothing", code, errOut.String())
	}
}

// A server given an address this host does not have says so (a new
// user's review: only the system's "cannot assign requested address").
func TestServerOnAnAddressNotThisHostsSaysSo(t *testing.T) {
	db := filepath.Join(t.TempDir(), "s.db")
	const elsewhere = "198.51.100.1" // TEST-NET-2: no host's
	code, out, errOut := runDHT(t, "", "server", "--quiet", "--db", db, "--addr", elsewhere, "4000")
	if code != 1 || !strings.Contains(errOut, "cannot assign requested address ("+elsewhere+" is not an address of this host)") {
		t.Fatalf("exit %d, stderr %q; want 1 and the address named not this host's\nstdout:\n%s", code, errOut, out)
	}
}

// fullWriter is a stdout on a full disk.
type fullWriter struct{}

func (fullWriter) Write([]byte) (int, error) { return 0, syscall.ENOSPC }

// A command whose output cannot be written says so and exits 1, rather
// than 0 with its output lost (a new user's review: --version, help,
// play and demo exited 0 with stdout on /dev/full).
func TestLostOutputIsAFailure(t *testing.T) {
	play, err := filepath.Abs("../../examples/register-retry.play")
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	for _, args := range [][]string{{"--version"}, {"help"}, {"help", "peer"}, {"play", play}} {
		var errOut bytes.Buffer
		code := run(append([]string{"dht"}, args...), strings.NewReader(""), fullWriter{}, &errOut)
		if want := "dht: no space left on device\n"; code != 1 || errOut.String() != want {
			t.Errorf("%v: exit %d, stderr %q; want 1 and %q", args, code, errOut.String(), want)
		}
	}
}
