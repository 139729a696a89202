package mailbox

import (
	"strings"
	"testing"

	"postbox/auth"
)

func TestLikePatternEscapesWildcards(t *testing.T) {
	for _, tc := range []struct{ q, want string }{
		{"Rechnung", "%rechnung%"},
		{"100%", `%100\%%`},
		{"a_b", `%a\_b%`},
		{`C:\temp`, `%c:\\temp%`},
		{"ÄRZTLICH", "%ärztlich%"},
	} {
		if got := LikePattern(tc.q); got != tc.want {
			t.Errorf("LikePattern(%q) = %q, want %q", tc.q, got, tc.want)
		}
	}
}

func TestCleanFileName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Befund.pdf", "Befund.pdf"},
		{`C:\Users\erika\Befund.pdf`, "Befund.pdf"},
		{"../../etc/passwd", "passwd"},
		{"a\x00b\r\n.pdf", "ab.pdf"},
		{"  ", "Anlage"},
		{"..", "Anlage"},
		{strings.Repeat("ä", 200) + ".pdf", strings.Repeat("ä", 146) + ".pdf"},
	} {
		if got := CleanFileName(tc.in); got != tc.want {
			t.Errorf("CleanFileName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestTextRules(t *testing.T) {
	l := Limits{MaxSubjectRunes: 10, MaxBodyRunes: 20}.withDefaults()
	for _, tc := range []struct {
		name, subject, body string
		ok                  bool
		wantBody            string
	}{
		{"plain", "Frage", "Hallo\r\nWelt", true, "Hallo\nWelt"},
		{"umlauts count as one", "Ärger ÖÜß", "äöüäöüäöüäöüäöüäöüää", true, "äöüäöüäöüäöüäöüäöüää"},
		{"subject too long", "Elf Zeichen", "x", false, ""},
		{"body too long", "x", strings.Repeat("x", 21), false, ""},
		{"tab in subject", "a\tb", "x", false, ""},
		{"empty body", "x", " \n\t", false, ""},
		{"escape sequence", "x", "a\x1b[31mb", false, ""},
		{"invalid UTF-8", "x", "a\xffb", false, ""},
	} {
		_, errS := l.cleanSubject(tc.subject)
		body, errB := l.cleanBody(tc.body)
		ok := errS == nil && errB == nil
		if ok != tc.ok || (ok && body != tc.wantBody) {
			t.Errorf("%s: ok %v (%v, %v) body %q", tc.name, ok, errS, errB, body)
		}
		for _, err := range []error{errS, errB} {
			if ie, isInvalid := IsInvalid(err); err != nil && (!isInvalid || ie.Detail == "") {
				t.Errorf("%s: error %v has no German detail", tc.name, err)
			}
		}
	}
}

func TestViewerOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    auth.Principal
		want Side
	}{
		{"insured", auth.Principal{TenantID: "k", AccountID: "a", Role: auth.RoleInsured, PersonID: "p"}, SideOwner},
		{"insured without person", auth.Principal{TenantID: "k", AccountID: "a", Role: auth.RoleInsured}, SideNone},
		{"Einmal-PIN session (no account)", auth.Principal{TenantID: "k", Role: auth.RoleInsured, PersonID: "p"}, SideNone},
		{"provider user", auth.Principal{TenantID: "k", AccountID: "a", Role: auth.RoleProviderUser, OrgID: "o"}, SideOwner},
		{"caseworker", auth.Principal{TenantID: "k", AccountID: "a", Role: auth.RoleCaseworker}, SideTeam},
		{"team lead", auth.Principal{TenantID: "k", AccountID: "a", Role: auth.RoleTeamLead}, SideTeam},
		{"auditor", auth.Principal{TenantID: "k", AccountID: "a", Role: auth.RoleAuditor}, SideNone},
		{"kasse admin", auth.Principal{TenantID: "k", AccountID: "a", Role: auth.RoleKasseAdmin}, SideNone},
		{"no tenant", auth.Principal{AccountID: "a", Role: auth.RoleCaseworker}, SideNone},
	} {
		if got := ViewerOf(tc.p).Side; got != tc.want {
			t.Errorf("%s: side %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestExportNamesStayInsideTheArchive(t *testing.T) {
	for _, in := range []string{"../../etc", "..", ".versteckt", "a/b\\c", "", "Befund: 12/2024"} {
		got := safeName(in, 60)
		if got == "" || strings.ContainsAny(got, `/\:`) || strings.HasPrefix(got, ".") {
			t.Errorf("safeName(%q) = %q", in, got)
		}
	}
	seen := map[string]bool{}
	names := []string{uniqueName(seen, "Befund.pdf"), uniqueName(seen, "befund.pdf"), uniqueName(seen, "Befund.pdf")}
	if names[0] != "Befund.pdf" || names[1] != "befund (2).pdf" || names[2] != "Befund (3).pdf" {
		t.Errorf("unique names %v", names)
	}
}
