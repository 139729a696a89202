// Package letter lays out a one-page A4 letter for a DIN 5008 (form B)
// window envelope with the PDF core fonts. It knows nothing about what a
// letter says: the sender's packages supply the wording.
package letter

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	_ "time/tzdata" // Europe/Berlin for dates on letters, also where the OS has no zoneinfo

	"github.com/go-pdf/fpdf"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/unicode/norm"
)

// Berlin is the time zone of every date a person in Germany reads.
var Berlin = func() *time.Location {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		return time.UTC
	}
	return loc
}()

// Date formats t as a German reader expects it, e.g. 21.01.2027.
func Date(t time.Time) string { return t.In(Berlin).Format("02.01.2006") }

// Field is one label/value pair of the information block.
type Field struct{ Label, Value string }

// Paragraph is a body paragraph; Highlight prints it bold and indented
// (for the one thing the reader must not miss, e.g. what to send).
type Paragraph struct {
	Text      string
	Highlight bool
}

// Code is the boxed secret the letter delivers: a small label, the code
// large in a monospace font, and a note below (usually the validity).
type Code struct{ Label, Value, Note string }

// Letter is everything printed. Empty optional parts are left out.
type Letter struct {
	Title         string // PDF metadata; must not carry personal data
	Sender        string // letterhead
	Tagline       string // optional grey line under the letterhead
	ReturnAddress string // one small line above the recipient in the window
	Recipient     []string
	Info          []Field // information block right of the address
	Subject       string
	Body          []Paragraph // before the code
	Code          *Code
	After         []Paragraph // after the code
	Closing       string      // e.g. "Mit freundlichen Grüßen\nIhre …"
}

// DIN 5008 form B positions in mm.
const (
	pageWidth   = 210.0
	left        = 25.0 // address field at 20 mm plus 5 mm inner margin
	right       = 20.0
	textWidth   = pageWidth - left - right
	infoLeft    = 125.0
	windowWidth = 105.0 - left // the address field ends 105 mm from the left
	// The Anschriftzone (62.7–90 mm) holds five baselines 4.8 mm apart
	// from 67 mm (the last at 86.2 mm).
	addressTop, addressPitch = 67.0, 4.8
	maxRecipientLines        = 5
	codeBoxHeight            = 27.0
	codeMaxFontSize          = 24.0
)

// ErrAddressTooLong means the recipient does not fit the envelope window,
// even wrapped; the letter would show a cut address.
var ErrAddressTooLong = errors.New("letter: recipient address does not fit the envelope window")

// Write renders l as a PDF to w: fold marks at 105 and 210 mm, hole mark at
// 148.5 mm, return address and recipient in the window field (45 mm from
// the top, 20 mm from the left), information block at 125 mm, subject at
// 96 mm. Text is Windows-1252 (covers German); letters outside it are
// printed without their accents. A recipient line wider than the window is
// wrapped; more lines than the window holds are refused with
// ErrAddressTooLong.
func Write(w io.Writer, l Letter) error {
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.SetMargins(left, 15, right)
	pdf.SetAutoPageBreak(true, 15)
	pdf.SetTitle(l.Title, false)
	pdf.SetCreator("postbox", false)
	pdf.SetCompression(true)
	pdf.SetCellMargin(0) // text starts exactly at the DIN positions
	pdf.AddPage()

	// The address first: refusing it must not depend on anything else.
	pdf.SetFont("Helvetica", "", 11)
	var address []string
	for _, line := range l.Recipient {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		for _, part := range pdf.SplitLines([]byte(cp1252(line)), windowWidth) {
			address = append(address, string(part))
		}
	}
	if len(address) > maxRecipientLines {
		return fmt.Errorf("%w: %d lines, the window holds %d", ErrAddressTooLong, len(address), maxRecipientLines)
	}

	// Letterhead.
	pdf.SetFont("Helvetica", "B", 16)
	pdf.Text(left, 22, cp1252(l.Sender))
	if l.Tagline != "" {
		pdf.SetFont("Helvetica", "", 9)
		pdf.SetTextColor(80, 80, 80)
		pdf.Text(left, 28, cp1252(l.Tagline))
		pdf.SetTextColor(0, 0, 0)
	}

	// Fold and hole marks at the left edge.
	pdf.SetLineWidth(0.2)
	pdf.Line(4, 105, 9, 105)
	pdf.Line(4, 148.5, 11, 148.5)
	pdf.Line(4, 210, 9, 210)

	// Zusatz- und Vermerkzone (45–62.7 mm): the return address, small, at
	// its bottom line, so it shows in the window above the recipient.
	pdf.SetFont("Helvetica", "U", 7)
	pdf.Text(left, 60.5, cp1252(l.ReturnAddress))
	// Anschriftzone (62.7–90 mm).
	pdf.SetFont("Helvetica", "", 11)
	for i, line := range address {
		pdf.Text(left, addressTop+addressPitch*float64(i), line)
	}

	// Information block (form B: from 50 mm, 125 mm from the left).
	y := 52.0
	for _, f := range l.Info {
		pdf.SetFont("Helvetica", "", 8)
		pdf.SetTextColor(80, 80, 80)
		pdf.Text(infoLeft, y, cp1252(f.Label))
		pdf.SetTextColor(0, 0, 0)
		pdf.SetFont("Helvetica", "B", 9)
		pdf.SetXY(infoLeft, y+0.8)
		pdf.MultiCell(pageWidth-right-infoLeft, 4, cp1252(f.Value), "", "L", false)
		y = pdf.GetY() + 3.2
	}

	// Subject (form B: 98.46 mm from the top, baseline).
	pdf.SetXY(left, 96)
	pdf.SetFont("Helvetica", "B", 11)
	pdf.MultiCell(textWidth, 5.5, cp1252(l.Subject), "", "L", false)
	pdf.Ln(5)

	para := func(p Paragraph) {
		indent, style := 0.0, ""
		if p.Highlight {
			indent, style = 5, "B"
		}
		pdf.SetFont("Helvetica", style, 10)
		pdf.SetX(left + indent)
		pdf.MultiCell(textWidth-indent, 5, cp1252(p.Text), "", "L", false)
		pdf.Ln(2.5)
	}
	for _, p := range l.Body {
		para(p)
	}

	if c := l.Code; c != nil {
		top := pdf.GetY() + 1
		pdf.SetFillColor(242, 242, 242)
		pdf.Rect(left, top, textWidth, codeBoxHeight, "F")
		pdf.SetFont("Helvetica", "", 9)
		pdf.Text(left+5, top+6, cp1252(c.Label))
		// As large as fits the box: a long code shrinks rather than spill.
		size := codeMaxFontSize
		pdf.SetFont("Courier", "B", size)
		if wd := pdf.GetStringWidth(cp1252(c.Value)); wd > textWidth-10 {
			size = size * (textWidth - 10) / wd
			pdf.SetFont("Courier", "B", size)
		}
		pdf.Text(left+5, top+16.5, cp1252(c.Value))
		pdf.SetFont("Helvetica", "", 9)
		pdf.Text(left+5, top+23, cp1252(c.Note))
		pdf.SetY(top + codeBoxHeight + 5)
	}

	for _, p := range l.After {
		para(p)
	}
	if l.Closing != "" {
		pdf.Ln(2)
		para(Paragraph{Text: l.Closing})
	}

	if err := pdf.Error(); err != nil {
		return fmt.Errorf("render letter: %w", err)
	}
	if err := pdf.Output(w); err != nil {
		return fmt.Errorf("write letter: %w", err)
	}
	return nil
}

// cp1252 turns UTF-8 into the Windows-1252 bytes the core fonts expect.
// Letters outside that code page lose their accents (Ł → L, ş → s) rather
// than becoming question marks, which keeps names and addresses readable.
func cp1252(s string) string {
	var b strings.Builder
	for _, r := range s {
		if c, ok := charmap.Windows1252.EncodeRune(r); ok {
			b.WriteByte(c)
			continue
		}
		replaced := false
		for _, d := range norm.NFD.String(string(r)) {
			if c, ok := charmap.Windows1252.EncodeRune(d); ok && d < 0x300 {
				b.WriteByte(c)
				replaced = true
			}
		}
		if !replaced {
			switch r { // no decomposition in Unicode
			case 'Ł':
				b.WriteByte('L')
			case 'ł':
				b.WriteByte('l')
			default:
				b.WriteByte('?')
			}
		}
	}
	return b.String()
}
