package dataset

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"sync"
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

// A Loader loads a dataset each time it is asked: the file at Path (read
// again every time, so that a changed file is seen), or the embedded
// dataset when Path is empty. A Path that is no regular file (a pipe, as
// the shell's <(…) makes, a FIFO, a device) is read until it loads once,
// and its records are kept: what was read from it cannot be read again. It parses only bytes it has not parsed
// before: a peer loads and checks its dataset before each ring it leads,
// and parsing is most of that (about 350 µs for StatsCountry.csv). The
// records it returns are shared between calls and must not be changed.
type Loader struct {
	Path string

	mu   sync.Mutex
	data []byte   // the bytes last parsed
	recs []Record // what they parsed to
	once bool     // recs came from a Path that is no regular file
}

// Load returns the dataset's records and a name for it fit for messages.
// Errors are those of LoadOrEmbedded.
func (l *Loader) Load() ([]Record, string, error) {
	name, data := EmbeddedName, embedded
	once := false
	if l.Path != "" {
		name = l.Path
		l.mu.Lock()
		kept, recs := l.once, l.recs
		l.mu.Unlock()
		if kept {
			return recs, name, nil
		}
		var err error
		if data, once, err = readData(l.Path); err != nil {
			return nil, name, fmt.Errorf("dataset: %w", err)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.recs != nil && bytes.Equal(data, l.data) {
		l.once = l.once || once
		return l.recs, name, nil
	}
	recs, err := parse(bytes.NewReader(data))
	if err != nil {
		return nil, name, fmt.Errorf("dataset: %s: %w", name, err)
	}
	l.data, l.recs, l.once = data, recs, once
	return recs, name, nil
}

// readData reads the file at path, and whether it is no regular file (it
// cannot be read again).
func readData(path string) (data []byte, once bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, false, err
	}
	if data, err = readAll(f); errors.Is(err, ErrTooLarge) {
		return nil, false, fmt.Errorf("%s: %w", path, err)
	} else if err != nil {
		return nil, false, err // a *PathError, as os.ReadFile's
	}
	return data, !fi.Mode().IsRegular(), nil
}
