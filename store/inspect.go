package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"dht/app/state"
	"dht/dataset"

	bolt "go.etcd.io/bbolt"
)

// ServerReport is what `dht inspect` shows of a server file.
type ServerReport struct {
	Kind    string     `json:"kind"`    // "server"
	Version byte       `json:"version"` // the file's layout version
	Users   []UserJSON `json:"users"`
	DHT     DHTJSON    `json:"dht"`

	sealed bool // its values carry checksums (fileVersion); text form only
}

// UserJSON is one registration in a ServerReport.
type UserJSON struct {
	Name  string `json:"name"`
	IP    string `json:"ip"`
	Port  uint16 `json:"port"`
	State string `json:"state"`
	// LastSeen is the user's last sign of life as the server last wrote
	// it (RFC 3339, UTC, to the second), if it wrote one.
	LastSeen string `json:"last_seen,omitempty"`

	seen int64 // LastSeen in unix nanoseconds, for the text form
}

// DHTJSON is the DHT state in a ServerReport.
type DHTJSON struct {
	Phase        string   `json:"phase"`
	Leader       string   `json:"leader,omitempty"`
	Members      []string `json:"members,omitempty"`
	Leaver       string   `json:"leaver,omitempty"`
	Joiner       string   `json:"joiner,omitempty"`
	Removed      []string `json:"removed,omitempty"` // while healing: the members taken out as offline
	Epoch        uint64   `json:"epoch,omitempty"`
	WaitingSince string   `json:"waiting_since,omitempty"` // RFC 3339, UTC
}

// PeerReport is what `dht inspect` shows of a peer file. A peer outside any
// DHT has no id, ring size or neighbours.
type PeerReport struct {
	Kind     string      `json:"kind"`    // "peer"
	Version  byte        `json:"version"` // the file's layout version
	Name     string      `json:"name"`
	IP       string      `json:"ip,omitempty"`
	Port     uint16      `json:"port,omitempty"`
	Server   *AddrJSON   `json:"server,omitempty"` // the server it registered with
	ID       *int        `json:"id,omitempty"`
	RingSize *int        `json:"ring_size,omitempty"`
	Left     *MemberJSON `json:"left,omitempty"`
	Right    *MemberJSON `json:"right,omitempty"`
	Epoch    uint64      `json:"epoch,omitempty"` // the server's number of the ring this place is in
	Slots    []SlotJSON  `json:"slots"`           // non-empty slots only, by position
	Records  int         `json:"records"`

	server netip.AddrPort // Server, for the text form
	sealed bool           // its values carry checksums (fileVersion); text form only
}

// AddrJSON is an address in a PeerReport.
type AddrJSON struct {
	IP   string `json:"ip"`
	Port uint16 `json:"port"`
}

// MemberJSON is a neighbour in a PeerReport.
type MemberJSON struct {
	Name string `json:"name"`
	IP   string `json:"ip"`
	Port uint16 `json:"port"`
}

// SlotJSON is one non-empty slot of a peer's table.
type SlotJSON struct {
	Pos     int          `json:"pos"`
	Records []RecordJSON `json:"records"` // by Long Name bytes
}

// RecordJSON is a record's nine fields in file order. It marshals to an
// object whose keys are dataset.Headers in file order.
type RecordJSON [9]string

// MarshalJSON writes the record as an object with its keys in file order
// (a map would sort them). Invalid UTF-8 becomes U+FFFD, as encoding/json
// does for every string.
func (r RecordJSON) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	put := func(s string) error {
		if err := enc.Encode(s); err != nil {
			return err
		}
		buf.Truncate(buf.Len() - 1) // Encode ends with a newline
		return nil
	}
	buf.WriteByte('{')
	for i, h := range dataset.Headers {
		if i > 0 {
			buf.WriteByte(',')
		}
		if err := put(h); err != nil {
			return nil, err
		}
		buf.WriteByte(':')
		if err := put(r[i]); err != nil {
			return nil, err
		}
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// Inspect reads the dht file at path without changing it and returns a
// *ServerReport or a *PeerReport. The file is opened read-only, so it is
// never created, written or initialised. A file held by a running process
// gives ErrLocked once timeout has passed; a file dht did not write gives
// ErrNotDHT; a damaged or inconsistent one ErrDamaged, as OpenServer and
// OpenPeer would refuse it; a missing file gives an error matching
// fs.ErrNotExist.
func Inspect(path string, timeout time.Duration) (report any, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		// Said as the other files refused are: the path, then why.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, notDHT(path, "not a regular file", nil)
	}
	if fi.Size() == 0 {
		// bbolt would try to initialise an empty file.
		return nil, notDHT(path, "empty file", nil)
	}
	h := &file{path: path}
	var db *bolt.DB
	err = h.guard(func() error {
		var err error
		db, err = bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: timeout, OpenFile: h.opener(false, timeout)})
		if err != nil {
			db = nil
			err = openErr(path, err, "a running process", timeout)
			if errors.Is(err, ErrLocked) {
				err = fmt.Errorf("%w: stop it (SIGTERM or Ctrl-C) to read its file", err)
			}
			return err
		}
		return db.View(func(tx *bolt.Tx) error {
			kind, err := checkMeta(path, tx)
			if err != nil {
				return err
			}
			if kind == "" {
				return notDHT(path, "bbolt database without dht meta bucket", nil)
			}
			if err := checkLayout(path, tx, kind); err != nil {
				return err
			}
			if kind == kindServer {
				report, err = serverReport(path, tx)
			} else {
				report, err = peerReport(path, tx)
			}
			return err
		})
	})
	if cerr := h.close(db); err == nil && cerr != nil {
		err = fmt.Errorf("store: close %s: %w", path, cerr)
	}
	if err != nil {
		return nil, err
	}
	return report, nil
}

func serverReport(path string, tx *bolt.Tx) (*ServerReport, error) {
	st, _, err := loadServer(tx)
	if err := refuse(path, kindServer, err, st.Check()); err != nil {
		return nil, err
	}
	r := &ServerReport{Kind: kindServer, Users: []UserJSON{}, sealed: sealedValues(tx)}
	r.Version = layoutVersion(kindServer, r.sealed)
	for _, u := range st.Users {
		ip, port := splitAddr(u.Addr)
		uj := UserJSON{Name: u.Name, IP: ip, Port: port, State: u.State.String(), seen: u.LastSeen}
		if u.LastSeen != 0 {
			uj.LastSeen = time.Unix(0, u.LastSeen).UTC().Format(time.RFC3339)
		}
		r.Users = append(r.Users, uj)
	}
	h := st.DHT
	r.DHT = DHTJSON{Phase: h.Phase.String(), Leader: h.Leader, Members: h.Members, Leaver: h.Leaver, Joiner: h.Joiner,
		Removed: h.Removed, Epoch: h.Epoch}
	if h.Since != 0 {
		r.DHT.WaitingSince = time.Unix(0, h.Since).UTC().Format(time.RFC3339Nano)
	}
	return r, nil
}

func peerReport(path string, tx *bolt.Tx) (*PeerReport, error) {
	type span struct{ pos, start int }
	var spans []span
	id, recs, err := loadPeer(tx, func(pos, start int) { spans = append(spans, span{pos, start}) })
	if err := refuse(path, kindPeer, err, checkPeer(id, recs)); err != nil {
		return nil, err
	}
	r := &PeerReport{Kind: kindPeer, Name: id.Name, Slots: []SlotJSON{}, Records: len(recs), server: id.Server, sealed: sealedValues(tx)}
	r.Version = layoutVersion(kindPeer, r.sealed)
	if id.Server.IsValid() {
		ip, port := splitAddr(id.Server)
		r.Server = &AddrJSON{IP: ip, Port: port}
	}
	r.IP, r.Port = splitAddr(id.Addr)
	if id.InRing {
		n, i := id.N, id.ID
		r.ID, r.RingSize = &i, &n
		r.Left, r.Right = memberJSON(id.Left), memberJSON(id.Right)
		r.Epoch = id.Epoch
	}
	for i, sp := range spans {
		end := len(recs)
		if i+1 < len(spans) {
			end = spans[i+1].start
		}
		s := SlotJSON{Pos: sp.pos}
		for _, rec := range recs[sp.start:end] {
			s.Records = append(s.Records, RecordJSON(rec.Fields()))
		}
		r.Slots = append(r.Slots, s)
	}
	return r, nil
}

func memberJSON(m state.Member) *MemberJSON {
	ip, port := splitAddr(m.Addr)
	return &MemberJSON{Name: m.Name, IP: ip, Port: port}
}

func splitAddr(a netip.AddrPort) (string, uint16) {
	if !a.IsValid() {
		return "", 0
	}
	return a.Addr().String(), a.Port()
}

func addrText(ip string, port uint16) string {
	if ip == "" {
		return "-"
	}
	return net.JoinHostPort(ip, strconv.Itoa(int(port)))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// LivenessNote is what inspect says of the LAST SEEN and SILENT columns,
// and of what a server started on the file makes of them.
const LivenessNote = "liveness: LAST SEEN is each user's last sign of life as the server last wrote it (to the second,\n" +
	"  at most a few seconds stale); SILENT, how long before the latest in the file: a user silent\n" +
	"  for more than the server's --dead-after (default 15s) was offline then. A server started on\n" +
	"  this file gives every user --dead-after from its start to show up."

// WriteText writes the report for a person: the users table, then the DHT.
func (r *ServerReport) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "server file: %d users\n", len(r.Users))
	if len(r.Users) > 0 {
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		var latest int64
		for _, u := range r.Users {
			latest = max(latest, u.seen)
		}
		fmt.Fprintln(tw, "  NAME\tADDRESS\tSTATE\tLAST SEEN\tSILENT")
		for _, u := range r.Users {
			seen, silent := "-", "-"
			if u.seen != 0 {
				seen, silent = u.LastSeen, time.Duration(latest-u.seen).String()
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", u.Name, addrText(u.IP, u.Port), u.State, seen, silent)
		}
		tw.Flush()
	}
	fmt.Fprintf(&b, "dht: %s\n", r.DHT.Phase)
	if r.DHT.Leader != "" {
		fmt.Fprintf(&b, "  leader:  %s\n", r.DHT.Leader)
	}
	if len(r.DHT.Members) > 0 {
		fmt.Fprintf(&b, "  members: %s\n", strings.Join(r.DHT.Members, " "))
	}
	if r.DHT.Leaver != "" {
		fmt.Fprintf(&b, "  leaver:  %s\n", r.DHT.Leaver)
	}
	if r.DHT.Joiner != "" {
		fmt.Fprintf(&b, "  joiner:  %s\n", r.DHT.Joiner)
	}
	if len(r.DHT.Removed) > 0 {
		fmt.Fprintf(&b, "  removed as offline: %s\n", strings.Join(r.DHT.Removed, " "))
	}
	if r.DHT.Epoch != 0 {
		fmt.Fprintf(&b, "  epoch:   %d\n", r.DHT.Epoch)
	}
	if r.DHT.WaitingSince != "" {
		fmt.Fprintf(&b, "  waiting since %s\n", r.DHT.WaitingSince)
	}
	if len(r.Users) > 0 {
		b.WriteString(LivenessNote + "\n")
	}
	b.WriteString(versionLine(kindServer, r.sealed))
	_, err := io.WriteString(w, b.String())
	return err
}

// layoutVersion is the version of a file of kind whose values carry
// checksums (sealed) or not.
func layoutVersion(kind string, sealed bool) byte {
	if sealed {
		return fileVersion(kind)
	}
	return unsealedVersion(kind)
}

// versionLine is the text form's last line: the file's layout version,
// and, for the version before, what opening it does.
func versionLine(kind string, sealed bool) string {
	if sealed {
		return fmt.Sprintf("file version %d (this build's for a %s file)\n", fileVersion(kind), kind)
	}
	return fmt.Sprintf("file version %d: its values carry no checksums; a %s that opens it seals them (version %d), and earlier builds then refuse it\n",
		unsealedVersion(kind), kind, fileVersion(kind))
}

// WriteText writes the report for a person: identity, neighbours, then each
// non-empty slot with one "Long Name | Country Code" line per record. Field
// bytes are written as they are stored.
func (r *PeerReport) WriteText(w io.Writer) error {
	var b strings.Builder
	if r.Name == "" {
		// A file whose user deregistered, or never registered: it keeps
		// no name and no address to show.
		b.WriteString("peer file of no registered user (deregistered, or never registered)")
	} else {
		fmt.Fprintf(&b, "peer %s at %s", r.Name, addrText(r.IP, r.Port))
	}
	if r.server.IsValid() {
		fmt.Fprintf(&b, ", server %s", r.server)
	}
	b.WriteByte('\n')
	if r.ID == nil {
		b.WriteString("not in a DHT\n")
	} else {
		fmt.Fprintf(&b, "id %d in a ring of %d", *r.ID, *r.RingSize)
		if r.Epoch != 0 {
			fmt.Fprintf(&b, " (epoch %d)", r.Epoch)
		}
		b.WriteByte('\n')
		for _, n := range []struct {
			side string
			m    *MemberJSON
		}{{"left: ", r.Left}, {"right:", r.Right}} {
			fmt.Fprintf(&b, "%s %s %s\n", n.side, orDash(n.m.Name), addrText(n.m.IP, n.m.Port))
		}
	}
	fmt.Fprintf(&b, "%s in %s\n", counted(r.Records, "record"), counted(len(r.Slots), "slot"))
	for _, s := range r.Slots {
		fmt.Fprintf(&b, "slot %d:\n", s.Pos)
		for _, rec := range s.Records {
			f := dataset.FromFields(rec)
			fmt.Fprintf(&b, "  %s | %s\n", f.LongName, f.CountryCode)
		}
	}
	b.WriteString(versionLine(kindPeer, r.sealed))
	_, err := io.WriteString(w, b.String())
	return err
}

// counted is n things, "thing" or "things" as n says.
func counted(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
