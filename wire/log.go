package wire

import (
	"log/slog"
	"strconv"
	"strings"
)

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
	if f&FlagAuth != 0 {
		parts = append(parts, "auth")
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
