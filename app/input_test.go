package app

import (
	"slices"
	"strings"
	"testing"
)

// typeAtOnce types every line at user's peer before the network carries
// anything, as a pipe or a file delivers them, then runs the network until
// the peer has finished them all. It returns what the peer printed.
func typeAtOnce(t *testing.T, s *simNet, user string, lines []string) []string {
	t.Helper()
	p := s.procs[user]
	before := len(p.out)
	for _, l := range lines {
		s.input(user, l)
	}
	for !p.core.Idle() {
		if !s.step() {
			t.Fatalf("seed %d: %s: %q never finished (printed %q)", s.seed, user, lines, p.out[before:])
		}
	}
	return slices.Clone(p.out[before:])
}

// typeOneByOne types each line once the peer has done what it can with the
// one before, as a person at a terminal does.
func typeOneByOne(t *testing.T, s *simNet, user string, lines []string) []string {
	t.Helper()
	var out []string
	for _, l := range lines {
		out = append(out, s.do(user, l)...)
	}
	return out
}

// A query-dht typed without its Long Name takes the next line as the Long
// Name once the server has answered SUCCESS, and only then: refused, it
// takes none, and the next line is a command. The lines are taken in the
// order they came, the same whether they came at once or one by one.
func TestQueryLongNameOnTheNextLine(t *testing.T) {
	type typing func(*testing.T, *simNet, string, []string) []string
	ways := []struct {
		name string
		do   typing
	}{{"at once", typeAtOnce}, {"one by one", typeOneByOne}}
	// record is the result of a query that found longName: its first line
	// and the Long Name line of the record.
	found := func(longName string) string { return "query-dht SUCCESS\nLong Name: " + longName }
	summary := func(out []string) []string {
		var got []string
		for _, o := range out {
			first, rest, _ := strings.Cut(o, "\n")
			if strings.HasPrefix(first, "query-dht SUCCESS") {
				for _, l := range strings.Split(rest, "\n") {
					if strings.HasPrefix(l, "Long Name: ") {
						first = "query-dht SUCCESS\n" + l
					}
				}
			}
			got = append(got, first)
		}
		return got
	}
	for _, w := range ways {
		t.Run("in a DHT/"+w.name, func(t *testing.T) {
			s, _ := ringOfFour(t, 3)
			free := freeUser(s)
			lines := []string{
				"query-dht " + free,
				"Aruba",
				"query-dht " + free,
				"# a comment is no Long Name",
				"",
				"Republic of Chile",
				"query-dht " + free + " Kingdom of Spain",
				"query-dht " + free,
				"Kingdom of Atlantis",
			}
			want := []string{
				found("Aruba"),
				found("Republic of Chile"),
				found("Kingdom of Spain"),
				`query-dht FAILURE: "Kingdom of Atlantis" not found in the DHT`,
			}
			got := summary(w.do(t, s, free, lines))
			if len(got) != len(want) {
				t.Fatalf("printed %q, want %q", got, want)
			}
			for i := range want {
				if !strings.HasPrefix(got[i], want[i]) {
					t.Fatalf("result %d: %q, want %q (all: %q)", i, got[i], want[i], got)
				}
			}
		})
		t.Run("no DHT/"+w.name, func(t *testing.T) {
			s := newSim(t, 3, nil)
			setupFive(t, s)
			lines := []string{"query-dht bob", "Aruba", "query-dht bob Aruba", "help"}
			want := []string{
				"query-dht FAILURE: no DHT exists",
				"Aruba FAILURE: unknown command (type help for the list)",
				"query-dht FAILURE: no DHT exists",
				"commands (one per line; blank lines and lines starting with # are skipped):",
			}
			if got := summary(w.do(t, s, "bob", lines)); !slices.Equal(got, want) {
				t.Fatalf("printed %q, want %q", got, want)
			}
		})
	}
}
