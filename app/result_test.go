package app

import (
	"testing"

	"dht/dataset"
)

// TestResultText: each kind of result, as the stdout contract spells it.
func TestResultText(t *testing.T) {
	aruba := dataset.Record{CountryCode: "ABW", ShortName: "Aruba", TableName: "Aruba", LongName: "Aruba", Alpha2: "AW",
		Currency: "Aruban florin", Region: "Latin America & Caribbean", WB2: "AW", Census: "2010"}
	tests := []struct {
		r    Result
		want string
	}{
		{resultOK(CmdRegister), "register SUCCESS"},
		{resultFailed(CmdRegister, "alice is already registered"), "register FAILURE: alice is already registered"},
		{Result{Cmd: CmdUnknown, Word: "frobnicate", Reason: "unknown command (type help for the list)"}, "frobnicate FAILURE: unknown command (type help for the list)"},
		{Result{Cmd: CmdSetupDHT, OK: true, Ring: []string{"alice", "carol", "dave"}}, "setup-dht SUCCESS: ring of 3: alice carol dave"},
		{resultOK(CmdDHTComplete), "dht-complete SUCCESS"},
		{Result{Cmd: CmdDHTRebuilt, OK: true, NewLeader: "erin"}, "dht-rebuilt SUCCESS: new leader erin"},
		{Result{Cmd: CmdQueryDHT, Answer: Answer{Answered: true, LongName: "Kingdom of \"Atlantis\"", Node: "carol", NodeID: 1, Hops: 1}},
			`query-dht FAILURE: "Kingdom of \"Atlantis\"" not found in the DHT (answered by node carol, id 1, after 1 hop)`},
		{Result{Cmd: CmdQueryDHT, OK: true, Answer: Answer{Answered: true, LongName: "Aruba", Node: "dave", NodeID: 0, Hops: 2, Record: aruba}},
			"query-dht SUCCESS: found at node dave (id 0) after 2 hops\nCountry Code: ABW\nShort Name: Aruba\nTable Name: Aruba\nLong Name: Aruba\n2-Alpha Code: AW\nCurrency Unit: Aruban florin\nRegion: Latin America & Caribbean\nWB-2 Code: AW\nLatest Population Census: 2010"},
		{Result{Cmd: CmdHelp, OK: true, Text: "commands:\n  help"}, "help SUCCESS\ncommands:\n  help"},
	}
	for _, tt := range tests {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("got  %q\nwant %q", got, tt.want)
		}
	}
}

func TestCommandNames(t *testing.T) {
	for _, u := range commandUsage {
		c, ok := commandNamed(u.name)
		if !ok || c.String() != u.name {
			t.Errorf("commandNamed(%q) = %v, %v", u.name, c, ok)
		}
	}
	if c, ok := commandNamed("unknown"); ok {
		t.Errorf("commandNamed(unknown) = %v, true", c)
	}
}

// An unknown command's line starts with the word as typed, quoted when it
// holds a control character or bytes that are not UTF-8: they would reach
// the terminal that reads stdout as they are (an escape sequence typed, or
// piped in, clearing the screen or retitling the window); and when it holds
// a character that shows nothing (a byte-order mark at the start of a
// script: "\ufeffhelp FAILURE" looked like help itself refused, a new
// user's review).
func TestUnknownWordQuotedWhenNotPrintable(t *testing.T) {
	for word, want := range map[string]string{
		"frob":             "frob FAILURE: x",
		"héllo":            "héllo FAILURE: x",
		"help\x00help":     `"help\x00help" FAILURE: x`,
		"\xff\xfe":         `"\xff\xfe" FAILURE: x`,
		"query-dht\x7fbob": `"query-dht\x7fbob" FAILURE: x`,
		"\x1b[2J":          `"\x1b[2J" FAILURE: x`,
		"\ufeffhelp":       `"\ufeffhelp" FAILURE: x`,
		"help\u200b":       `"help\u200b" FAILURE: x`,
	} {
		if got := (Result{Cmd: CmdUnknown, Word: word, Reason: "x"}).String(); got != want {
			t.Errorf("word %q: %q, want %q", word, got, want)
		}
	}
}
