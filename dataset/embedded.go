package dataset

import (
	"bytes"
	_ "embed"
	"fmt"
)

// EmbeddedName is how errors and messages name the dataset compiled into
// the binary.
const EmbeddedName = "the embedded StatsCountry.csv"

// embedded is StatsCountry.csv as it ships beside this file: World Bank
// country metadata (the World Bank's WDI "Country" table), licensed CC BY 4.0
// (see NOTICE.md beside it). Its bytes are kept exactly, the lone 0xAB byte
// in CIV's names included.
//
//go:embed StatsCountry.csv
var embedded []byte

// Embedded parses the dataset compiled into the binary. It goes through the
// same parser, and so the same checks, as Load does for a file.
func Embedded() ([]Record, error) {
	recs, err := parse(bytes.NewReader(embedded))
	if err != nil {
		return nil, fmt.Errorf("dataset: %s: %w", EmbeddedName, err)
	}
	return recs, nil
}

// LoadOrEmbedded reads the file at path, or the embedded dataset when path
// is empty. It returns the records and a name for them fit for messages.
func LoadOrEmbedded(path string) ([]Record, string, error) {
	if path == "" {
		recs, err := Embedded()
		return recs, EmbeddedName, err
	}
	recs, err := Load(path)
	return recs, path, err
}
