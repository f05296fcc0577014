package wire

import (
	"log/slog"
	"strconv"
	"strings"
)

var typeNames = [...]string{
	TypeRegister:         "register",
	TypeSetupDHT:         "setup-dht",
	TypeDHTComplete:      "dht-complete",
	TypeQueryDHT:         "query-dht",
	TypeLeaveDHT:         "leave-dht",
	TypeDHTRebuilt:       "dht-rebuilt",
	TypeDeregister:       "deregister",
	TypeTeardownDHT:      "teardown-dht",
	TypeTeardownComplete: "teardown-complete",
	TypeReply:            "reply",
	TypeSetID:            "set-id",
	TypeStore:            "store",
	TypeFlush:            "flush",
	TypeQuery:            "query",
	TypeQueryResult:      "query-result",
	TypeTeardown:         "teardown",
	TypeResetID:          "reset-id",
	TypeResetLeft:        "reset-left",
	TypeResetRight:       "reset-right",
	TypeRebuildDHT:       "rebuild-dht",
	TypeRebuilt:          "rebuilt",
	TypeAck:              "ack",
}

// String returns the protocol's name of t, such as "setup-dht", or
// "type(N)" for a value that names no type.
func (t Type) String() string {
	if t.known() {
		return typeNames[t]
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

func (t Type) known() bool { return int(t) < len(typeNames) && typeNames[t] != "" }

// String returns the set flags joined by "|", such as "retransmit", with
// unknown bits in hex; "none" when no bit is set.
func (f Flags) String() string {
	if f == 0 {
		return "none"
	}
	var parts []string
	if f&FlagRetransmit != 0 {
		parts = append(parts, "retransmit")
	}
	if f&FlagNoAck != 0 {
		parts = append(parts, "no-ack")
	}
	if rest := f &^ knownFlags; rest != 0 {
		parts = append(parts, "0x"+strconv.FormatUint(uint64(rest), 16))
	}
	return strings.Join(parts, "|")
}

// String returns "name@ip:port".
func (m Member) String() string { return m.Name + "@" + m.Addr.String() }

// LogValue logs the header as type, id and (when set) flags.
func (h Header) LogValue() slog.Value {
	if h.Flags == 0 {
		return slog.GroupValue(slog.String("type", h.Type.String()), slog.Uint64("id", uint64(h.ID)))
	}
	return slog.GroupValue(slog.String("type", h.Type.String()), slog.Uint64("id", uint64(h.ID)),
		slog.String("flags", h.Flags.String()))
}

// The LogValue methods below show the main fields of each message, with
// the package's stable keys where one fits (ring for a ring size, addr for
// an address).

func (m Register) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", m.Name), slog.String("addr", m.Addr.String()))
}

func (m SetupDHT) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", m.Name), slog.Int("ring", int(m.N)))
}

func (m DHTComplete) LogValue() slog.Value      { return nameValue(m.Name) }
func (m QueryDHT) LogValue() slog.Value         { return nameValue(m.Name) }
func (m LeaveDHT) LogValue() slog.Value         { return nameValue(m.Name) }
func (m Deregister) LogValue() slog.Value       { return nameValue(m.Name) }
func (m TeardownDHT) LogValue() slog.Value      { return nameValue(m.Name) }
func (m TeardownComplete) LogValue() slog.Value { return nameValue(m.Name) }

func nameValue(name string) slog.Value { return slog.GroupValue(slog.String("name", name)) }

func (m DHTRebuilt) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", m.Name), slog.String("new_leader", m.NewLeader))
}

func (m Reply) LogValue() slog.Value {
	attrs := make([]slog.Attr, 0, 3)
	attrs = append(attrs, slog.Bool("ok", m.OK))
	if m.Reason != "" {
		attrs = append(attrs, slog.String("reason", m.Reason))
	}
	if len(m.Members) > 0 {
		var sb strings.Builder
		for i := range m.Members {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(m.Members[i].Name)
		}
		attrs = append(attrs, slog.String("members", sb.String()))
	}
	return slog.GroupValue(attrs...)
}

func (m SetID) LogValue() slog.Value {
	return slog.GroupValue(slog.Int("node_id", int(m.ID)), slog.Int("ring", int(m.N)),
		slog.String("left", m.Left.String()), slog.String("right", m.Right.String()))
}

// LogValue shows the ring size, the number of records and the Long Name of
// the first record.
func (m Store) LogValue() slog.Value {
	if len(m.Records) == 0 {
		return slog.GroupValue(slog.Int("ring", int(m.N)), slog.Int("records", 0))
	}
	return slog.GroupValue(slog.Int("ring", int(m.N)), slog.Int("records", len(m.Records)),
		slog.String("first", m.Records[0][3]))
}

func (m Flush) LogValue() slog.Value {
	return slog.GroupValue(slog.String("leader", m.Leader), slog.Int("ring", int(m.N)))
}

func (m Query) LogValue() slog.Value {
	return slog.GroupValue(slog.Uint64("req_id", uint64(m.ReqID)), slog.String("querier", m.Querier.String()),
		slog.Int("hops", int(m.Hops)), slog.String("long_name", m.LongName))
}

func (m QueryResult) LogValue() slog.Value {
	return slog.GroupValue(slog.Uint64("req_id", uint64(m.ReqID)), slog.Bool("found", m.Found),
		slog.String("node", m.Node), slog.Int("node_id", int(m.NodeID)), slog.Int("hops", int(m.Hops)),
		slog.String("long_name", m.LongName))
}

func (m Teardown) LogValue() slog.Value {
	return slog.GroupValue(slog.String("origin", m.Origin), slog.Bool("keep_neighbours", m.KeepNeighbours))
}

func (m ResetID) LogValue() slog.Value {
	return slog.GroupValue(slog.String("origin", m.Origin), slog.Int("node_id", int(m.ID)), slog.Int("ring", int(m.N)))
}

func (m ResetLeft) LogValue() slog.Value {
	return slog.GroupValue(slog.String("left", m.Left.String()))
}

func (m ResetRight) LogValue() slog.Value {
	return slog.GroupValue(slog.String("right", m.Right.String()))
}

func (m RebuildDHT) LogValue() slog.Value {
	return slog.GroupValue(slog.String("leaver", m.Leaver.String()))
}

func (m Rebuilt) LogValue() slog.Value {
	if m.Reason == "" {
		return slog.GroupValue(slog.Bool("ok", m.OK), slog.String("new_leader", m.NewLeader))
	}
	return slog.GroupValue(slog.Bool("ok", m.OK), slog.String("reason", m.Reason), slog.String("new_leader", m.NewLeader))
}

// LogValue is empty: the header's id says what is acknowledged.
func (m Ack) LogValue() slog.Value {
	if len(m.More) == 0 {
		return slog.GroupValue()
	}
	return slog.GroupValue(slog.Any("more", m.More))
}
