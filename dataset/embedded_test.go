package dataset

import (
	"crypto/sha256"
	"encoding/hex"
	"reflect"
	"strings"
	"testing"
)

// statsCountrySHA256 is the digest of the 241-record StatsCountry.csv as the
// assignment distributes it. A copy with other line ends, a lost byte or a
// "fixed" CIV would load differently, so the binary must ship exactly this.
const statsCountrySHA256 = "8813fe5aae0deb0908603176552ed254fbec63f851aab98b000c51bb5b505303"

func TestEmbeddedIsTheDataset(t *testing.T) {
	sum := sha256.Sum256(embedded)
	if got := hex.EncodeToString(sum[:]); got != statsCountrySHA256 {
		t.Errorf("embedded StatsCountry.csv has SHA-256 %s, want %s", got, statsCountrySHA256)
	}
	recs, err := Embedded()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 241 {
		t.Fatalf("embedded dataset has %d records, want 241", len(recs))
	}
	var depth [TableSize]int
	for _, r := range recs {
		depth[r.Pos()]++
	}
	colliding := 0
	for _, d := range depth {
		if d > 1 {
			colliding++
		}
	}
	if colliding != 49 {
		t.Errorf("embedded dataset: %d slots hold more than one record, want 49", colliding)
	}
	civ := findRecord(t, recs, "CIV")
	if civ.ShortName != "Co\xabte d'Ivoire" || civ.TableName != "Co\xabte d'Ivoire" {
		t.Errorf("embedded CIV names %q, %q: want the lone 0xAB byte kept", civ.ShortName, civ.TableName)
	}
	// The file beside the source and the embedded bytes load the same way.
	fromFile, err := Load(realPath)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromFile, recs) {
		t.Error("Load of the repository's StatsCountry.csv differs from Embedded()")
	}
}

func TestLoadOrEmbedded(t *testing.T) {
	recs, name, err := LoadOrEmbedded("")
	if err != nil || len(recs) != 241 || name != EmbeddedName {
		t.Errorf(`LoadOrEmbedded("") = %d records, %q, %v; want 241, %q, nil`, len(recs), name, err, EmbeddedName)
	}
	recs, name, err = LoadOrEmbedded("testdata/valid.csv")
	if err != nil || len(recs) == 0 || name != "testdata/valid.csv" {
		t.Errorf("LoadOrEmbedded(testdata/valid.csv) = %d records, %q, %v", len(recs), name, err)
	}
	_, _, err = LoadOrEmbedded("testdata/no-such.csv")
	if err == nil || !strings.Contains(err.Error(), "testdata/no-such.csv") {
		t.Errorf("LoadOrEmbedded of a missing file: %v, want an error naming it", err)
	}
}

// The embedded bytes go through the same checks as a file: a broken copy is
// refused with the name of the embedded dataset.
func TestEmbeddedChecked(t *testing.T) {
	saved := embedded
	t.Cleanup(func() { embedded = saved })
	embedded = []byte(header + "A,B,C,,E,F,G,H,I\n")
	_, err := Embedded()
	if err == nil || !strings.Contains(err.Error(), EmbeddedName) || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("Embedded() of a copy with an empty Long Name: %v", err)
	}
}
