package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"dht/dataset"
)

// dataFlag is --data of every command that spreads a dataset: empty means
// the dataset embedded in the binary.
func dataFlag(usage string) cli.Flag {
	return &cli.StringFlag{
		Name:        "data",
		Usage:       usage + ": a CSV file with StatsCountry.csv's nine columns",
		DefaultText: "the embedded StatsCountry.csv, 241 records",
		Action: func(_ *cli.Context, path string) error {
			if path == "" {
				// As --db "": most often an empty shell variable.
				return usagef("--data needs a file name (without --data the embedded StatsCountry.csv is used)")
			}
			return nil
		},
	}
}

// loadData is a peer's LoadData: the dataset (the file at path, or the
// embedded one when path is empty), read and checked again each time the
// peer leads a ring, and parsed again only when its bytes changed. A file
// is read and checked at once, so that a path mistyped or a file that does
// not load stops the peer at start rather than at its first setup-dht;
// the embedded dataset is parsed in the background, so that neither the
// start nor the first setup-dht waits for it. A file still not read after
// dataWaitNote (a FIFO nothing has opened to write, a pipe whose writer
// has not closed it) is said on notes, once: the peer waits for it.
func loadData(path string, notes io.Writer) (func() (dataset.Source, error), error) {
	l := &dataset.Loader{Path: path}
	if path == "" {
		go l.Load() // cannot fail: it is checked by the tests
		return loaderData(l), nil
	}
	note := time.AfterFunc(dataWaitNote, func() {
		fmt.Fprintf(notes, "dht: still reading --data %s: %s (Ctrl-C stops)\n", path, dataWaitReason(path))
	})
	_, _, err := l.Load()
	note.Stop()
	if err != nil {
		return nil, err
	}
	return loaderData(l), nil
}

// dataWaitReason is why reading the --data file at path may take long:
// a regular file is only large (a new user's review: a 64 MiB file, read
// and checked in 7s, was said to be a pipe or a FIFO), anything else may
// wait for its writer.
func dataWaitReason(path string) string {
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
		return fmt.Sprintf("a file of %.1f MiB, each of its records checked", float64(fi.Size())/(1<<20))
	}
	return "a pipe or a FIFO is read until every writer has closed it, and a FIFO first waits for one to open it"
}

// dataWaitNote is how long loadData waits for a --data file before it says
// it is waiting.
var dataWaitNote = 2 * time.Second

// loaderData is LoadData over l: what it loads each time it is asked.
func loaderData(l *dataset.Loader) func() (dataset.Source, error) {
	return func() (dataset.Source, error) {
		recs, _, err := l.Load()
		if err != nil {
			return nil, err
		}
		return dataset.Records(recs), nil
	}
}
