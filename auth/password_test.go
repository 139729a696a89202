package auth

import (
	"errors"
	"strings"
	"testing"
)

func TestHashSecret(t *testing.T) {
	fast := Argon2Params{MemoryKiB: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	h, err := HashSecret("Geheim#2026", fast)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=1024,t=1,p=1$") {
		t.Fatalf("hash %q is not a PHC argon2id string", h)
	}
	h2, _ := HashSecret("Geheim#2026", fast)
	if h == h2 {
		t.Fatal("two hashes of one secret are equal: salt missing")
	}
	for _, tc := range []struct {
		secret string
		want   bool
	}{
		{"Geheim#2026", true},
		{"geheim#2026", false},
		{"Geheim#2026 ", false},
		{"", false},
	} {
		ok, err := VerifySecret(tc.secret, h)
		if err != nil || ok != tc.want {
			t.Errorf("VerifySecret(%q) = %v, %v; want %v", tc.secret, ok, err, tc.want)
		}
	}
	if _, err := VerifySecret("x", "$2a$10$bcrypt"); !errors.Is(err, ErrMalformedHash) {
		t.Errorf("foreign hash format: err = %v, want ErrMalformedHash", err)
	}
}
