//go:build integration

package notifier_test

import (
	"testing"

	"postbox/notifier"
	"postbox/storage/storagetest"
)

// Server mode's mail path: SMTP (go-smtp) into the real maildev.
func TestSMTPContract(t *testing.T) {
	s, err := notifier.NewSMTP(notifier.SMTPConfig{Addr: storagetest.Service(t, "POSTBOX_TEST_SMTP_ADDR")})
	if err != nil {
		t.Fatal(err)
	}
	md := &notifier.Maildev{URL: storagetest.Service(t, "POSTBOX_TEST_MAILDEV_URL")}
	storagetest.TestMailSender(t, s, func(t *testing.T, recipient string) [][]byte {
		list, err := md.EmailsTo(t.Context(), recipient)
		if err != nil {
			t.Fatalf("maildev: %v", err)
		}
		var out [][]byte
		for _, e := range list {
			raw, err := md.Source(t.Context(), e.ID)
			if err != nil {
				t.Fatalf("maildev source: %v", err)
			}
			out = append(out, raw)
		}
		return out
	})
}
