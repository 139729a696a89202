package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"postbox/auth"
)

// newAuthService wires accounts and login: SMS through the HTTP gateway
// when configured, else as files in DATA_DIR/sms; letters as PDFs in
// DATA_DIR/letters.
func newAuthService(a *app) (*auth.Service, error) {
	var sms auth.SMSGateway
	if a.cfg.SMSGatewayURL != "" {
		g, err := auth.NewSMSHTTP(a.cfg.SMSGatewayURL)
		if err != nil {
			return nil, &ConfigError{Env: "POSTBOX_SMS_GATEWAY_URL", Flag: "sms-gateway-url", Value: a.cfg.SMSGatewayURL, Problem: err.Error()}
		}
		sms = g
	} else {
		d, err := auth.NewSMSDir(filepath.Join(a.cfg.DataDir, "sms"))
		if err != nil {
			return nil, err
		}
		sms = d
	}
	letters, err := auth.NewLetterDir(filepath.Join(a.cfg.DataDir, "letters"))
	if err != nil {
		return nil, err
	}
	return auth.NewService(a.db.Auth(), auth.Options{
		Key: a.keys.auth, ClientAddrKey: a.keys.clientAddr, SMS: sms, Letters: letters,
		BaseURL: a.cfg.BaseURL, Logger: a.log,
	})
}

// runAuthCleanup deletes expired registrations, sessions and rate limit
// windows every 10 minutes until ctx ends.
func runAuthCleanup(ctx context.Context, jobs *periodic, a *app) {
	jobs.run(ctx, "auth-cleanup", 0, 10*time.Minute, func(ctx context.Context) {
		if n, err := a.auth.Cleanup(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("auth cleanup failed", "err", err)
		} else if n > 0 {
			a.log.Info("expired registrations deleted", "count", n)
		}
	})
}

// demoMobile is the demo insured person's mTAN number; the SMS are files in
// DATA_DIR/sms.
const demoMobile = "+4915100000001"

// prepareDemoLogins gives every demo account a fresh authenticator device,
// the insured person a confirmed mTAN number and the provider admin an
// organisation, so each printed login works end to end.
func prepareDemoLogins(ctx context.Context, a *app, d *demoData) error {
	for i, l := range d.logins {
		acc, err := a.db.AccountByUsername(ctx, demoKasseID, l.username)
		if err != nil {
			return err
		}
		mobile, org := "", ""
		switch acc.Role {
		case auth.RoleInsured:
			mobile = demoMobile
		case auth.RoleProviderAdmin, auth.RoleProviderUser:
			org = "demo-praxis"
		}
		if d.logins[i].second, err = a.auth.PrepareDemoAccount(ctx, demoKasseID, acc.ID, mobile, org); err != nil {
			return fmt.Errorf("demo second factor of %s: %w", l.username, err)
		}
	}
	return nil
}

func printDemoSecondFactors(w io.Writer, d *demoData) {
	fmt.Fprintf(w, "\nZweiter Faktor: jede otpauth-Adresse in eine Authenticator-App übernehmen (oder als QR-Code scannen).\n")
	for _, l := range d.logins {
		line := "- " + l.username + ": " + l.second.OTPAuthURI
		if l.second.Mobile != "" {
			line += "\n  (" + l.username + " auch per mTAN an " + l.second.Mobile + ": die SMS liegen als Dateien im Ordner sms des Datenverzeichnisses)"
		}
		fmt.Fprintln(w, line)
	}
}
