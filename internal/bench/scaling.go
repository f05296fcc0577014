package bench

import (
	"fmt"
	"io"
	"math"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"text/tabwriter"

	"dht/dataset"
)

// ScalingPoint is one run of the scaling sweep.
type ScalingPoint struct {
	Peers      int     `json:"peers"`
	Records    int     `json:"records"`
	SetupMS    float64 `json:"setup_ms"`
	RecordHops int     `json:"record_hops"`
	QueryP50US float64 `json:"query_p50_us"`
	MeanHops   float64 `json:"mean_hops"`
	PeakRSSMB  float64 `json:"peak_rss_mb"`
	PeakAnonMB float64 `json:"peak_anon_rss_mb"` // this point's runs only (VmHWM is the process's so far)
}

// Scaling measures how setup and a query grow with the ring size (the
// dataset, N = 2…64) and with the records (synthetic, N = 16), each point
// the median of runs runs.
func Scaling(o Options, runs int, sizes []int) (byN, byRecords []ScalingPoint, err error) {
	point := func(o Options) (ScalingPoint, error) {
		// What the points before left behind goes back to the system
		// first, so that this point's peak anonymous memory is its own.
		// (Not before every run: the heap growing again costs a setup
		// page faults, a few milliseconds at N = 64.)
		debug.FreeOSMemory()
		var reps []Report
		for i := range runs {
			if err := o.ctx().Err(); err != nil {
				return ScalingPoint{}, err
			}
			o.Seed += uint64(i)
			r, err := Run(o)
			if err != nil {
				return ScalingPoint{}, err
			}
			reps = append(reps, r)
		}
		r := Median(reps)
		return ScalingPoint{Peers: o.Peers, Records: r.Records, SetupMS: r.Setup.MS, RecordHops: r.Setup.RecordHops,
			QueryP50US: r.Single.P50US, MeanHops: r.Single.MeanHops, PeakRSSMB: r.PeakRSSMB, PeakAnonMB: r.PeakAnonMB}, nil
	}
	o.Queriers, o.SkipLeave = 1, true
	for _, n := range []int{2, 4, 8, 16, 32, 64} {
		o.Peers = n
		p, err := point(o)
		if err != nil {
			return nil, nil, err
		}
		byN = append(byN, p)
	}
	o.Peers = 16
	for _, k := range sizes {
		o.Data, o.DataName = dataset.SyntheticSource{N: k, Seed: o.Seed}, fmt.Sprintf("%d synthetic records", k)
		o.Queries = min(o.Queries, k)
		p, err := point(o)
		if err != nil {
			return nil, nil, err
		}
		byRecords = append(byRecords, p)
	}
	return byN, byRecords, nil
}

// PrintScaling prints the sweep as a table.
func PrintScaling(w io.Writer, byN, byRecords []ScalingPoint) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "peers\trecords\trecord hops\tsetup ms\tquery p50 µs\tmean hops\tpeak anon MB\t")
	for _, p := range slices.Concat(byN, byRecords) {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%.1f\t%.0f\t%.1f\t%.0f\t\n", p.Peers, p.Records, p.RecordHops, p.SetupMS, p.QueryP50US, p.MeanHops, p.PeakAnonMB)
	}
	tw.Flush()
}

// WriteScalingSVG draws three small charts: setup time and query latency
// against the ring size, and setup time against the records.
func WriteScalingSVG(path string, byN, byRecords []ScalingPoint, note string) error {
	var b strings.Builder
	const w, h, pw, ph = 1335, 360, 250, 220
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="20" y="24" font-size="15" font-weight="bold">dht bench: how cost grows</text>`+"\n")
	fmt.Fprintf(&b, `<text x="20" y="%d" fill="#555">%s</text>`+"\n", h-12, svgEscape(note))
	xs := func(ps []ScalingPoint, f func(ScalingPoint) float64) []float64 {
		v := make([]float64, len(ps))
		for i, p := range ps {
			v[i] = f(p)
		}
		return v
	}
	chart(&b, 50, 60, pw, ph, "setup-dht → dht-complete (ms)", "ring size N (241 records)",
		xs(byN, func(p ScalingPoint) float64 { return float64(p.Peers) }), xs(byN, func(p ScalingPoint) float64 { return p.SetupMS }), "%.0f")
	chart(&b, 375, 60, pw, ph, "query p50, 1 querier (µs)", "ring size N (241 records)",
		xs(byN, func(p ScalingPoint) float64 { return float64(p.Peers) }), xs(byN, func(p ScalingPoint) float64 { return p.QueryP50US }), "%.0f")
	if len(byRecords) > 0 {
		records := xs(byRecords, func(p ScalingPoint) float64 { return float64(p.Records) })
		chart(&b, 700, 60, pw, ph, "setup-dht → dht-complete (ms)", "records (synthetic), N = 16",
			records, xs(byRecords, func(p ScalingPoint) float64 { return p.SetupMS }), "%.0f")
		chart(&b, 1025, 60, pw, ph, "peak anonymous memory (MB)", "records (synthetic), N = 16",
			records, xs(byRecords, func(p ScalingPoint) float64 { return p.PeakAnonMB }), "%.0f")
	}
	b.WriteString("</svg>\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// chart draws one line chart with linear axes from 0, the points labelled
// with their values.
func chart(b *strings.Builder, x0, y0, w, h int, title, xlabel string, x, y []float64, format string) {
	xmax, ymax := niceMax(slices.Max(x)), niceMax(slices.Max(y))
	px := func(v float64) float64 { return float64(x0) + v/xmax*float64(w) }
	py := func(v float64) float64 { return float64(y0+h) - v/ymax*float64(h) }
	fmt.Fprintf(b, `<text x="%d" y="%d" font-weight="bold">%s</text>`+"\n", x0, y0-12, svgEscape(title))
	for i := 0; i <= 4; i++ {
		yv := ymax * float64(i) / 4
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", x0, py(yv), x0+w, py(yv))
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end" fill="#555">%s</text>`+"\n", x0-6, py(yv)+4, axisLabel(yv))
		xv := xmax * float64(i) / 4
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%s</text>`+"\n", px(xv), y0+h+16, axisLabel(xv))
	}
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>`+"\n", x0, y0+h, x0+w, y0+h)
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>`+"\n", x0, y0, x0, y0+h)
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", x0+w/2, y0+h+34, svgEscape(xlabel))
	var pts []string
	for i := range x {
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(x[i]), py(y[i])))
	}
	fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="#1f6feb" stroke-width="2"/>`+"\n", strings.Join(pts, " "))
	last := math.Inf(-1) // a value is labelled only where the last label leaves room
	for i := len(x) - 1; i >= 0; i-- {
		fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="#1f6feb"/>`+"\n", px(x[i]), py(y[i]))
		if last-px(x[i]) < 28 && !math.IsInf(last, -1) {
			continue
		}
		last = px(x[i])
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="11">%s</text>`+"\n", px(x[i]), py(y[i])-8, fmt.Sprintf(format, y[i]))
	}
}

// niceMax rounds v up to a round number a little above it.
func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 1.2, 1.6, 2, 2.4, 3, 4, 5, 6, 8, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func axisLabel(v float64) string {
	switch {
	case v >= 1000 && math.Mod(v, 1000) == 0:
		return fmt.Sprintf("%gk", v/1000)
	case v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func svgEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
