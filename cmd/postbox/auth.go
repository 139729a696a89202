package main

import (
	"path/filepath"

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
