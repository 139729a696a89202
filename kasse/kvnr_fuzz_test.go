package kasse

import "testing"

// ValidateKVNR accepts exactly the numbers whose check digit matches, and
// CompleteKVNR makes such numbers; the check digit catches every change of
// a single digit.
func FuzzKVNR(f *testing.F) {
	f.Add("A123456780", byte(3), byte(7))
	f.Add("E12345678", byte(0), byte(0))
	f.Add("Z99999999", byte(8), byte(1))
	f.Add("a12345678x", byte(1), byte(1))
	f.Fuzz(func(t *testing.T, s string, pos, delta byte) {
		err := ValidateKVNR(s)
		structural := len(s) == 10 && s[0] >= 'A' && s[0] <= 'Z'
		for i := 1; structural && i < 10; i++ {
			structural = s[i] >= '0' && s[i] <= '9'
		}
		if !structural {
			if err == nil {
				t.Fatalf("ValidateKVNR(%q) accepted a malformed number", s)
			}
			return
		}
		if (err == nil) != (CompleteKVNR(s[:9]) == s) {
			t.Fatalf("ValidateKVNR(%q) = %v, but CompleteKVNR gives %q", s, err, CompleteKVNR(s[:9]))
		}
		if err != nil {
			return
		}
		// Change one digit (position 1..9, by 1..9 modulo 10): refused.
		i := 1 + int(pos)%9
		d := byte('0' + (int(s[i]-'0')+1+int(delta)%9)%10)
		changed := s[:i] + string(d) + s[i+1:]
		if ValidateKVNR(changed) == nil {
			t.Fatalf("%q and %q (one digit changed) both accepted", s, changed)
		}
	})
}
