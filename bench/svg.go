package bench

import (
	"fmt"
	"html"
	"math"
	"os"
	"strings"
)

var contenderColors = []struct{ name, label, color string }{
	{"postbox", "postbox (tus)", "#1f5fa8"},
	{"direct", "direct PutObject", "#8a8f98"},
	{"peer", "peer @tus/server + s3-store", "#d9822b"},
}

// SVG draws upload throughput as grouped bars: one group per workload,
// stream count and chunk size, one bar per contender at its median with a
// whisker from min to max.
func (rep *Report) SVG() string {
	type group struct {
		labels [3]string // workload, streams, chunk size: one line each
		bars   map[string][]float64
	}
	var groups []*group
	index := map[string]*group{}
	top := 0.0
	for _, p := range rep.Uploads {
		k := fmt.Sprintf("%s|%d|%d", p.Workload, p.Streams, p.Chunk)
		g := index[k]
		if g == nil {
			streams := "1 stream"
			if p.Streams > 1 {
				streams = fmt.Sprintf("%d parallel", p.Streams)
			}
			g = &group{labels: [3]string{p.Workload, streams, chunkLabel(p.Chunk)}, bars: map[string][]float64{}}
			index[k] = g
			groups = append(groups, g)
		}
		g.bars[p.Contender] = p.MiBPerSec
		_, _, hi := stats(p.MiBPerSec)
		top = max(top, hi)
	}
	const (
		w, h                 = 1000, 480
		left, right, tp, bot = 70, 20, 60, 110
	)
	plotW, plotH := float64(w-left-right), float64(h-tp-bot)
	step := niceStep(top / 5)
	if step == 0 {
		step = 1
	}
	yMax := math.Ceil(top/step) * step
	if yMax == 0 {
		yMax = 1
	}
	y := func(v float64) float64 { return float64(tp) + plotH - v/yMax*plotH }
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	p(`<rect width="100%%" height="100%%" fill="#ffffff"/>` + "\n")
	title := "Upload throughput into MinIO (MiB/s, median; whisker min–max)"
	if rep.Quick {
		title += " — quick smoke run, not a measurement"
	}
	p(`<text x="%d" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", left, html.EscapeString(title))
	p(`<text x="%d" y="40" fill="#555">%s, %d cores, load average before %s, after %s, %s</text>`+"\n", left,
		html.EscapeString(rep.Machine.CPU), rep.Machine.Cores, html.EscapeString(loadString(rep.Machine.LoadBefore)),
		html.EscapeString(loadString(rep.LoadAfter)), rep.Started.Format("2006-01-02 15:04 UTC"))
	for v := 0.0; v <= yMax+step/2; v += step {
		p(`<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, w-right, y(v), y(v))
		p(`<text x="%d" y="%.1f" text-anchor="end" fill="#333">%s</text>`+"\n", left-6, y(v)+4, num(v))
	}
	p(`<text transform="translate(16,%d) rotate(-90)" text-anchor="middle" fill="#333">MiB/s</text>`+"\n", tp+int(plotH/2))
	if len(groups) > 0 {
		gw := plotW / float64(len(groups))
		bw := gw * 0.8 / float64(len(contenderColors))
		for gi, g := range groups {
			x0 := float64(left) + float64(gi)*gw + gw*0.1
			for ci, c := range contenderColors {
				vals := g.bars[c.name]
				if len(vals) == 0 {
					continue
				}
				lo, med, hi := stats(vals)
				x := x0 + float64(ci)*bw
				p(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %s MiB/s (min %s, max %s)</title></rect>`+"\n",
					x+1, y(med), bw-2, y(0)-y(med), c.color, html.EscapeString(c.label), num(med), num(lo), num(hi))
				cx := x + bw/2
				p(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#000"/>`+"\n", cx, cx, y(lo), y(hi))
				p(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#000"/><line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#000"/>`+"\n",
					cx-4, cx+4, y(lo), y(lo), cx-4, cx+4, y(hi), y(hi))
				p(`<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10" fill="#222">%s</text>`+"\n", cx, y(hi)-4, num(med))
			}
			cx := float64(left) + float64(gi)*gw + gw/2
			for li, l := range g.labels {
				fill := "#000"
				if li == 2 {
					fill = "#555"
				}
				p(`<text x="%.1f" y="%d" text-anchor="middle" fill="%s">%s</text>`+"\n", cx, h-bot+18+li*15, fill, html.EscapeString(l))
			}
		}
	}
	p(`<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#333"/>`+"\n", left, w-right, y(0), y(0))
	lx := left
	for _, c := range contenderColors {
		p(`<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n", lx, h-28, c.color, lx+16, h-18, html.EscapeString(c.label))
		lx += 16 + 8*len(c.label) + 24
	}
	p(`<text x="%d" y="%d" fill="#555">direct has no tus chunks: the same PutObject figure stands in each chunk group</text>`+"\n", left, h-4)
	p("</svg>\n")
	return b.String()
}

// WriteSVG writes the plot.
func (rep *Report) WriteSVG(path string) error { return os.WriteFile(path, []byte(rep.SVG()), 0o644) }

// niceStep rounds a raw grid step up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 0
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if raw <= m*p {
			return m * p
		}
	}
	return 10 * p
}
