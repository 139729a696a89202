package kasse

import (
	"errors"
	"fmt"
)

// ErrKVNR is returned for a Krankenversichertennummer that is malformed or
// whose check digit does not match.
var ErrKVNR = errors.New("invalid KVNR")

// ValidateKVNR checks the unchangeable part of the KVNR: one capital letter
// and nine digits, the last being the check digit. The letter counts as its
// two-digit alphabet position (A=01 … Z=26); the resulting eleven digits
// except the last are weighted 1,2,1,2,…, two-digit products are replaced by
// their cross sum, and the sum modulo 10 is the check digit.
func ValidateKVNR(kvnr string) error {
	if len(kvnr) != 10 {
		return fmt.Errorf("%w: must be 10 characters", ErrKVNR)
	}
	c := kvnr[0]
	if c < 'A' || c > 'Z' {
		return fmt.Errorf("%w: must start with a capital letter", ErrKVNR)
	}
	for i := 1; i < 10; i++ {
		if kvnr[i] < '0' || kvnr[i] > '9' {
			return fmt.Errorf("%w: characters 2-10 must be digits", ErrKVNR)
		}
	}
	if kvnrCheckDigit(kvnr[:9]) != int(kvnr[9]-'0') {
		return fmt.Errorf("%w: check digit does not match", ErrKVNR)
	}
	return nil
}

// kvnrCheckDigit computes the check digit for a letter and eight digits.
func kvnrCheckDigit(prefix string) int {
	pos := int(prefix[0]-'A') + 1
	digits := []int{pos / 10, pos % 10}
	for i := 1; i < len(prefix); i++ {
		digits = append(digits, int(prefix[i]-'0'))
	}
	sum := 0
	for i, d := range digits {
		p := d * (1 + i%2)
		sum += p/10 + p%10
	}
	return sum % 10
}

// CompleteKVNR appends the check digit to a letter and eight digits; used to
// make demo and test numbers.
func CompleteKVNR(prefix string) string {
	return prefix + string(rune('0'+kvnrCheckDigit(prefix)))
}
