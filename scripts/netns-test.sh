#!/usr/bin/env bash
# Multi-host test: the real dht binary on seven hosts that exist only for this
# test. Each host is a network namespace with one veth interface into a
# bridge that lives in a namespace of its own; the addresses are in
# 10.231.0.0/24 and exist only inside these namespaces, so every datagram of
# the test stays on that private bridge.
#
#   server  10.231.0.1    namespace dht<pid>-srv
#   peers   10.231.0.11-16  namespaces dht<pid>-h1 .. dht<pid>-h6
#
# Each peer registers with its own host's address. The scenario: register
# five users, setup-dht 4, query all 241 records from the Free host (each
# answer checked: the right record, from the node the hash names), a missing
# name, leave-dht of a member, all 241 again over the ring of three; then
# the sixth host's user registers and joins (join-dht), and all 241 again
# over the ring of four it is part of; a member killed with kill -9 and
# started again on its file (--db) resumes its place (resume SUCCESS), and
# all 241 again; teardown-dht, deregister of all six (each peer process
# exits), and the server stops cleanly on SIGTERM.
#
# The script waits for every result line (with a timeout), never sleeps to
# synchronise. It removes every namespace and stops every process it made,
# also when it fails. Needs root; installs iproute2 if `ip` is missing. If it
# cannot create namespaces it fails, loudly, under CI=true, and skips with a
# warning otherwise.
#
# Environment: DHT_DATA (a dataset file given to the peers with --data;
# default: the peers use the embedded dataset, the repository's
# dataset/StatsCountry.csv), DHT_BIN (a built binary; default: go build),
# DHT_TIMEOUT (seconds to wait for one result line, default 30).
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C # byte semantics: Long Names are compared and hashed as bytes

DATA="${DHT_DATA:-dataset/StatsCountry.csv}"
DATA_FLAG=()
[ -n "${DHT_DATA:-}" ] && DATA_FLAG=(--data "$DHT_DATA")
TIMEOUT="${DHT_TIMEOUT:-30}"
RUN="dht$$"
SRV_NS="$RUN-srv"
BR_NS="$RUN-br"
SRV_IP=10.231.0.1
SRV_PORT=4000
PEER_PORT=5000
NAMES=(alice bob carol dave erin frank)
JOINER=frank # the sixth host's user registers later, and joins the ring
NHOSTS=${#NAMES[@]}

WORK="$(mktemp -d "${TMPDIR:-/tmp}/dht-netns.XXXXXX")"
CREATED_NS=()
PIDS=()
declare -A IN OUT PID HOST_OF

say() { printf 'netns-test: %s\n' "$*"; }

cleanup() {
	local rc=$?
	set +e
	for fd in "${IN[@]}" "${OUT[@]}"; do
		exec {fd}>&-
	done
	if ((${#PIDS[@]} > 0)); then
		kill -TERM "${PIDS[@]}" 2>/dev/null
		# A guard, not synchronisation: whatever ignores SIGTERM for 5s is killed.
		(sleep 5 && kill -KILL "${PIDS[@]}" 2>/dev/null) &
		local guard=$!
		for p in "${PIDS[@]}"; do
			wait "$p" 2>/dev/null
		done
		kill "$guard" 2>/dev/null
		wait "$guard" 2>/dev/null
	fi
	for ns in "${CREATED_NS[@]}"; do
		ip netns del "$ns" 2>/dev/null || say "WARNING: could not delete namespace $ns"
	done
	if ((rc == 0)); then
		rm -rf "$WORK"
		say "PASS: 6 peers on 6 hosts, 241/241 records found four times (ring of 4, 3 after a leave, 4 after a join, 4 after a member killed with SIGKILL resumed), leave, join, kill -9 and resume, teardown, deregister"
	else
		say "FAIL (exit $rc); logs kept in $WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap '' PIPE # a peer that died is reported by send, not by a silent SIGPIPE

fail() {
	say "FAILURE: $*" >&2
	for f in "$WORK"/*.out "$WORK"/*.err; do
		[ -s "$f" ] || continue
		echo "--- last lines of $f" >&2
		tail -n 5 "$f" >&2
	done
	exit 1
}

cannot() {
	if [ "${CI:-}" = true ]; then
		fail "cannot run the multi-host test: $* (CI=true: this is a failure, not a skip)"
	fi
	say "WARNING: SKIPPED, the multi-host test did not run: $*" >&2
	trap - EXIT
	rm -rf "$WORK"
	exit 0
}

# --- tools and hosts ---------------------------------------------------------

if ! command -v ip >/dev/null 2>&1; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		say "installing iproute2"
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null
	fi
	command -v ip >/dev/null 2>&1 || cannot "the ip command (iproute2) is missing and could not be installed"
fi
[ -r "$DATA" ] || fail "no dataset at $DATA (set DHT_DATA)"

add_ns() {
	ip netns add "$1" 2>"$WORK/netns.err" || cannot "ip netns add $1 failed: $(cat "$WORK/netns.err") (root needed)"
	CREATED_NS+=("$1")
	ip -n "$1" link set lo up
}

add_ns "$BR_NS"
ip -n "$BR_NS" link add br0 type bridge
ip -n "$BR_NS" link set br0 up

# host NS IP: a namespace with eth0 at IP/24, plugged into the bridge.
add_host() {
	local ns=$1 ip=$2 port=$3
	add_ns "$ns"
	ip -n "$BR_NS" link add "$port" type veth peer name eth0 netns "$ns"
	ip -n "$BR_NS" link set "$port" master br0 up
	ip -n "$ns" addr add "$ip/24" dev eth0
	ip -n "$ns" link set eth0 up
}

add_host "$SRV_NS" "$SRV_IP" p0
for i in $(seq 1 "$NHOSTS"); do
	add_host "$RUN-h$i" "10.231.0.$((10 + i))" "p$i"
done
say "hosts: server $SRV_IP ($SRV_NS), peers 10.231.0.11-1$NHOSTS ($RUN-h1..h$NHOSTS), bridge in $BR_NS"

if [ -n "${DHT_BIN:-}" ]; then
	BIN="$DHT_BIN"
else
	BIN="$WORK/dht"
	go build -o "$BIN" ./cmd/dht
fi

# --- processes -----------------------------------------------------------------

# No need to wait for the server to bind: a peer retransmits its request
# until the server answers (for up to 10s).
ip netns exec "$SRV_NS" "$BIN" server --db "$WORK/server.db" --addr "$SRV_IP" "$SRV_PORT" \
	</dev/null >"$WORK/server.out" 2>"$WORK/server.err" &
SRV_PID=$!
PIDS+=("$SRV_PID")

# One peer per host: stdin and stdout are FIFOs held open by this script.
for i in $(seq 1 "$NHOSTS"); do
	name=${NAMES[$((i - 1))]}
	mkfifo "$WORK/$name.in" "$WORK/$name.pipe"
	ip netns exec "$RUN-h$i" "$BIN" peer "${DATA_FLAG[@]}" --db "$WORK/$name.db" "$SRV_IP" "$SRV_PORT" \
		<"$WORK/$name.in" >"$WORK/$name.pipe" 2>"$WORK/$name.err" &
	PID[$name]=$!
	PIDS+=("$!")
	exec {fd}>"$WORK/$name.in"
	IN[$name]=$fd
	exec {fd}<"$WORK/$name.pipe"
	OUT[$name]=$fd
	HOST_OF[$name]="10.231.0.$((10 + i))"
done

# send NAME LINE: type LINE at NAME's peer.
send() {
	local name=$1
	shift
	printf '%s\n' "$*" >&"${IN[$name]}" 2>/dev/null || fail "$name: cannot type '$*': its peer is gone"
	printf '> %s\n' "$*" >>"$WORK/$name.out"
}

# next NAME: read NAME's next stdout line into LINE, within TIMEOUT.
next() {
	local name=$1
	if ! IFS= read -r -t "$TIMEOUT" -u "${OUT[$name]}" LINE; then
		fail "$name: no output line within ${TIMEOUT}s"
	fi
	printf '%s\n' "$LINE" >>"$WORK/$name.out"
}

# expect NAME PREFIX: the next line of NAME starts with PREFIX.
expect() {
	next "$1"
	case "$LINE" in
	"$2"*) ;;
	*) fail "$1: got '$LINE', want a line starting '$2'" ;;
	esac
}

# do_cmd NAME LINE PREFIX: type LINE and expect PREFIX.
do_cmd() {
	send "$1" "$2"
	expect "$1" "$3"
}

# --- the scenario ------------------------------------------------------------------

for name in "${NAMES[@]}"; do
	[ "$name" = "$JOINER" ] && continue
	do_cmd "$name" "register $name ${HOST_OF[$name]} $PEER_PORT" "register SUCCESS"
done
say "5 users registered, each from its own host"

do_cmd alice "setup-dht 4 alice" "setup-dht SUCCESS: ring of 4: alice "
read -r -a RING <<<"${LINE##*: }"
expect alice "dht-complete SUCCESS"
say "ring of 4: ${RING[*]}"

FREE=""
for name in "${NAMES[@]}"; do
	[ "$name" = "$JOINER" ] && continue
	case " ${RING[*]} " in *" $name "*) ;; *) FREE=$name ;; esac
done
[ -n "$FREE" ] || fail "no Free user after setup-dht 4"

# Long Name and its hash position (sum of bytes mod 353) for every record,
# with a CSV reader that honours quotes.
awk '
BEGIN { for (i = 1; i < 256; i++) ord[sprintf("%c", i)] = i }
NR == 1 { next }
{
	sub(/\r$/, "")
	f = 0; field = ""; q = 0; n = length($0)
	for (i = 1; i <= n; i++) {
		c = substr($0, i, 1)
		if (q) {
			if (c == "\"") { if (substr($0, i + 1, 1) == "\"") { field = field c; i++ } else q = 0 }
			else field = field c
		} else if (c == "\"") q = 1
		else if (c == ",") { f++; if (f == 4) break; field = "" }
		else field = field c
	}
	if (f < 3) next
	s = 0
	for (i = 1; i <= length(field); i++) s += ord[substr(field, i, 1)]
	printf "%d\t%s\n", s % 353, field
}' "$DATA" >"$WORK/keys.tsv"
NREC=$(wc -l <"$WORK/keys.tsv")
[ "$NREC" = 241 ] || fail "read $NREC records from $DATA, want 241"

# query_all USER RINGSIZE: every record, each from the node the hash names.
query_all() {
	local user=$1 n=$2 ok=0 pos long id
	while IFS=$'\t' read -r pos long; do
		send "$user" "query-dht $user $long"
		expect "$user" "query-dht SUCCESS: found at node "
		id=${LINE##*(id }
		id=${id%%)*}
		[ "$id" = $((pos % n)) ] || fail "'$long' answered by id $id, the hash names id $((pos % n)) of $n"
		local rec=()
		for _ in 1 2 3 4 5 6 7 8 9; do
			next "$user"
			rec+=("$LINE")
		done
		[ "${rec[3]}" = "Long Name: $long" ] || fail "asked for '$long', got '${rec[3]}'"
		ok=$((ok + 1))
	done <"$WORK/keys.tsv"
	SUCCESSES=$ok
}

query_all "$FREE" 4
say "$FREE (Free, on ${HOST_OF[$FREE]}): $SUCCESSES/241 query-dht SUCCESS over the ring of 4"
[ "$SUCCESSES" = 241 ] || fail "$SUCCESSES of 241 queries succeeded"
do_cmd "$FREE" "query-dht $FREE Kingdom of Atlantis" 'query-dht FAILURE: "Kingdom of Atlantis" not found'

LEAVER=${RING[2]}
do_cmd "$LEAVER" "leave-dht $LEAVER" "leave-dht SUCCESS"
expect "$LEAVER" "dht-rebuilt SUCCESS: new leader ${RING[3]}"
LEADER=${RING[3]}
say "$LEAVER left; ${RING[3]} leads the ring of 3"
query_all "$FREE" 3
say "$FREE: $SUCCESSES/241 query-dht SUCCESS over the ring of 3"
[ "$SUCCESSES" = 241 ] || fail "$SUCCESSES of 241 queries succeeded after leave"

# The sixth host's user registers and joins: the leader takes it in as id 3,
# between the last node and itself, and stays the leader.
do_cmd "$JOINER" "register $JOINER ${HOST_OF[$JOINER]} $PEER_PORT" "register SUCCESS"
do_cmd "$JOINER" "join-dht $JOINER" "join-dht SUCCESS"
expect "$JOINER" "dht-rebuilt SUCCESS: joined as id 3 of a ring of 4, led by $LEADER"
say "$JOINER (on ${HOST_OF[$JOINER]}) joined; $LEADER leads the ring of 4"
query_all "$FREE" 4
say "$FREE: $SUCCESSES/241 query-dht SUCCESS over the ring of 4 with $JOINER"
[ "$SUCCESSES" = 241 ] || fail "$SUCCESSES of 241 queries succeeded after join"
# Canada: slot 215, id 215 mod 4 = 3, the joiner's.
do_cmd "$FREE" "query-dht $FREE Canada" "query-dht SUCCESS: found at node $JOINER (id 3)"
for _ in 1 2 3 4 5 6 7 8 9; do next "$FREE"; done

# A member killed with kill -9 and started again on its host with its file
# (--db): it resumes its registration and its place in the ring, table
# included, and the ring answers all 241 again. The new process reads and
# writes the same FIFOs, which this script still holds open.
VICTIM=${RING[1]}
[ "$VICTIM" != "$LEADER" ] && [ "$VICTIM" != "$FREE" ] || fail "no member to kill: ring ${RING[*]}, leader $LEADER"
# Between the two processes the stdout FIFO would have no writer, and a
# read of it would see end of file: this script holds a writer meanwhile.
exec {hold}>"$WORK/$VICTIM.pipe"
kill -KILL "${PID[$VICTIM]}"
st=0
wait "${PID[$VICTIM]}" 2>/dev/null || st=$? # 2>: no "Killed" notice
((st == 137)) || fail "$VICTIM's peer exited with status $st, not killed by SIGKILL"
KEEP=()
for p in "${PIDS[@]}"; do
	[ "$p" = "${PID[$VICTIM]}" ] || KEEP+=("$p")
done
PIDS=("${KEEP[@]}")
say "$VICTIM's peer killed with SIGKILL"
VHOST=
for i in $(seq 1 "$NHOSTS"); do
	[ "${NAMES[$((i - 1))]}" = "$VICTIM" ] && VHOST="$RUN-h$i"
done
ip netns exec "$VHOST" "$BIN" peer "${DATA_FLAG[@]}" --db "$WORK/$VICTIM.db" "$SRV_IP" "$SRV_PORT" \
	<"$WORK/$VICTIM.in" >"$WORK/$VICTIM.pipe" 2>>"$WORK/$VICTIM.err" &
PID[$VICTIM]=$!
PIDS+=("$!")
expect "$VICTIM" "resume SUCCESS: $VICTIM ${HOST_OF[$VICTIM]}:$PEER_PORT "
case "$LINE" in
*"its table taken back"*) ;;
*) fail "$VICTIM resumed without its place in the ring: '$LINE'" ;;
esac
exec {hold}>&-
say "$VICTIM restarted on its file: ${LINE#resume SUCCESS: }"
query_all "$FREE" 4
say "$FREE: $SUCCESSES/241 query-dht SUCCESS over the ring of 4 after $VICTIM resumed"
[ "$SUCCESSES" = 241 ] || fail "$SUCCESSES of 241 queries succeeded after $VICTIM resumed"

do_cmd "$LEADER" "teardown-dht $LEADER" "teardown-dht SUCCESS"
expect "$LEADER" "teardown-complete SUCCESS"
say "$LEADER tore the DHT down"

for name in "${NAMES[@]}"; do
	do_cmd "$name" "deregister $name" "deregister SUCCESS"
done
for name in "${NAMES[@]}"; do
	# deregister ends the peer: its stdout reaches end of file.
	st=0
	IFS= read -r -t "$TIMEOUT" -u "${OUT[$name]}" LINE || st=$?
	case $st in
	0) fail "$name printed '$LINE' after deregister" ;;
	1) ;;
	*) fail "$name's peer did not exit within ${TIMEOUT}s of deregister" ;;
	esac
	wait "${PID[$name]}" || fail "$name's peer exited with status $? after deregister"
done
say "6 users deregistered, every peer process exited with status 0"

# Every host's traffic crossed the bridge (the only way between namespaces).
for port in p0 $(seq -f 'p%g' 1 "$NHOSTS"); do
	pk=$(ip netns exec "$BR_NS" cat "/sys/class/net/$port/statistics/rx_packets")
	((pk > 0)) || fail "bridge port $port carried no packets"
	BRIDGED="${BRIDGED:-}$port:$pk "
done
say "packets from each host into the bridge: $BRIDGED"

kill -TERM "$SRV_PID"
wait "$SRV_PID" || fail "the server exited with status $? on SIGTERM"
say "the server stopped on SIGTERM"
