package mailbox

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"

	"postbox/audit"
	"postbox/auth"
	"postbox/kasse"
	"postbox/notifier"
)

// ErrNotAllowed is returned when the viewer may see the thread but their
// role may not do this to it (e.g. an insured person assigning a thread).
var ErrNotAllowed = errors.New("not allowed")

// ErrClosed is returned for a reply to a closed thread.
var ErrClosed = errors.New("thread is closed")

// ErrUploadNotReady is returned for an upload that is not complete and
// checked yet (still uploading, being scanned, infected or expired).
var ErrUploadNotReady = errors.New("upload not ready")

// ErrLegalHold is returned when retention meets a thread under legal hold.
var ErrLegalHold = errors.New("thread under legal hold")

// Actor is who acts in a request, with what the audit trail needs.
type Actor struct {
	auth.Principal
	RequestID  string
	ClientHash string
}

// Service is the Postfach.
type Service struct {
	Store  Store
	Blobs  Blobs
	Check  ContentCheck // default MagicCheck; the wiring passes intake.CheckContent
	Limits Limits

	// NotifyWindow: notifications to one person within this window become
	// one mail (default 15 minutes).
	NotifyWindow time.Duration
	// Notified is called after a commit that queued a notification, to wake
	// the local notifier worker (optional).
	Notified func()
	// UploadTTL: uploads not attached to a sent message are removed after
	// this (default 24 hours).
	UploadTTL time.Duration
	Now       func() time.Time // default time.Now
	Logger    *slog.Logger
}

func (s *Service) limits() Limits { return s.Limits.withDefaults() }

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now().UTC()
}

func (s *Service) log() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Service) check() ContentCheck {
	if s.Check != nil {
		return s.Check
	}
	return MagicCheck
}

func (s *Service) window() time.Duration {
	if s.NotifyWindow > 0 {
		return s.NotifyWindow
	}
	return 15 * time.Minute
}

func (s *Service) uploadTTL() time.Duration {
	if s.UploadTTL > 0 {
		return s.UploadTTL
	}
	return 24 * time.Hour
}

// event builds an audit event of the actor.
func (a Actor) event(typ, subjectType, subjectID string, details map[string]any) audit.Event {
	d := "{}"
	if len(details) > 0 {
		raw, _ := json.Marshal(details)
		d = string(raw)
	}
	actor := a.AccountID
	if actor == "" {
		actor = a.PersonID
	}
	return audit.Event{
		TenantID: a.TenantID, ActorID: actor, ActorRole: string(a.Role), Type: typ,
		SubjectType: subjectType, SubjectID: subjectID, ClientHash: a.ClientHash, RequestID: a.RequestID, Details: d,
	}
}

func (a Actor) viewer() (Viewer, error) {
	v := ViewerOf(a.Principal)
	if v.Side == SideNone {
		return v, ErrNotFound
	}
	return v, nil
}

// Topics lists the team inboxes of the actor's Kasse, for choosing the
// topic of a new thread.
func (s *Service) Topics(ctx context.Context, a Actor) ([]Team, error) {
	if _, err := a.viewer(); err != nil {
		return nil, err
	}
	return s.Store.Teams(ctx, a.TenantID)
}

// MyTeams lists the team inboxes a caseworker belongs to.
func (s *Service) MyTeams(ctx context.Context, a Actor) ([]Team, error) {
	v, err := a.viewer()
	if err != nil {
		return nil, err
	}
	if v.Side != SideTeam {
		return nil, ErrNotAllowed
	}
	return s.Store.TeamsOf(ctx, a.TenantID, a.AccountID)
}

// List returns the viewer's threads: the owner's Postfach, or the team
// inboxes a caseworker belongs to.
func (s *Service) List(ctx context.Context, a Actor, f Filter) ([]Thread, error) {
	v, err := a.viewer()
	if err != nil {
		return nil, err
	}
	if f.Limit <= 0 || f.Limit > 200 {
		f.Limit = 50
	}
	if f.Query != "" {
		if n := len([]rune(f.Query)); n > 100 {
			return nil, invalid("suche", "Der Suchbegriff ist zu lang (höchstens 100 Zeichen).")
		}
	}
	if f.State != "" && f.State != StateOpen && f.State != StateClosed {
		return nil, invalid("status", "Der Status muss „open“ oder „closed“ sein.")
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return nil, invalid("bis", "Das Ende des Zeitraums muss nach dem Anfang liegen.")
	}
	return s.Store.Threads(ctx, v, f)
}

// Open returns a thread with its messages, each marked whether the viewer
// had read it, and then marks them read. Caseworkers' views are audited.
func (s *Service) Open(ctx context.Context, a Actor, id string) (Thread, []Message, error) {
	v, err := a.viewer()
	if err != nil {
		return Thread{}, nil, err
	}
	th, err := s.Store.Thread(ctx, v, id)
	if err != nil {
		return th, nil, err
	}
	msgs, err := s.Store.ThreadMessages(ctx, v, id)
	if err != nil {
		return th, nil, err
	}
	err = s.Store.InTx(ctx, func(tx Tx) error {
		if _, err := tx.MarkThreadRead(ctx, v, id, true); err != nil {
			return err
		}
		if v.Side == SideTeam {
			_, err := tx.RecordEvent(ctx, a.event("mailbox.thread.viewed", "thread", id, nil))
			return err
		}
		return nil
	})
	return th, msgs, err
}

// MarkRead sets the viewer's read state of every message towards them in
// the thread (read=false: "als ungelesen markieren").
func (s *Service) MarkRead(ctx context.Context, a Actor, id string, read bool) error {
	v, err := a.viewer()
	if err != nil {
		return err
	}
	return s.Store.InTx(ctx, func(tx Tx) error {
		if _, err := tx.LockThread(ctx, v, id); err != nil {
			return err
		}
		_, err := tx.MarkThreadRead(ctx, v, id, read)
		return err
	})
}

// NewThread is the input for starting a thread.
type NewThread struct {
	Topic   string
	Subject string
	Body    string
	Uploads []string // ids of the actor's uploads to attach
	// Team side only: whose Postfach the thread goes to.
	OwnerKind OwnerKind
	OwnerID   string
}

// StartThread opens a thread with its first message. An insured person (or
// a provider user) writes to the team of the chosen topic; a caseworker
// writes to a person's Postfach from one of their teams.
func (s *Service) StartThread(ctx context.Context, a Actor, in NewThread) (Thread, Message, error) {
	v, err := a.viewer()
	if err != nil {
		return Thread{}, Message{}, err
	}
	l := s.limits()
	subject, err := l.cleanSubject(in.Subject)
	if err != nil {
		return Thread{}, Message{}, err
	}
	body, err := l.cleanBody(in.Body)
	if err != nil {
		return Thread{}, Message{}, err
	}
	if err := l.checkUploadCount(in.Uploads); err != nil {
		return Thread{}, Message{}, err
	}
	th := Thread{TenantID: a.TenantID, Subject: subject, State: StateOpen, Channel: ChannelPostfach}
	msg := Message{TenantID: a.TenantID, Kind: KindMessage, SenderAccountID: a.AccountID, Body: body}
	var target notifyTarget
	switch v.Side {
	case SideOwner:
		th.OwnerKind, th.OwnerID = v.OwnerKind, v.OwnerID
		msg.Direction = Inbound
	case SideTeam:
		if in.OwnerKind == "" {
			in.OwnerKind = OwnerPerson
		}
		if in.OwnerKind != OwnerPerson && in.OwnerKind != OwnerProvider {
			return Thread{}, Message{}, invalid("empfaenger", "Unbekannte Art von Empfänger.")
		}
		if in.OwnerID == "" {
			return Thread{}, Message{}, invalid("empfaenger", "Bitte wählen Sie einen Empfänger.")
		}
		th.OwnerKind, th.OwnerID = in.OwnerKind, in.OwnerID
		th.AssignedTo = a.AccountID
		msg.Direction = Outbound
		if target, err = s.target(ctx, a.TenantID, th); err != nil {
			return Thread{}, Message{}, err
		}
	}
	queued := false
	err = s.Store.InTx(ctx, func(tx Tx) error {
		var err error
		if th, msg, err = s.openThread(ctx, tx, a, v, in.Topic, th, msg, in.Uploads); err != nil {
			return err
		}
		if _, err := tx.RecordEvent(ctx, a.event("mailbox.thread.created", "thread", th.ID, map[string]any{"team": th.TeamID})); err != nil {
			return err
		}
		queued, err = s.notify(ctx, tx, target, th)
		return err
	})
	if err != nil {
		return Thread{}, Message{}, err
	}
	s.afterCommit(queued)
	return th, msg, nil
}

// Reply adds a message to a thread the actor can see.
func (s *Service) Reply(ctx context.Context, a Actor, threadID, body string, uploads []string) (Message, error) {
	v, err := a.viewer()
	if err != nil {
		return Message{}, err
	}
	l := s.limits()
	if body, err = l.cleanBody(body); err != nil {
		return Message{}, err
	}
	if err := l.checkUploadCount(uploads); err != nil {
		return Message{}, err
	}
	th, err := s.Store.Thread(ctx, v, threadID)
	if err != nil {
		return Message{}, err
	}
	var target notifyTarget
	if v.Side == SideTeam {
		if target, err = s.target(ctx, a.TenantID, th); err != nil {
			return Message{}, err
		}
	}
	var msg Message
	queued := false
	err = s.Store.InTx(ctx, func(tx Tx) error {
		th, err := tx.LockThread(ctx, v, threadID)
		if err != nil {
			return err
		}
		if th.State == StateClosed {
			return ErrClosed
		}
		msg = Message{TenantID: a.TenantID, ThreadID: th.ID, Kind: KindMessage, SenderAccountID: a.AccountID, Body: body, Direction: v.Toward().reverse()}
		if msg, err = s.addMessage(ctx, tx, a, msg, uploads); err != nil {
			return err
		}
		if v.Side == SideTeam && th.AssignedTo == "" {
			// Whoever answers first owns the thread.
			if err := tx.AssignThread(ctx, a.TenantID, th.ID, a.AccountID); err != nil {
				return err
			}
		}
		queued, err = s.notify(ctx, tx, target, th)
		return err
	})
	if err != nil {
		return Message{}, err
	}
	s.afterCommit(queued)
	return msg, nil
}

func (d Direction) reverse() Direction {
	if d == Inbound {
		return Outbound
	}
	return Inbound
}

// addMessage stores the message with the actor's uploads as attachments
// and its audit event.
// openThread files th with the team for topic and writes msg with its
// uploads as the thread's first message.
func (s *Service) openThread(ctx context.Context, tx Tx, a Actor, v Viewer, topic string, th Thread, msg Message, uploads []string) (Thread, Message, error) {
	team, err := s.teamFor(ctx, tx, v, topic)
	if err != nil {
		return th, msg, err
	}
	th.TeamID = team.ID
	if th, err = tx.CreateThread(ctx, th); err != nil {
		return th, msg, err
	}
	th.Topic, th.TeamName = team.Topic, team.Name
	msg.ThreadID = th.ID
	msg, err = s.addMessage(ctx, tx, a, msg, uploads)
	return th, msg, err
}

func (s *Service) addMessage(ctx context.Context, tx Tx, a Actor, msg Message, uploads []string) (Message, error) {
	seen := map[string]bool{}
	for _, id := range uploads {
		if seen[id] {
			return msg, invalid("anlagen", "Eine Anlage ist doppelt angegeben.")
		}
		seen[id] = true
		u, err := tx.TakeUpload(ctx, a.TenantID, a.AccountID, id)
		if errors.Is(err, ErrNotFound) && a.Role == auth.RoleInsured && a.PersonID != "" {
			// Not a Postfach upload: maybe a file of the person's resumable
			// (tus) uploads, with the intake path's type, size and scan checks.
			var ups []Upload
			if ups, err = tx.FinalizePersonUploads(ctx, a.TenantID, a.PersonID, []string{id}); err == nil {
				u = ups[0]
			}
		}
		if errors.Is(err, ErrNotFound) {
			return msg, invalid("anlagen", "Eine Anlage wurde nicht gefunden. Bitte laden Sie sie erneut hoch.")
		}
		if errors.Is(err, ErrUploadNotReady) {
			return msg, invalid("anlagen", "Eine Anlage ist noch nicht vollständig hochgeladen und geprüft. Bitte warten Sie einen Moment und senden Sie dann erneut.")
		}
		if err != nil {
			return msg, err
		}
		msg.Attachments = append(msg.Attachments, Attachment{
			BlobKey: u.BlobKey, FileName: u.FileName, ContentType: u.ContentType, Size: u.Size, SHA256: u.SHA256,
		})
	}
	msg, err := tx.AddMessage(ctx, msg)
	if err != nil {
		return msg, err
	}
	_, err = tx.RecordEvent(ctx, a.event("mailbox.message.sent", "message", msg.ID, map[string]any{
		"thread": msg.ThreadID, "kind": string(msg.Kind), "direction": string(msg.Direction), "attachments": len(msg.Attachments),
	}))
	return msg, err
}

func (l Limits) checkUploadCount(ids []string) error {
	if len(ids) > l.MaxAttachments {
		return invalid("anlagen", "Zu viele Anlagen (%d, höchstens %d je Nachricht).", len(ids), l.MaxAttachments)
	}
	return nil
}

// teamFor resolves the topic of a new thread: any team of the tenant for
// an owner, one of their own teams for a caseworker.
func (s *Service) teamFor(ctx context.Context, tx Tx, v Viewer, topic string) (Team, error) {
	if strings.TrimSpace(topic) == "" {
		return Team{}, invalid("thema", "Bitte wählen Sie ein Thema.")
	}
	team, err := tx.TeamByTopic(ctx, v.TenantID, topic)
	if errors.Is(err, ErrNotFound) {
		return team, invalid("thema", "Dieses Thema gibt es nicht. Bitte wählen Sie eines aus der Liste.")
	}
	if err != nil {
		return team, err
	}
	if v.Side == SideTeam {
		ok, err := tx.IsTeamMember(ctx, v.TenantID, team.ID, v.ReaderID)
		if err != nil {
			return team, err
		}
		if !ok {
			return team, invalid("thema", "Für dieses Thema sind Sie nicht zuständig.")
		}
	}
	return team, nil
}

// notifyTarget is the person a Kasse's message is announced to, loaded
// before the transaction.
type notifyTarget struct {
	kasse  kasse.Kasse
	person kasse.Person
	ok     bool
}

// target loads who would be notified of a message from the Kasse into th.
// An unknown person of the tenant answers ErrNotFound (a caseworker cannot
// write into another tenant's Postfach).
func (s *Service) target(ctx context.Context, tenantID string, th Thread) (notifyTarget, error) {
	if th.OwnerKind != OwnerPerson {
		ok, err := s.Store.ProviderOrgExists(ctx, tenantID, th.OwnerID)
		if err != nil {
			return notifyTarget{}, err
		}
		if !ok {
			return notifyTarget{}, ErrNotFound
		}
		// Provider organisations have no notification address yet.
		return notifyTarget{}, nil
	}
	p, err := s.Store.Person(ctx, tenantID, th.OwnerID)
	if errors.Is(err, kasse.ErrNotFound) {
		return notifyTarget{}, ErrNotFound
	}
	if err != nil {
		return notifyTarget{}, err
	}
	k, err := s.Store.Kasse(ctx, tenantID)
	if err != nil {
		return notifyTarget{}, err
	}
	return notifyTarget{kasse: k, person: p, ok: true}, nil
}

// notify queues the content-free "new message" mail in tx for a person who
// chose online delivery and has an address. It returns whether it queued.
func (s *Service) notify(ctx context.Context, tx Tx, t notifyTarget, th Thread) (bool, error) {
	if !t.ok || th.Channel == ChannelPaper || t.person.Delivery != kasse.DeliveryOnline || t.person.Email == "" {
		return false, nil
	}
	_, err := tx.EnqueueMail(ctx, notifier.Job{
		TenantID:  t.kasse.ID,
		Recipient: t.person.Email,
		Template:  notifier.TemplateNewMessage,
		Data: map[string]string{
			notifier.DataKasseName: t.kasse.Name,
			notifier.DataPortalURL: t.kasse.PortalURL,
			// The Postfach page; without a session it leads to the login.
			notifier.DataLoginURL: strings.TrimRight(t.kasse.PortalURL, "/") + "/postfach",
		},
		PersonID:       t.person.ID,
		CoalesceKey:    "person:" + t.kasse.ID + ":" + t.person.ID,
		CoalesceWindow: s.window(),
	})
	return err == nil, err
}

func (s *Service) afterCommit(queued bool) {
	if queued && s.Notified != nil {
		s.Notified()
	}
}

// Assign gives a thread to a member of its team ("" takes it back).
func (s *Service) Assign(ctx context.Context, a Actor, threadID, accountID string) error {
	v, err := a.viewer()
	if err != nil {
		return err
	}
	return s.Store.InTx(ctx, func(tx Tx) error {
		th, err := tx.LockThread(ctx, v, threadID)
		if err != nil {
			return err
		}
		if v.Side != SideTeam {
			return ErrNotAllowed
		}
		if accountID != "" {
			ok, err := tx.IsTeamMember(ctx, a.TenantID, th.TeamID, accountID)
			if err != nil {
				return err
			}
			if !ok {
				return invalid("bearbeiter", "Die Person gehört nicht zu dem Team dieses Postfachs.")
			}
		}
		if err := tx.AssignThread(ctx, a.TenantID, th.ID, accountID); err != nil {
			return err
		}
		_, err = tx.RecordEvent(ctx, a.event("mailbox.thread.assigned", "thread", th.ID, map[string]any{"assignee": accountID}))
		return err
	})
}

// SetState closes or reopens a thread (caseworkers).
func (s *Service) SetState(ctx context.Context, a Actor, threadID, state string) error {
	v, err := a.viewer()
	if err != nil {
		return err
	}
	if state != StateOpen && state != StateClosed {
		return invalid("status", "Der Status muss „open“ oder „closed“ sein.")
	}
	return s.Store.InTx(ctx, func(tx Tx) error {
		th, err := tx.LockThread(ctx, v, threadID)
		if err != nil {
			return err
		}
		if v.Side != SideTeam {
			return ErrNotAllowed
		}
		if th.State == state {
			return nil
		}
		if err := tx.SetThreadState(ctx, a.TenantID, th.ID, state); err != nil {
			return err
		}
		typ := "mailbox.thread.closed"
		if state == StateOpen {
			typ = "mailbox.thread.reopened"
		}
		_, err = tx.RecordEvent(ctx, a.event(typ, "thread", th.ID, nil))
		return err
	})
}

// Archive moves a thread into or out of the owner's archive.
func (s *Service) Archive(ctx context.Context, a Actor, threadID string, archived bool) error {
	v, err := a.viewer()
	if err != nil {
		return err
	}
	return s.Store.InTx(ctx, func(tx Tx) error {
		th, err := tx.LockThread(ctx, v, threadID)
		if err != nil {
			return err
		}
		if v.Side != SideOwner {
			return ErrNotAllowed
		}
		return tx.SetThreadArchived(ctx, a.TenantID, th.ID, archived)
	})
}

// SetLegalHold exempts a thread from retention, or ends that (team leads).
func (s *Service) SetLegalHold(ctx context.Context, a Actor, threadID string, hold bool) error {
	v, err := a.viewer()
	if err != nil {
		return err
	}
	return s.Store.InTx(ctx, func(tx Tx) error {
		th, err := tx.LockThread(ctx, v, threadID)
		if err != nil {
			return err
		}
		if v.Side != SideTeam || a.Role != auth.RoleTeamLead {
			return ErrNotAllowed
		}
		if err := tx.SetLegalHold(ctx, a.TenantID, th.ID, hold); err != nil {
			return err
		}
		_, err = tx.RecordEvent(ctx, a.event("mailbox.thread.legal_hold", "thread", th.ID, map[string]any{"hold": hold}))
		return err
	})
}

// OpenAttachment opens an attachment the actor can see, for streaming.
// Every download is audited. The caller closes the reader.
func (s *Service) OpenAttachment(ctx context.Context, a Actor, id string) (Attachment, io.ReadCloser, error) {
	v, err := a.viewer()
	if err != nil {
		return Attachment{}, nil, err
	}
	att, err := s.Store.Attachment(ctx, v, id)
	if err != nil {
		return att, nil, err
	}
	rc, err := s.Blobs.Open(ctx, att.BlobKey)
	if err != nil {
		return att, nil, fmt.Errorf("attachment %s: %w", att.ID, err)
	}
	if err := s.Store.InTx(ctx, func(tx Tx) error {
		_, err := tx.RecordEvent(ctx, a.event("mailbox.attachment.downloaded", "attachment", att.ID, map[string]any{"message": att.MessageID}))
		return err
	}); err != nil {
		rc.Close()
		return att, nil, err
	}
	return att, rc, nil
}

// limitedReader fails once more than n bytes were read.
type limitedReader struct {
	r        io.Reader
	n        int64
	read     int64
	exceeded bool
}

var errTooLarge = errors.New("file too large")

func (l *limitedReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.read += int64(n)
	if l.read > l.n {
		l.exceeded = true
		return n, errTooLarge
	}
	return n, err
}

// Upload streams one file into the blob store for a message that is about
// to be written: the type is taken from the content (not the name), the
// tenant's allowed types and size limit apply, and the SHA-256 is computed
// on the way. Nothing is held in memory beyond a small buffer.
func (s *Service) Upload(ctx context.Context, a Actor, fileName string, r io.Reader) (Upload, error) {
	if _, err := a.viewer(); err != nil {
		return Upload{}, err
	}
	k, err := s.Store.Kasse(ctx, a.TenantID)
	if err != nil {
		return Upload{}, err
	}
	br := bufio.NewReaderSize(r, SniffLen)
	head, err := br.Peek(SniffLen)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return Upload{}, fmt.Errorf("read upload: %w", err)
	}
	ctype, err := s.check()(head, fileName, k.Settings.AllowedFileTypes)
	if err != nil {
		s.auditRejected(ctx, a, "type")
		return Upload{}, fmt.Errorf("upload refused: %w", err)
	}
	u := Upload{
		ID: uuid.NewString(), TenantID: a.TenantID, UploaderID: a.AccountID,
		FileName: CleanFileName(fileName), ContentType: ctype,
	}
	u.BlobKey = "postfach/" + a.TenantID + "/" + u.ID
	h := sha256.New()
	lr := &limitedReader{r: br, n: k.Settings.MaxFileBytes}
	if err := s.Blobs.PutStream(ctx, u.BlobKey, io.TeeReader(lr, h)); err != nil {
		_ = s.Blobs.Delete(context.WithoutCancel(ctx), u.BlobKey)
		if lr.exceeded {
			s.auditRejected(ctx, a, "size")
			return Upload{}, invalid("datei", "Die Datei ist zu groß (höchstens %s).", humanBytes(k.Settings.MaxFileBytes))
		}
		return Upload{}, fmt.Errorf("store upload: %w", err)
	}
	u.Size, u.SHA256 = lr.read, hex.EncodeToString(h.Sum(nil))
	err = s.Store.InTx(ctx, func(tx Tx) error {
		if err := tx.AddUpload(ctx, u); err != nil {
			return err
		}
		_, err := tx.RecordEvent(ctx, a.event("mailbox.upload.stored", "upload", u.ID, map[string]any{"size": u.Size, "type": u.ContentType}))
		return err
	})
	if err != nil {
		_ = s.Blobs.Delete(context.WithoutCancel(ctx), u.BlobKey)
		return Upload{}, err
	}
	return u, nil
}

func (s *Service) auditRejected(ctx context.Context, a Actor, reason string) {
	ev := a.event("mailbox.upload.rejected", "upload", "", map[string]any{"reason": reason})
	ev.Outcome = audit.OutcomeFailure
	if err := s.Store.InTx(ctx, func(tx Tx) error { _, err := tx.RecordEvent(ctx, ev); return err }); err != nil {
		s.log().Warn("audit of a rejected upload failed", "err", err)
	}
}

func typeNames(types []string) string {
	names := map[string]string{
		"application/pdf": "PDF", "image/jpeg": "JPEG", "image/png": "PNG", "image/tiff": "TIFF", "image/heif": "HEIF",
	}
	out := make([]string, 0, len(types))
	for _, t := range types {
		if n, ok := names[t]; ok {
			out = append(out, n)
		} else {
			out = append(out, t)
		}
	}
	return strings.Join(out, ", ")
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GB", n>>30)
	case n >= 1<<20:
		return fmt.Sprintf("%d MB", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%d KB", n>>10)
	}
	return fmt.Sprintf("%d Bytes", n)
}

// Document is a letter of the Kasse for one insured person.
type Document struct {
	PersonID  string
	Topic     string
	Subject   string
	Body      string // short cover text
	Uploads   []string
	VorgangID string
}

// DeliverDocument files a letter of the Kasse (e.g. a decision as PDF). A
// person who chose online delivery finds it in the Postfach and gets the
// notification mail; for everyone else it is kept as a paper letter marked
// for print and does not appear online.
func (s *Service) DeliverDocument(ctx context.Context, a Actor, d Document) (Thread, Message, error) {
	v, err := a.viewer()
	if err != nil {
		return Thread{}, Message{}, err
	}
	if v.Side != SideTeam {
		return Thread{}, Message{}, ErrNotAllowed
	}
	l := s.limits()
	subject, err := l.cleanSubject(d.Subject)
	if err != nil {
		return Thread{}, Message{}, err
	}
	body, err := l.cleanBody(d.Body)
	if err != nil {
		return Thread{}, Message{}, err
	}
	if len(d.Uploads) == 0 {
		return Thread{}, Message{}, invalid("anlagen", "Ein Dokument braucht mindestens eine Anlage.")
	}
	if err := l.checkUploadCount(d.Uploads); err != nil {
		return Thread{}, Message{}, err
	}
	th := Thread{TenantID: a.TenantID, OwnerKind: OwnerPerson, OwnerID: d.PersonID, Subject: subject, State: StateOpen,
		AssignedTo: a.AccountID, VorgangID: d.VorgangID, Channel: ChannelPostfach}
	target, err := s.target(ctx, a.TenantID, th)
	if err != nil {
		return Thread{}, Message{}, err
	}
	if target.person.Delivery != kasse.DeliveryOnline {
		th.Channel, th.PaperStatus = ChannelPaper, PaperToPrint
	}
	var msg Message
	queued := false
	err = s.Store.InTx(ctx, func(tx Tx) error {
		msg = Message{TenantID: a.TenantID, Direction: Outbound, Kind: KindDocument, SenderAccountID: a.AccountID, Body: body}
		var err error
		if th, msg, err = s.openThread(ctx, tx, a, v, d.Topic, th, msg, d.Uploads); err != nil {
			return err
		}
		if _, err := tx.RecordEvent(ctx, a.event("mailbox.document.delivered", "thread", th.ID, map[string]any{"channel": string(th.Channel)})); err != nil {
			return err
		}
		queued, err = s.notify(ctx, tx, target, th)
		return err
	})
	if err != nil {
		return Thread{}, Message{}, err
	}
	s.afterCommit(queued)
	return th, msg, nil
}

// FailedNotifications lists notification mails the notifier gave up on,
// for persons with threads in the caseworker's teams.
func (s *Service) FailedNotifications(ctx context.Context, a Actor) ([]FailedNotification, error) {
	v, err := a.viewer()
	if err != nil {
		return nil, err
	}
	if v.Side != SideTeam {
		return nil, ErrNotAllowed
	}
	return s.Store.FailedNotifications(ctx, v, 200)
}

// RequeueNotification sends a failed notification again (e.g. after the
// person's address was corrected).
func (s *Service) RequeueNotification(ctx context.Context, a Actor, id string) error {
	v, err := a.viewer()
	if err != nil {
		return err
	}
	if v.Side != SideTeam {
		return ErrNotAllowed
	}
	err = s.Store.InTx(ctx, func(tx Tx) error {
		j, err := tx.RequeueNotification(ctx, v, id)
		if err != nil {
			return err
		}
		_, err = tx.RecordEvent(ctx, a.event("notifier.mail.requeued", "mail", j.ID, nil))
		return err
	})
	if err == nil {
		s.afterCommit(true)
	}
	return err
}
