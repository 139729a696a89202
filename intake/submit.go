package intake

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"postbox/audit"
	"postbox/kasse"
	"postbox/notifier"
)

// SubmitRefusal says why the files of a draft cannot be submitted.
type SubmitRefusal string

const (
	SubmitNoFiles  SubmitRefusal = "no_files"
	SubmitNotReady SubmitRefusal = "not_ready" // uploading, being checked or quarantined
	SubmitTooMany  SubmitRefusal = "too_many"
	SubmitTooLarge SubmitRefusal = "too_large"
)

// SubmitError is a refused submission with a German message; nothing was
// changed.
type SubmitError struct {
	Reason SubmitRefusal
	Detail string
}

func (e *SubmitError) Error() string { return "submission refused: " + string(e.Reason) }

// defaultNotifyWindow is used when PINService.NotifyWindow is zero.
const defaultNotifyWindow = 15 * time.Minute

// Receipt is the answer to a submission: the Vorgang and the files with
// their checksums, as the receipt in the Postfach lists them.
type Receipt struct {
	Vorgang  audit.Vorgang
	Files    []SubmittedFile
	ThreadID string
	// Created is false when the draft had been submitted before (a double
	// click or a retry): the answer is the first submission's.
	Created bool
}

// Submit turns the person's draft and finished uploads into a Vorgang in
// ONE transaction: the Vorgang (idempotency key = draft id), the uploads
// marked final, a thread to the team of the Anliegen with the person's
// message and a receipt listing each file's name, size and SHA-256, the
// attachment rows (file ↔ Vorgang ↔ receipt), audit events, every PIN of
// the person used up, every PIN session of the person ended, and — for a
// person who wants online delivery and gave an e-mail address — a
// notification job. draftID "" means the open draft.
func (s *PINService) Submit(ctx context.Context, a Actor, draftID string) (Receipt, error) {
	if a.TenantID == "" || a.PersonID == "" {
		return Receipt{}, ErrDraftNotFound
	}
	var rec Receipt
	err := s.Store.InPINTx(ctx, func(tx PINTx) error {
		rec = Receipt{}
		k, err := tx.Kasse(ctx, a.TenantID)
		if err != nil {
			return err
		}
		person, err := tx.Person(ctx, a.TenantID, a.PersonID)
		if err != nil {
			return err
		}
		var d Draft
		if draftID != "" {
			d, err = tx.DraftByID(ctx, a.TenantID, a.PersonID, draftID, true)
		} else {
			d, err = tx.OpenDraft(ctx, a.TenantID, a.PersonID, true)
		}
		if err != nil {
			return err
		}
		if !d.SubmittedAt.IsZero() {
			rec, err = receiptOf(ctx, tx, a.TenantID, d.VorgangID)
			return err
		}
		if p := d.Problems(true); len(p) > 0 {
			return &InputError{Fields: p}
		}
		uploads, err := tx.PersonUploads(ctx, a.TenantID, a.PersonID)
		if err != nil {
			return err
		}
		if err := checkSubmittable(uploads, k.Settings); err != nil {
			return err
		}
		now := tx.Now()
		v, created, err := tx.CreateVorgang(ctx, audit.Vorgang{TenantID: a.TenantID, PersonID: a.PersonID, Type: d.CaseType, Title: d.Subject}, d.ID, a.PersonID)
		if err != nil {
			return err
		}
		if !created { // the key exists although the draft is open: answer as before
			rec, err = receiptOf(ctx, tx, a.TenantID, v.ID)
			return err
		}
		var ids []string
		for _, u := range uploads {
			if u.State == FileComplete {
				ids = append(ids, u.ID)
			}
		}
		files, err := tx.FinalizeUploads(ctx, a.TenantID, a.PersonID, ids)
		if errors.Is(err, ErrUploadNotReady) || errors.Is(err, ErrUploadNotFound) || errors.Is(err, ErrUploadAlreadyFinal) {
			// A file changed between the listing and now (deleted, expired,
			// busy): nothing is kept, the person can simply try again.
			return &SubmitError{Reason: SubmitNotReady, Detail: "Eine Ihrer Dateien wird gerade noch bearbeitet oder ist nicht mehr vorhanden. " +
				"Bitte laden Sie die Seite neu, prüfen Sie die Liste Ihrer Dateien und senden Sie dann erneut."}
		}
		if err != nil {
			return err
		}
		sort.SliceStable(files, func(i, j int) bool { return files[i].FileName < files[j].FileName })
		caseworker, err := issuerOfSession(ctx, tx, a)
		if err != nil {
			return err
		}
		threadID, sub, err := tx.PostReceipt(ctx, ReceiptPost{TenantID: a.TenantID, PersonID: a.PersonID, VorgangID: v.ID,
			Topic: string(d.CaseType), TeamName: d.CaseType.Label(), Subject: d.Subject, PersonMessage: personMessage(d),
			Caseworker: caseworker, ReceiptBody: receiptBody(k, d, v, files), Files: files})
		if err != nil {
			return err
		}
		var total int64
		for _, f := range sub {
			total += f.Size
		}
		if _, err := tx.RecordEvent(ctx, a.event("intake.submitted", "vorgang", v.ID, audit.OutcomeSuccess, map[string]any{
			"draft_id": d.ID, "case_type": d.CaseType, "files": len(sub), "bytes": total, "thread_id": threadID})); err != nil {
			return err
		}
		for i, f := range sub {
			if _, err := tx.RecordEvent(ctx, a.event("intake.file.submitted", "attachment", f.ID, audit.OutcomeSuccess, map[string]any{
				"vorgang_id": v.ID, "upload_id": files[i].UploadID, "size": f.Size, "sha256": f.SHA256, "content_type": f.ContentType})); err != nil {
				return err
			}
		}
		if _, err := tx.UsePINs(ctx, a.TenantID, a.PersonID, now); err != nil {
			return err
		}
		if err := tx.EndPINSessions(ctx, a.TenantID, a.PersonID, "", now, "submitted", v.ID); err != nil {
			return err
		}
		if err := tx.MarkDraftSubmitted(ctx, a.TenantID, d.ID, v.ID, now); err != nil {
			return err
		}
		if person.Delivery == kasse.DeliveryOnline && person.Email != "" {
			portal := k.PortalURL
			if portal == "" {
				portal = s.BaseURL
			}
			// Only the Kasse's name and the portal address: never what was
			// sent. Coalesced per person like every "new message" mail.
			if _, err := tx.EnqueueMail(ctx, notifier.Job{TenantID: a.TenantID, Recipient: person.Email, Template: notifier.TemplateNewMessage,
				Data:     map[string]string{notifier.DataKasseName: k.Name, notifier.DataPortalURL: portal},
				PersonID: person.ID, CoalesceKey: "person:" + a.TenantID + ":" + person.ID, CoalesceWindow: cmp.Or(s.NotifyWindow, defaultNotifyWindow)}); err != nil {
				return err
			}
		}
		// Answer from what was stored, exactly as a retry will be answered.
		rec, err = receiptOf(ctx, tx, a.TenantID, v.ID)
		rec.Created = true
		return err
	})
	return rec, err
}

// SubmittedReceipt answers a retried submission whose session the first
// submission already ended: the same receipt, for the holder of that
// session's cookie, for a short while after.
func (s *PINService) SubmittedReceipt(ctx context.Context, token string) (Receipt, error) {
	var rec Receipt
	err := s.Store.InPINTx(ctx, func(tx PINTx) error {
		sess, err := tx.PINSessionByHash(ctx, HashSessionToken(token))
		if err != nil {
			return err
		}
		if sess.EndReason != "submitted" || sess.VorgangID == "" || tx.Now().Sub(sess.EndedAt) > SessionIdle {
			return ErrPINSessionNotFound
		}
		rec, err = receiptOf(ctx, tx, sess.TenantID, sess.VorgangID)
		return err
	})
	return rec, err
}

// issuerOfSession is the caseworker who issued the PIN the person logged
// in with ("" for a batch PIN or an account login).
func issuerOfSession(ctx context.Context, tx PINTx, a Actor) (string, error) {
	if a.SessionID == "" || a.AccountID != "" {
		return "", nil
	}
	sess, err := tx.PINSessionByHash(ctx, a.SessionID)
	if errors.Is(err, ErrPINSessionNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	pins, err := tx.PINsOfPerson(ctx, a.TenantID, a.PersonID)
	if err != nil {
		return "", err
	}
	for _, p := range pins {
		if p.ID == sess.PINID {
			return p.IssuedBy, nil
		}
	}
	return "", nil
}

func receiptOf(ctx context.Context, tx PINTx, tenantID, vorgangID string) (Receipt, error) {
	v, err := tx.VorgangByID(ctx, tenantID, vorgangID)
	if err != nil {
		return Receipt{}, err
	}
	files, err := tx.VorgangFiles(ctx, tenantID, vorgangID)
	if err != nil {
		return Receipt{}, err
	}
	th, err := tx.ReceiptThreadOf(ctx, tenantID, vorgangID)
	if err != nil {
		return Receipt{}, err
	}
	return Receipt{Vorgang: v, Files: files, ThreadID: th}, nil
}

// checkSubmittable refuses a submission without files, with files that are
// not ready, or beyond the Kasse's limits, naming the file in German.
func checkSubmittable(uploads []DraftFile, set kasse.Settings) error {
	var (
		total int64
		n     int
	)
	// A copy that never got a byte next to a complete file of the same
	// name and size is the leftover of a creation whose answer was lost
	// (clients without Idempotency-Key): it is named as such, not dropped.
	complete := map[string]bool{}
	for _, u := range uploads {
		if u.State == FileComplete {
			complete[u.FileName+"\x00"+strconv.FormatInt(u.Size, 10)] = true
		}
	}
	for _, u := range uploads {
		name := u.FileName
		if name == "" {
			name = "ohne Namen"
		}
		switch u.State {
		case FileComplete:
			total += u.Size
			n++
		case FileInfected:
			// Deleted by the scan; the draft page shows it, it is not sent.
		case FileUploading:
			if u.Offset == 0 && complete[u.FileName+"\x00"+strconv.FormatInt(u.Size, 10)] {
				return &SubmitError{Reason: SubmitNotReady, Detail: fmt.Sprintf("Die Datei „%s“ steht zweimal in der Liste: "+
					"einmal vollständig hochgeladen und einmal „Unterbrochen bei 0 Bytes“. "+
					"Bitte entfernen Sie den unterbrochenen Eintrag und senden Sie dann ab.", name)}
			}
			pct := 0
			if u.Size > 0 {
				pct = int(u.Offset * 100 / u.Size)
			}
			return &SubmitError{Reason: SubmitNotReady, Detail: fmt.Sprintf("Die Datei „%s“ wird noch hochgeladen (%d %%). "+
				"Bitte warten Sie, bis alle Dateien vollständig hochgeladen sind, oder entfernen Sie die Datei.", name, pct)}
		case FileChecking:
			return &SubmitError{Reason: SubmitNotReady, Detail: fmt.Sprintf("Die Datei „%s“ wird noch auf Schadsoftware geprüft. "+
				"Bitte versuchen Sie es in einem Moment erneut.", name)}
		default:
			return &SubmitError{Reason: SubmitNotReady, Detail: fmt.Sprintf("Die Datei „%s“ ist noch nicht bereit. Bitte versuchen Sie es in einem Moment erneut.", name)}
		}
	}
	if n == 0 {
		return &SubmitError{Reason: SubmitNoFiles, Detail: "Bitte laden Sie mindestens ein Dokument hoch, bevor Sie Ihre Unterlagen absenden."}
	}
	if set.MaxFilesPerUpload > 0 && n > set.MaxFilesPerUpload {
		return &SubmitError{Reason: SubmitTooMany, Detail: fmt.Sprintf("Sie können höchstens %d Dateien auf einmal senden (jetzt %d). "+
			"Bitte entfernen Sie %d Datei(en).", set.MaxFilesPerUpload, n, n-set.MaxFilesPerUpload)}
	}
	if set.MaxSubmissionBytes > 0 && total > set.MaxSubmissionBytes {
		return &SubmitError{Reason: SubmitTooLarge, Detail: fmt.Sprintf("Ihre Dateien sind zusammen %s groß; erlaubt sind höchstens %s. "+
			"Bitte entfernen Sie Dateien oder senden Sie sie in zwei Schritten.", GermanSize(total), GermanSize(set.MaxSubmissionBytes))}
	}
	return nil
}

// personMessage is what the person wrote to the Kasse, with the phone
// number for questions.
func personMessage(d Draft) string {
	var b strings.Builder
	b.WriteString(d.Message)
	if d.Phone != "" {
		if b.Len() > 0 {
			b.WriteString("\n\n")
		}
		b.WriteString("Telefon für Rückfragen: " + d.Phone)
	}
	return b.String()
}

// receiptBody is the German receipt in the Postfach.
func receiptBody(k kasse.Kasse, d Draft, v audit.Vorgang, files []FinalFile) string {
	var b strings.Builder
	at := v.CreatedAt.In(berlin)
	fmt.Fprintf(&b, "Eingangsbestätigung\n\nVielen Dank. Ihre Unterlagen zu „%s“ (%s) sind am %s um %s Uhr bei der %s eingegangen.\n",
		d.Subject, d.CaseType.Label(), at.Format("02.01.2006"), at.Format("15:04"), k.Name)
	fmt.Fprintf(&b, "Vorgangsnummer: %s\nStatus: %s\n\nÜbermittelte Dateien:\n", v.ID, v.Status.Label())
	for i, f := range files {
		fmt.Fprintf(&b, "%d. %s – %s\n   SHA-256: %s\n", i+1, f.FileName, GermanSize(f.Size), f.SHA256)
	}
	b.WriteString("\nMit der Übermittlung hat Ihre Einmal-PIN ihre Gültigkeit verloren. Den Bearbeitungsstand sehen Sie unter „Meine Vorgänge“. " +
		"Bitte bewahren Sie die Originale Ihrer Unterlagen auf.")
	return b.String()
}

// GermanSize writes a byte count the way a German reader expects it:
// "1,5 MB (1.572.864 Bytes)".
func GermanSize(n int64) string {
	exact := groupThousands(n) + " Bytes"
	if n < 1000 {
		return exact
	}
	units := []string{"kB", "MB", "GB", "TB"}
	v := float64(n)
	u := -1
	for v >= 1000 && u < len(units)-1 {
		v /= 1000
		u++
	}
	s := strings.Replace(strconv.FormatFloat(v, 'f', 1, 64), ".", ",", 1)
	return s + " " + units[u] + " (" + exact + ")"
}

func groupThousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte('.')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
