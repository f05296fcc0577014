package app

import (
	"sync"
	"testing"

	"dht/dataset"
)

const realData = "../dataset/StatsCountry.csv"

var (
	loadOnce    sync.Once
	realRecords []dataset.Record
	realErr     error
)

// records is the real dataset, loaded once.
func records(t testing.TB) []dataset.Record {
	t.Helper()
	loadOnce.Do(func() { realRecords, realErr = dataset.Load(realData) })
	if realErr != nil {
		t.Fatalf("load dataset: %v", realErr)
	}
	return realRecords
}
