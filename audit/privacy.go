package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// ErrForbiddenDetail is returned for an event whose Details could carry
// message text, file content, personal data or secrets.
var ErrForbiddenDetail = errors.New("audit event details must not carry content, personal data or secrets")

// ForbiddenDetailKeys are Details keys no event may use, compared after
// lower-casing and dropping "_" and "-" (so "file_name", "fileName" and
// "filename" are one key). Each names something that is content, personal
// data or a secret; an event refers to such things by id instead.
var ForbiddenDetailKeys = []string{
	// content
	"text", "body", "content", "messagetext", "messagebody", "subject", "title",
	"comment", "note", "notes", "freetext", "reasontext", "description", "payload",
	"filename", "file", "path", "attachmentname",
	// personal data
	"name", "givenname", "familyname", "firstname", "lastname", "fullname", "displayname",
	"username", "login", "email", "emailaddress", "mail", "recipient", "phone", "mobile",
	"phonenumber", "address", "street", "postalcode", "zip", "city", "birthdate",
	"dateofbirth", "kvnr", "insurancenumber", "iban", "bic",
	"ip", "ipaddress", "clientip", "clientaddr", "clientaddress", "remoteaddr", "useragent",
	// secrets
	"password", "passwordhash", "secret", "token", "sessiontoken", "csrf", "pin", "einmalpin",
	"otp", "tan", "mtan", "totp", "activationcode", "unlockcode", "freischaltcode",
	"securitycode", "securityanswer", "answer", "key", "apikey",
}

var forbiddenKeys = func() map[string]bool {
	m := map[string]bool{}
	for _, k := range ForbiddenDetailKeys {
		m[k] = true
	}
	return m
}()

func normKey(k string) string {
	return strings.NewReplacer("_", "", "-", "", " ", "").Replace(strings.ToLower(k))
}

// reasonCode is what a "reason" may hold: a code such as "retention" or
// "content_type", never a sentence somebody typed.
var reasonCode = regexp.MustCompile(`^[a-z0-9_.-]{1,64}$`)

// maxDetailsBytes bounds Details; events are metadata, not documents.
const maxDetailsBytes = 2048

// CheckEvent reports why e may not be recorded: Details that are not a JSON
// object, too large, or carry a forbidden key (at any depth), a free-text
// reason, an e-mail-like value or a multi-line string. The error names the
// key, never the value.
func CheckEvent(e Event) error {
	if e.Type == "" {
		return errors.New("audit event without type")
	}
	if strings.HasPrefix(e.Details, RedactedPrefix) {
		return fmt.Errorf("%w: only retention redacts events", ErrForbiddenDetail)
	}
	return CheckDetails(e.Details)
}

// CheckDetails is CheckEvent's test of the Details JSON ("" counts as {}).
func CheckDetails(details string) error {
	if details == "" {
		return nil
	}
	if len(details) > maxDetailsBytes {
		return fmt.Errorf("%w: details are %d bytes, at most %d", ErrForbiddenDetail, len(details), maxDetailsBytes)
	}
	var v any
	if err := json.Unmarshal([]byte(details), &v); err != nil {
		return fmt.Errorf("audit event details are not JSON: %w", err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("audit event details must be a JSON object")
	}
	return checkValue("", obj)
}

func checkValue(path string, v any) error {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys) // the first offending key is reported stably
		for _, k := range keys {
			p := k
			if path != "" {
				p = path + "." + k
			}
			if forbiddenKeys[normKey(k)] {
				return fmt.Errorf("%w: key %q", ErrForbiddenDetail, p)
			}
			if normKey(k) == "reason" {
				if s, ok := x[k].(string); ok && !reasonCode.MatchString(s) {
					return fmt.Errorf("%w: %q must be a code like \"retention\", not free text", ErrForbiddenDetail, p)
				}
			}
			if err := checkValue(p, x[k]); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range x {
			if err := checkValue(fmt.Sprintf("%s[%d]", path, i), e); err != nil {
				return err
			}
		}
	case string:
		switch {
		case len(x) > 256:
			return fmt.Errorf("%w: value of %q is %d bytes long, events hold codes and ids", ErrForbiddenDetail, path, len(x))
		case strings.ContainsAny(x, "\r\n"):
			return fmt.Errorf("%w: value of %q spans lines", ErrForbiddenDetail, path)
		case strings.Contains(x, "@"):
			return fmt.Errorf("%w: value of %q looks like an e-mail address", ErrForbiddenDetail, path)
		}
	}
	return nil
}
