#!/usr/bin/env bash
# The project's test command: vet (for this system and four others),
# staticcheck, every test under the race detector, a bounded run of every
# fuzz target, and the multi-host test in network namespaces (needs root;
# outside CI it is skipped with a warning).
set -euo pipefail
cd "$(dirname "$0")/.."
# Fuzzing runs a fixed number of inputs per target (a time budget ends with a
# spurious "context deadline exceeded" when it falls during minimisation).
FUZZSCALE="${FUZZSCALE:-1}"

go vet ./...
# staticcheck (pinned; fetched through the module proxy, go.mod untouched),
# configured by staticcheck.conf.
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
# The same vet checks, tests included, for 32-bit and for the other systems a
# user may build on (type-checked, not run: this machine runs none of them).
for target in linux/386 linux/arm64 windows/amd64 darwin/arm64; do
	echo "vet for $target"
	GOOS="${target%/*}" GOARCH="${target#*/}" go vet ./...
done
# A package of end-to-end tests takes minutes on a loaded machine: room
# beyond go test's default of 10 minutes a package.
go test -race -count=1 -timeout 20m ./...
# The page faults the heap's warm-up saves, counted without the race
# detector, whose shadow memory faults with the heap and swamps the count.
go test -count=1 -run '^TestWarmClasses$' ./cmd/dht

for target in "./wire FuzzDecode 300000" "./dataset FuzzParse 100000" "./app FuzzCommand 20000" \
	"./app FuzzServerSteps 50000" "./app FuzzPeerSteps 20000" "./store FuzzDamagedFile 5000"; do
	set -- $target
	n=$(($3 * FUZZSCALE))
	echo "fuzz $2 ($1): $n inputs"
	go test -run='^$' -fuzz="^$2\$" -fuzztime="${n}x" -fuzzminimizetime=100x "$1"
done

if [ -f scripts/netns-test.sh ]; then
	if [ "$(id -u)" = 0 ] || [ "${CI:-}" = true ]; then
		bash scripts/netns-test.sh
	else
		echo "WARNING: skipping scripts/netns-test.sh (multi-host test): it needs root to create network namespaces" >&2
	fi
fi
