#!/usr/bin/env bash
# The project's test command: vet, every test under the race detector, a
# bounded run of every fuzz target, and the multi-host test in network
# namespaces (needs root; outside CI it is skipped with a warning).
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME="${FUZZTIME:-10s}"

go vet ./...
go test -race -count=1 ./...

for target in "./wire FuzzDecode" "./dataset FuzzParse" "./app FuzzCommand" "./app FuzzServerSteps" "./app FuzzPeerSteps"; do
	set -- $target
	echo "fuzz $2 ($1) for $FUZZTIME"
	go test -run='^$' -fuzz="^$2\$" -fuzztime="$FUZZTIME" -fuzzminimizetime=100x "$1"
done

if [ -f scripts/netns-test.sh ]; then
	if [ "$(id -u)" = 0 ] || [ "${CI:-}" = true ]; then
		bash scripts/netns-test.sh
	else
		echo "WARNING: skipping scripts/netns-test.sh (multi-host test): it needs root to create network namespaces" >&2
	fi
fi
