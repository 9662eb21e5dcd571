// Command chart draws the concurrency sweep of the load run (bench/run.sh)
// as an SVG: throughput and p99 latency against connections, one line per
// server (Keyplane, the gqlgen floor, the bare baseline and, when the run
// had it, PostGraphile 5). It reads the CSV run.sh writes and uses the rows
// whose phase is "sweep"; it needs nothing but the standard library.
//
//	chart -in bench/results/latest.csv -out bench/results/chart.svg [-subtitle TEXT]
package main

import (
	"cmp"
	"encoding/csv"
	"flag"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

// point is one wrk run of the sweep.
type point struct {
	conns    int
	rps, p99 float64
}

func main() {
	in := flag.String("in", "bench/results/latest.csv", "CSV written by run.sh")
	out := flag.String("out", "bench/results/chart.svg", "SVG to write")
	subtitle := flag.String("subtitle", "", "a line under the title, such as the machine")
	flag.Parse()
	if err := run(*in, *out, *subtitle); err != nil {
		fmt.Fprintf(os.Stderr, "chart: %v\n", err)
		os.Exit(1)
	}
}

func run(in, out, subtitle string) error {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	series, order, err := readSweep(f)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	if len(series) == 0 {
		return fmt.Errorf("%s: no sweep rows", in)
	}
	var b strings.Builder
	draw(&b, series, order, subtitle)
	return os.WriteFile(out, []byte(b.String()), 0o644)
}

// readSweep returns the sweep's points by server, and the servers in the
// order they first appear.
func readSweep(r io.Reader) (map[string][]point, []string, error) {
	rows, err := csv.NewReader(r).ReadAll()
	if err != nil {
		return nil, nil, err
	}
	if len(rows) == 0 {
		return nil, nil, fmt.Errorf("empty")
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	for _, name := range []string{"phase", "server", "connections", "rps", "p99_ms"} {
		if _, ok := col[name]; !ok {
			return nil, nil, fmt.Errorf("no %q column", name)
		}
	}
	series := map[string][]point{}
	var order []string
	for n, row := range rows[1:] {
		if len(row) != len(rows[0]) {
			return nil, nil, fmt.Errorf("line %d: %d fields, want %d", n+2, len(row), len(rows[0]))
		}
		if row[col["phase"]] != "sweep" {
			continue
		}
		var p point
		var e1, e2, e3 error
		p.conns, e1 = strconv.Atoi(row[col["connections"]])
		p.rps, e2 = strconv.ParseFloat(row[col["rps"]], 64)
		p.p99, e3 = strconv.ParseFloat(row[col["p99_ms"]], 64)
		if e1 != nil || e2 != nil || e3 != nil || p.conns < 1 {
			return nil, nil, fmt.Errorf("line %d: not a number", n+2)
		}
		server := row[col["server"]]
		if _, seen := series[server]; !seen {
			order = append(order, server)
		}
		series[server] = append(series[server], p)
	}
	for _, pts := range series {
		slices.SortFunc(pts, func(a, b point) int { return cmp.Compare(a.conns, b.conns) })
	}
	return series, order, nil
}

// Layout, in SVG user units.
const (
	width, height        = 960, 460
	panelW, panelH       = 360, 270
	panelTop             = 120
	marginLeft, panelGap = 90, 120
)

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd"}

func draw(b *strings.Builder, series map[string][]point, order []string, subtitle string) {
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	title := "Keyplane, gqlgen floor, bare baseline"
	if slices.Contains(order, "postgraphile") {
		title = "Keyplane, floor, baseline, PostGraphile 5"
	}
	fmt.Fprintf(b, `<text x="%d" y="28" font-size="17" font-weight="bold">%s: team.devices(first: 20), wrk on loopback</text>`+"\n", marginLeft, title)
	if subtitle != "" {
		fmt.Fprintf(b, `<text x="%d" y="48" fill="#555">%s</text>`+"\n", marginLeft, html.EscapeString(subtitle))
	}
	// Legend.
	for i, name := range order {
		x := marginLeft + i*240
		c := palette[i%len(palette)]
		fmt.Fprintf(b, `<line x1="%d" y1="72" x2="%d" y2="72" stroke="%s" stroke-width="2.5"/><circle cx="%d" cy="72" r="3.5" fill="%s"/>`, x, x+28, c, x+14, c)
		fmt.Fprintf(b, `<text x="%d" y="76">%s</text>`+"\n", x+36, html.EscapeString(display(name)))
	}
	var conns []int
	for _, pts := range series {
		for _, p := range pts {
			if !slices.Contains(conns, p.conns) {
				conns = append(conns, p.conns)
			}
		}
	}
	slices.Sort(conns)
	panel(b, marginLeft, "Throughput (requests/s)", conns, series, order, func(p point) float64 { return p.rps })
	panel(b, marginLeft+panelW+panelGap, "p99 latency (ms)", conns, series, order, func(p point) float64 { return p.p99 })
	b.WriteString("</svg>\n")
}

// display names a server of the CSV in the legend.
func display(server string) string {
	switch server {
	case "keyplane":
		return "Keyplane"
	case "floor":
		return "floor (minimal gqlgen)"
	case "baseline":
		return "baseline (net/http + pgx)"
	case "postgraphile":
		return "PostGraphile 5"
	}
	return server
}

// panel draws one chart: value(p) against connections on a log2 axis.
func panel(b *strings.Builder, left int, title string, conns []int, series map[string][]point, order []string, value func(point) float64) {
	top, bottom, right := float64(panelTop), float64(panelTop+panelH), float64(left+panelW)
	l := float64(left)
	var hi float64
	for _, pts := range series {
		for _, p := range pts {
			hi = max(hi, value(p))
		}
	}
	step, ymax := niceScale(hi)
	lo2, hi2 := math.Log2(float64(conns[0])), math.Log2(float64(conns[len(conns)-1]))
	x := func(c int) float64 {
		if hi2 == lo2 {
			return (l + right) / 2
		}
		return l + 20 + (math.Log2(float64(c))-lo2)/(hi2-lo2)*(panelW-40)
	}
	y := func(v float64) float64 { return bottom - v/ymax*panelH }

	fmt.Fprintf(b, `<text x="%.0f" y="%.0f" font-size="14" font-weight="bold">%s</text>`+"\n", l, top-10, html.EscapeString(title))
	for v := 0.0; v <= ymax+step/2; v += step {
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e5e5e5"/>`, l, y(v), right, y(v))
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end" fill="#333">%s</text>`+"\n", l-6, y(v)+4, label(v, step))
	}
	for _, c := range conns {
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#999"/>`, x(c), bottom, x(c), bottom+5)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#333">%d</text>`+"\n", x(c), bottom+19, c)
	}
	fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%d" height="%d" fill="none" stroke="#999"/>`+"\n", l, top, panelW, panelH)
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#333">connections (wrk -c, log scale)</text>`+"\n", (l+right)/2, bottom+40)
	for i, name := range order {
		c := palette[i%len(palette)]
		var path []string
		for _, p := range series[name] {
			path = append(path, fmt.Sprintf("%.1f,%.1f", x(p.conns), y(value(p))))
		}
		fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2.5"/>`+"\n", strings.Join(path, " "), c)
		for _, p := range series[name] {
			fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"><title>%s, %d connections: %s</title></circle>`+"\n",
				x(p.conns), y(value(p)), c, html.EscapeString(display(name)), p.conns, label(value(p), 0.01))
		}
	}
}

// niceScale returns a grid step of 1, 2 or 5 × 10^k and the top of the axis
// for values up to hi, with about five grid lines.
func niceScale(hi float64) (step, top float64) {
	if hi <= 0 || math.IsNaN(hi) || math.IsInf(hi, 0) {
		return 1, 5
	}
	raw := hi / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	switch f := raw / mag; {
	case f <= 1:
		step = mag
	case f <= 2:
		step = 2 * mag
	case f <= 5:
		step = 5 * mag
	default:
		step = 10 * mag
	}
	return step, math.Ceil(hi/step) * step
}

// label prints v with as many decimals as the step needs.
func label(v, step float64) string {
	decimals := 0
	if step < 1 {
		decimals = int(math.Ceil(-math.Log10(step)))
	}
	return strconv.FormatFloat(v, 'f', decimals, 64)
}
