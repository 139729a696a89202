package auth

import (
	"context"
	"net/url"
	"strings"

	"postbox/kasse"
	"postbox/notifier"
)

// Mail templates of the account flows. Each mail carries only the Kasse's
// name, the portal address and the one link (notifier.DataLoginURL) — no
// personal data. The German texts are rendered by the notifier.
const (
	// "Bitte bestätigen Sie Ihre E-Mail-Adresse": link valid
	// Settings.ActivationLinkLifetime (seed 002: 4 weeks).
	TemplateEmailConfirm = notifier.TemplateEmailConfirm
	// "Ihr Freischaltcode ist unterwegs" (seed 002: informed by e-mail about
	// the letter).
	TemplateUnlockLetterSent = notifier.TemplateUnlockLetterSent
	// "Neues Passwort festlegen": reset link, valid 24 hours.
	TemplatePasswordReset = notifier.TemplatePasswordReset
	// "Einladung": provider user invitation, valid
	// Settings.InvitationLifetime (seed 001: 720 hours).
	TemplateInvitation = notifier.TemplateInvitation
	// "Bitte bestätigen Sie Ihre neue E-Mail-Adresse" (to the new address)
	// and the notice to the old one.
	TemplateEmailChange       = notifier.TemplateEmailChange
	TemplateEmailChangeNotice = notifier.TemplateEmailChangeNotice
)

// Paths of the pages the links lead to (the web layer serves them).
const (
	PathEmailConfirm  = "/registrierung/bestaetigen"
	PathPasswordReset = "/passwort/neu"
	PathInvitation    = "/einladung"
	PathEmailChange   = "/konto/email/bestaetigen"
)

func (s *Service) portal(k kasse.Kasse) string {
	if k.PortalURL != "" {
		return strings.TrimRight(k.PortalURL, "/")
	}
	return strings.TrimRight(s.opts.BaseURL, "/")
}

func (s *Service) link(k kasse.Kasse, path, token string) string {
	if token == "" {
		return s.portal(k) + path
	}
	return s.portal(k) + path + "?token=" + url.QueryEscape(token)
}

func (s *Service) enqueueMail(ctx context.Context, tx Tx, k kasse.Kasse, a Account, t notifier.Template, link string) error {
	return s.enqueueMailTo(ctx, tx, k, a, a.Email, t, link)
}

func (s *Service) enqueueMailTo(ctx context.Context, tx Tx, k kasse.Kasse, a Account, to string, t notifier.Template, link string) error {
	_, err := tx.EnqueueMail(ctx, notifier.Job{TenantID: a.TenantID, Recipient: to, Template: t, PersonID: a.PersonID,
		Data: map[string]string{notifier.DataKasseName: k.Name, notifier.DataPortalURL: s.portal(k), notifier.DataLoginURL: link}})
	return err
}
