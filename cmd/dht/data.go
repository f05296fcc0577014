package main

import (
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
	}
}

// loadData is a peer's LoadData: the dataset (the file at path, or the
// embedded one when path is empty), read and checked again each time the
// peer leads a ring, and parsed again only when its bytes changed. The
// first parse is made at once, in the background, so that the first
// setup-dht does not wait for it.
func loadData(path string) func() (dataset.Source, error) {
	l := &dataset.Loader{Path: path}
	go l.Load() // an error is reported by the Load that needs the records
	return func() (dataset.Source, error) {
		recs, _, err := l.Load()
		if err != nil {
			return nil, err
		}
		return dataset.Records(recs), nil
	}
}
