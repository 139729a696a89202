package bench

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"
)

func TestSpliceSectionReplacesOnlyTheGeneratedPart(t *testing.T) {
	doc := "# Benchmarks\n\nintro\n\n" + BeginMarker + "\nold figures\n" + EndMarker + "\n\n## Login\n\nhand-written\n"
	got := spliceSection(doc, BeginMarker+"\nnew figures\n"+EndMarker+"\n")
	want := "# Benchmarks\n\nintro\n\n" + BeginMarker + "\nnew figures\n" + EndMarker + "\n\n## Login\n\nhand-written\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	// No section yet: it goes before the first hand-written section.
	got = spliceSection("# Benchmarks\n\nintro\n\n## Login\n\nhand-written\n", BeginMarker+"\nnew\n"+EndMarker+"\n")
	if !strings.HasPrefix(got, "# Benchmarks\n\nintro\n\n"+BeginMarker) || !strings.HasSuffix(got, EndMarker+"\n\n## Login\n\nhand-written\n") {
		t.Errorf("inserted at the wrong place:\n%s", got)
	}
}

func TestNumAndStats(t *testing.T) {
	for _, c := range []struct {
		v    float64
		want string
	}{{0, "0"}, {0.0421, "0.0421"}, {1.234, "1.23"}, {12.34, "12.3"}, {123.4, "123"}, {12345.6, "12,346"}, {1234567, "1,234,567"}} {
		if got := num(c.v); got != c.want {
			t.Errorf("num(%v) = %q, want %q", c.v, got, c.want)
		}
	}
	if lo, med, hi := stats([]float64{3, 1, 2}); lo != 1 || med != 2 || hi != 3 {
		t.Errorf("stats odd: %v %v %v", lo, med, hi)
	}
	if _, med, _ := stats([]float64{4, 1, 2, 3}); med != 2.5 {
		t.Errorf("stats even median: %v", med)
	}
}

func TestReportMarkdownAndSVG(t *testing.T) {
	rep := &Report{Runs: 3, Started: time.Date(2026, 11, 23, 18, 0, 0, 0, time.UTC), Machine: Machine{CPU: "Test <CPU> & co", Cores: 2}}
	rep.Figures = []Figure{
		{Step: "upload", Name: "ratio postbox/direct", Unit: "×", Values: []float64{0.8, 1.1, 0.95}, Goal: "≥ 0.9", Met: "yes"},
		{Step: "mixed", Name: "errors", Unit: "count", Values: []float64{0}, Goal: "0", Met: "yes"},
	}
	rep.Uploads = []UploadPoint{
		{Workload: "30 × 10 MiB", Chunk: 5 * mib, Streams: 8, Contender: "postbox", MiBPerSec: []float64{100, 120, 110}},
		{Workload: "30 × 10 MiB", Chunk: 5 * mib, Streams: 8, Contender: "direct", MiBPerSec: []float64{130, 125, 140}},
		{Workload: "30 × 10 MiB", Chunk: 5 * mib, Streams: 8, Contender: "peer", MiBPerSec: []float64{40, 45, 50}},
	}
	md := rep.Markdown("bench/upload.svg")
	for _, want := range []string{
		"| upload | ratio postbox/direct | 0.8 | **0.95** | 1.10 | × | ≥ 0.9 | yes |",
		"| mixed | errors | 0 | **0** | 0 | count | 0 | yes | (1 value) |",
		"| upload: ratio postbox/direct | 0.95 × | ≥ 0.9 | yes |",
		"](bench/upload.svg)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	svg := rep.SVG()
	d := xml.NewDecoder(strings.NewReader(svg))
	bars := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the SVG is not well-formed XML: %v\n%s", err, svg)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			for _, a := range se.Attr {
				if a.Name.Local == "height" && a.Value != "12" && a.Value != "100%" {
					bars++
				}
			}
		}
	}
	if bars != 3 {
		t.Errorf("%d bars, want 3 (one per contender)", bars)
	}
	if !strings.Contains(svg, "Test &lt;CPU&gt; &amp; co") {
		t.Errorf("the CPU name is not escaped")
	}
}
