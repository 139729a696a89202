package intake

import (
	"math"
	"strings"
	"testing"
)

func TestNewPINAlphabetAndEntropy(t *testing.T) {
	if bits := float64(PINLength) * math.Log2(float64(len(pinAlphabet))); bits < 60 {
		t.Fatalf("PIN entropy %.1f bits, want >= 60", bits)
	}
	for _, c := range "0O1IlL" {
		if strings.ContainsRune(pinAlphabet, c) {
			t.Errorf("alphabet contains look-alike %q", c)
		}
	}
	seen := map[string]bool{}
	counts := map[rune]int{}
	for i := 0; i < 2000; i++ {
		p, err := NewPIN()
		if err != nil {
			t.Fatal(err)
		}
		if len(p) != PINLength {
			t.Fatalf("PIN %q has length %d", p, len(p))
		}
		if seen[p] {
			t.Fatalf("PIN %q drawn twice", p)
		}
		seen[p] = true
		for _, c := range p {
			if !strings.ContainsRune(pinAlphabet, c) {
				t.Fatalf("PIN %q contains %q outside the alphabet", p, c)
			}
			counts[c]++
		}
	}
	// Every symbol is used; a biased or truncated draw would miss some.
	if len(counts) != len(pinAlphabet) {
		t.Fatalf("only %d of %d symbols used", len(counts), len(pinAlphabet))
	}
}

func TestPINHasher(t *testing.T) {
	h := NewPINHasher([]byte("0123456789abcdef0123456789abcdef"))
	pin := "ABCDE23456FGHJK"
	stored := h.Hash("kasse-a", pin)
	if strings.Contains(stored, pin) {
		t.Fatal("hash contains the PIN")
	}
	for _, tc := range []struct {
		name, tenant, typed string
		want                bool
	}{
		{"exact", "kasse-a", pin, true},
		{"as printed, lower case", "kasse-a", strings.ToLower(FormatPIN(pin)), true},
		{"with spaces", "kasse-a", "ABCDE 23456 FGHJK", true},
		{"other tenant", "kasse-b", pin, false},
		{"one symbol off", "kasse-a", "ABCDE23456FGHJM", false},
	} {
		if got := h.Equal(tc.tenant, tc.typed, stored); got != tc.want {
			t.Errorf("%s: Equal = %v, want %v", tc.name, got, tc.want)
		}
	}
	other := NewPINHasher([]byte("another key another key another!"))
	if other.Hash("kasse-a", pin) == stored {
		t.Fatal("hash does not depend on the key")
	}
	if got := FormatPIN(pin); got != "ABCDE-23456-FGHJK" {
		t.Fatalf("FormatPIN = %q", got)
	}
}
