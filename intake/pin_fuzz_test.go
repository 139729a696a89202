package intake

import (
	"strings"
	"testing"

	"postbox/kasse"
)

// What a person types as Einmal-PIN: a normalised PIN that is accepted as
// well-formed has exactly PINLength symbols of the alphabet; a PIN from
// the letter, typed with blocks, dashes, spaces or in lower case, is the
// same PIN; the hash compare agrees with the normalisation.
func FuzzPIN(f *testing.F) {
	f.Add("ABCDE-FGHJK-MNPQR", []byte("seed"))
	f.Add("abcde fghjk mnpqr", []byte{0, 1, 2})
	f.Add("ABCDE-FGHJK-MNPQ0", []byte{})             // 0 is not in the alphabet
	f.Add("ıbcde-fghjk-mnpqr", []byte{255})          // dotless i upper-cases to I, which is not either
	f.Add("ABCDE\u00a0FGHJK\u2003MNPQR", []byte{30}) // other spaces are not separators
	f.Add(strings.Repeat("A", 15)+"\x00", []byte{7})
	h := NewPINHasher([]byte("0123456789abcdef0123456789abcdef"))
	f.Fuzz(func(t *testing.T, typed string, raw []byte) {
		n := NormalizePIN(typed)
		if strings.ContainsAny(n, " -\t") {
			t.Fatalf("NormalizePIN(%q) = %q keeps separators", typed, n)
		}
		if WellFormedPIN(n) {
			if len(n) != PINLength {
				t.Fatalf("well-formed PIN %q has %d bytes", n, len(n))
			}
			for _, r := range n {
				if !strings.ContainsRune(pinAlphabet, r) {
					t.Fatalf("well-formed PIN %q (typed %q) has %q, not in the alphabet", n, typed, r)
				}
			}
		}
		// A PIN made from the fuzzer's bytes, as printed and as typed.
		if len(raw) == 0 {
			return
		}
		var b strings.Builder
		for i := 0; i < PINLength; i++ {
			b.WriteByte(pinAlphabet[int(raw[i%len(raw)])%len(pinAlphabet)])
		}
		pin := b.String()
		stored := h.Hash("k1", pin)
		for _, v := range []string{pin, FormatPIN(pin), strings.ToLower(FormatPIN(pin)), strings.ReplaceAll(FormatPIN(pin), "-", " "), " " + pin + "\t"} {
			if got := NormalizePIN(v); got != pin || !WellFormedPIN(got) {
				t.Fatalf("NormalizePIN(%q) = %q, want %q", v, got, pin)
			}
			if !h.Equal("k1", v, stored) {
				t.Fatalf("the letter's PIN typed as %q does not match", v)
			}
		}
		if h.Equal("k2", pin, stored) {
			t.Fatalf("a PIN hash matches under another Kasse")
		}
		if (NormalizePIN(typed) == pin) != h.Equal("k1", typed, stored) {
			t.Fatalf("Equal(%q) disagrees with NormalizePIN for PIN %q", typed, pin)
		}
	})
}

// What a person types as KVNR: accepted after normalisation only with a
// capital letter, nine digits and a matching check digit (computed here
// independently, spec of the GKV-Spitzenverband).
func FuzzKVNRLogin(f *testing.F) {
	for _, s := range []string{"A123456780", "a123456780", " A 123 456 780 ", "A123456781", "Ä123456780", "A12345678", "A1234567800", "A12345678０",
		"E12345678" + "x", "\u212a123456780" /* Kelvin sign lower-cases to k */} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, typed string) {
		n := NormalizeKVNR(typed)
		if kasse.ValidateKVNR(n) != nil {
			return
		}
		if !validKVNR(n) {
			t.Fatalf("KVNR %q (typed %q) accepted, but it is not a letter, nine digits and the check digit", n, typed)
		}
	})
}

// validKVNR is the check of the KVNR's unchangeable part written out once
// more: the letter as its two-digit position, then the eight digits, weighted
// 1,2,1,2,…, products above 9 as their cross sum, sum mod 10.
func validKVNR(s string) bool {
	if len(s) != 10 || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	digits := []int{int(s[0]-'A'+1) / 10, int(s[0]-'A'+1) % 10}
	for i := 1; i < 10; i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
		if i < 9 {
			digits = append(digits, int(s[i]-'0'))
		}
	}
	sum := 0
	for i, d := range digits {
		p := d
		if i%2 == 1 {
			p *= 2
		}
		sum += p/10 + p%10
	}
	return sum%10 == int(s[9]-'0')
}
