package bench

import (
	"encoding/json"
	"strings"
	"testing"
)

// The typed-ahead phase measures a rate only: its JSON gives no latency
// and no ratio, rather than zeros that read as measured (a review:
// "p50_us": 0 beside the table that shows no latency for it).
func TestProcReportJSONLeavesOutWhatAheadDoesNotMeasure(t *testing.T) {
	r := ProcReport{Ahead: QueryReport{Queriers: 2, Queries: 200, Found: 200, PerSecond: 22000, MeanHops: 1}}
	b, err := json.Marshal(r.Ahead)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"p50_us"`, `"p99_us"`, `"max_us"`, `"floor_ratio"`} {
		if strings.Contains(string(b), k) {
			t.Errorf("query_typed_ahead has %s: %s", k, b)
		}
	}
}
