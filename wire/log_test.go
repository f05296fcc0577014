package wire

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestTypeString(t *testing.T) {
	tests := []struct {
		t    Type
		want string
	}{
		{TypeRegister, "register"},
		{TypeSetupDHT, "setup-dht"},
		{TypeDHTComplete, "dht-complete"},
		{TypeQueryDHT, "query-dht"},
		{TypeLeaveDHT, "leave-dht"},
		{TypeDHTRebuilt, "dht-rebuilt"},
		{TypeDeregister, "deregister"},
		{TypeTeardownDHT, "teardown-dht"},
		{TypeTeardownComplete, "teardown-complete"},
		{TypeReply, "reply"},
		{TypeSetID, "set-id"},
		{TypeStore, "store"},
		{TypeFlush, "flush"},
		{TypeQuery, "query"},
		{TypeQueryResult, "query-result"},
		{TypeTeardown, "teardown"},
		{TypeTornDown, "torn-down"},
		{TypeCommitted, "committed"},
		{TypeResetID, "reset-id"},
		{TypeResetLeft, "reset-left"},
		{TypeResetRight, "reset-right"},
		{TypeRebuildDHT, "rebuild-dht"},
		{TypeRebuilt, "rebuilt"},
		{TypeAck, "ack"},
		{TypeJoinDHT, "join-dht"},
		{TypeJoin, "join"},
		{0, "type(0)"},
		{TypeAlive, "alive"},
		{TypePace, "pace"},
		{14, "type(14)"},
		{29, "challenge"},
		{31, "type(31)"},
		{255, "type(255)"},
	}
	for _, tt := range tests {
		if got := tt.t.String(); got != tt.want {
			t.Errorf("Type(%d).String() = %q, want %q", uint8(tt.t), got, tt.want)
		}
	}
}

func TestFlagsString(t *testing.T) {
	tests := []struct {
		f    Flags
		want string
	}{
		{0, "none"},
		{FlagRetransmit, "retransmit"},
		{0x80, "0x80"},
		{FlagRetransmit | 0x18, "retransmit|0x18"},
		{FlagAuth | FlagNoAck, "no-ack|auth"},
		{FlagNoAck | 0x80, "no-ack|0x80"},
	}
	for _, tt := range tests {
		if got := tt.f.String(); got != tt.want {
			t.Errorf("Flags(%#x).String() = %q, want %q", uint8(tt.f), got, tt.want)
		}
	}
}

func TestMemberString(t *testing.T) {
	if got := alice.String(); got != "alice@10.0.0.1:5000" {
		t.Errorf("String() = %q", got)
	}
}

// Every message logs its main fields through slog.
func TestLogValue(t *testing.T) {
	want := map[string][]string{
		"register":               {"msg.name=alice", "msg.addr=10.0.0.1:5000"},
		"setup-dht":              {"msg.name=alice", "msg.ring=3"},
		"dht-complete":           {"msg.name=alice"},
		"dht-rebuilt":            {"msg.name=bob", "msg.new_leader=alice"},
		"reply-ok":               {"msg.ok=true", "msg.members=alice,bob"},
		"reply-failure":          {"msg.ok=false", `msg.reason="in use"`},
		"set-id":                 {"msg.node_id=1", "msg.ring=2", "msg.left=alice@10.0.0.1:5000", "msg.right=bob@10.0.0.2:5001"},
		"store":                  {"msg.ring=2", "msg.records=2", "msg.first=Aruba"},
		"store-empty":            {"msg.ring=1", "msg.records=0"},
		"flush":                  {"msg.leader=alice", "msg.ring=2"},
		"query":                  {"msg.req_id=3735928559", "msg.querier=bob@10.0.0.2:5001", "msg.hops=1", "msg.long_name=Curaçao"},
		"query-result-found":     {"msg.found=true", "msg.node=alice", "msg.node_id=0", "msg.hops=2"},
		"query-result-not-found": {"msg.found=false", "msg.long_name=Atlantis"},
		"teardown":               {"msg.origin=alice", "msg.keep_neighbours=true"},
		"reset-id":               {"msg.origin=bob", "msg.node_id=1", "msg.ring=2"},
		"reset-left":             {"msg.left=alice@10.0.0.1:5000"},
		"reset-right":            {"msg.right=bob@10.0.0.2:5001"},
		"rebuild-dht":            {"msg.leaver=bob@10.0.0.2:5001"},
		"rebuilt":                {"msg.ok=true", "msg.new_leader=alice"},
	}
	for _, g := range goldens {
		t.Run(g.name, func(t *testing.T) {
			if _, ok := g.msg.(slog.LogValuer); !ok {
				t.Fatalf("%T is not a slog.LogValuer", g.msg)
			}
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, nil))
			log.Info("send", "hdr", Header{Type: g.msg.Type(), ID: g.id, Flags: g.flags}, "msg", g.msg)
			out := buf.String()
			if !strings.Contains(out, "hdr.type="+g.msg.Type().String()) {
				t.Errorf("no type in %q", out)
			}
			for _, w := range want[g.name] {
				if !strings.Contains(out, w) {
					t.Errorf("%q not in %q", w, out)
				}
			}
		})
	}
}
