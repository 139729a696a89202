package auth

// SetLetterCodeHook lets the external tests read Freischaltcodes.
func SetLetterCodeHook(fn func(accountID, purpose, code string)) { onLetterCode = fn }
