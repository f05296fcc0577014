// Command dht is a distributed hash table on a ring overlay over UDP: an
// always-on registry server, peers that build a ring and answer queries, and
// tools to inspect their files.
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr))
}
