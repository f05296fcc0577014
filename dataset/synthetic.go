package dataset

import (
	"math/rand/v2"
	"strconv"
	"strings"
)

// SyntheticSource is N made-up records shaped like StatsCountry.csv ones,
// each made when asked for, so that a dataset of any size costs no memory.
// The same index and seed always give the same record. Long Names are
// distinct (each carries its index), every field is well within MaxField,
// and a record's fields total under 600 bytes.
type SyntheticSource struct {
	N    int
	Seed uint64
}

// Len is N.
func (s SyntheticSource) Len() int { return s.N }

// Record makes record i.
func (s SyntheticSource) Record(i int) Record {
	rng := rand.New(rand.NewPCG(s.Seed, uint64(i)^0x9e3779b97f4a7c15))
	name := word(rng, 4, 12)
	short := name
	if rng.IntN(4) == 0 {
		short = name + " " + word(rng, 3, 8)
	}
	code := upper(rng, 3)
	alpha2 := upper(rng, 2)
	return Record{
		CountryCode: code,
		ShortName:   short,
		TableName:   short,
		LongName:    synthKinds[rng.IntN(len(synthKinds))] + " " + name + " " + strconv.Itoa(i),
		Alpha2:      alpha2,
		Currency:    name + " " + synthCurrencies[rng.IntN(len(synthCurrencies))],
		Region:      synthRegions[rng.IntN(len(synthRegions))],
		WB2:         alpha2,
		Census:      strconv.Itoa(1950 + rng.IntN(70)),
	}
}

var (
	synthKinds      = []string{"Republic of", "Kingdom of", "State of", "Federation of", "Principality of", "Commonwealth of"}
	synthCurrencies = []string{"dollar", "franc", "pound", "peso", "rupee", "dinar", "krona"}
	synthRegions    = []string{
		"East Asia & Pacific", "Europe & Central Asia", "Latin America & Caribbean",
		"Middle East & North Africa", "North America", "South Asia", "Sub-Saharan Africa",
	}
)

// word returns a capitalised pseudo-word of min to max letters.
func word(rng *rand.Rand, min, max int) string {
	var b strings.Builder
	n := min + rng.IntN(max-min+1)
	b.WriteByte(byte('A' + rng.IntN(26)))
	for range n - 1 {
		b.WriteByte(byte('a' + rng.IntN(26)))
	}
	return b.String()
}

func upper(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('A' + rng.IntN(26))
	}
	return string(b)
}
