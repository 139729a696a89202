package mailbox

import (
	"archive/zip"
	"context"
	"fmt"
	"io"
	"strings"
	"text/template"
	"time"
	_ "time/tzdata" // German local time in exported messages on any host
	"unicode"
)

var berlin = func() *time.Location {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		return time.UTC
	}
	return loc
}()

var messageTxt = template.Must(template.New("message").Parse(`Betreff: {{.Subject}}
Thema: {{.Topic}}
Datum: {{.Date}}
Von: {{.From}}
An: {{.To}}
Art: {{.Kind}}
{{- if .Attachments}}
Anlagen: {{range $i, $a := .Attachments}}{{if $i}}, {{end}}{{$a}}{{end}}
{{- end}}

{{.Body}}
`))

const exportReadme = `Export Ihres Postfachs

Jeder Ordner enthält eine Unterhaltung. Jede Nachricht liegt als Textdatei
vor (Betreff, Datum, Absender und Text); ihre Anlagen liegen im Ordner
gleichen Namens mit der Endung "_anlagen".

Bitte bewahren Sie diese Datei sicher auf: sie enthält persönliche Daten.
`

// ExportWriter writes an export prepared by Export.
type ExportWriter func(ctx context.Context, w io.Writer) error

// Export prepares the owner's whole Postfach (inbox and archive) as a ZIP:
// access is checked and the export audited now, before any byte goes out;
// the returned writer then streams each message as a .txt file with
// headers and each attachment from the blob store, holding nothing in
// memory beyond one copy buffer.
func (s *Service) Export(ctx context.Context, a Actor) (ExportWriter, error) {
	v, err := a.viewer()
	if err != nil {
		return nil, err
	}
	if v.Side != SideOwner {
		return nil, ErrNotAllowed
	}
	k, err := s.Store.Kasse(ctx, a.TenantID)
	if err != nil {
		return nil, err
	}
	var threads []Thread
	f := Filter{Archive: ArchiveAll, Limit: 200}
	for {
		page, err := s.Store.Threads(ctx, v, f)
		if err != nil {
			return nil, err
		}
		threads = append(threads, page...)
		if len(page) < f.Limit {
			break
		}
		last := page[len(page)-1]
		f.Before = &Cursor{LastMessageAt: last.LastMessageAt, ID: last.ID}
	}
	if err := s.Store.InTx(ctx, func(tx Tx) error {
		_, err := tx.RecordEvent(ctx, a.event("mailbox.exported", "postfach", v.OwnerID, map[string]any{"threads": len(threads)}))
		return err
	}); err != nil {
		return nil, err
	}
	return func(ctx context.Context, w io.Writer) error { return s.writeExport(ctx, w, v, k.Name, threads) }, nil
}

func (s *Service) writeExport(ctx context.Context, w io.Writer, v Viewer, kasseName string, threads []Thread) error {
	zw := zip.NewWriter(w)
	if err := writeEntry(zw, "Postfach/LIESMICH.txt", time.Now(), strings.NewReader(exportReadme)); err != nil {
		return err
	}
	dirs := map[string]bool{}
	for _, th := range threads {
		dir := uniqueName(dirs, fmt.Sprintf("%s_%s", th.CreatedAt.In(berlin).Format("2006-01-02"), safeName(th.Subject, 60)))
		msgs, err := s.Store.ThreadMessages(ctx, v, th.ID)
		if err != nil {
			return err
		}
		for i, m := range msgs {
			base := fmt.Sprintf("Postfach/%s/%03d_%s", dir, i+1, m.CreatedAt.In(berlin).Format("2006-01-02_15-04"))
			if err := writeMessage(zw, base+".txt", kasseName, th, m); err != nil {
				return err
			}
			names := map[string]bool{}
			for _, att := range m.Attachments {
				rc, err := s.Blobs.Open(ctx, att.BlobKey)
				if err != nil {
					return fmt.Errorf("export attachment %s: %w", att.ID, err)
				}
				err = writeEntry(zw, base+"_anlagen/"+uniqueName(names, safeName(att.FileName, 120)), m.CreatedAt, rc)
				rc.Close()
				if err != nil {
					return err
				}
			}
		}
	}
	return zw.Close()
}

func writeMessage(zw *zip.Writer, name, kasseName string, th Thread, m Message) error {
	from, to := "Sie", kasseName
	if m.Direction == Outbound {
		from, to = kasseName, "Sie"
	}
	kind := "Nachricht"
	if m.Kind == KindDocument {
		kind = "Dokument"
	} else if m.Kind == KindReceipt {
		kind = "Eingangsbestätigung"
	}
	var atts []string
	for _, a := range m.Attachments {
		atts = append(atts, a.FileName)
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(messageTxt.Execute(pw, map[string]any{
			"Subject": th.Subject, "Topic": th.TeamName, "Date": m.CreatedAt.In(berlin).Format("02.01.2006 15:04"),
			"From": from, "To": to, "Kind": kind, "Attachments": atts, "Body": m.Body,
		}))
	}()
	defer pr.Close()
	return writeEntry(zw, name, m.CreatedAt, pr)
}

func writeEntry(zw *zip.Writer, name string, mod time.Time, r io.Reader) error {
	fw, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: mod})
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if _, err := io.Copy(fw, r); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// safeName makes a file or folder name from user text: letters, digits and
// a few separators survive, everything else becomes "_"; no dots at the
// start, so nothing is hidden or climbs out of the folder.
func safeName(s string, max int) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '.' || r == ' ':
			b.WriteRune(r)
		default:
			b.WriteRune('_')
		}
	}
	out := strings.Trim(strings.TrimSpace(b.String()), ".")
	if r := []rune(out); len(r) > max {
		out = string(r[:max])
	}
	if out == "" {
		out = "ohne_Namen"
	}
	return out
}

func uniqueName(seen map[string]bool, name string) string {
	base, ext := name, ""
	if j := strings.LastIndex(name, "."); j > 0 {
		base, ext = name[:j], name[j:]
	}
	cand := name
	for i := 2; seen[strings.ToLower(cand)]; i++ {
		cand = fmt.Sprintf("%s (%d)%s", base, i, ext)
	}
	seen[strings.ToLower(cand)] = true
	return cand
}
