package pluginhost

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/pluginhost/pluginhost/internal/pluginid"
)

// validateID checks that id is a plugin id: a slug of lowercase letters,
// digits and single hyphens, starting with a letter, at most
// [pluginid.MaxLen] bytes, and not reserved ([pluginid.Reserved]). The error
// says what to change.
func validateID(id string) error {
	var reason string
	bad := strings.IndexFunc(id, func(r rune) bool { return !isSlugRune(r) })
	switch {
	case id == "":
		return errors.New(`must not be empty: use a short slug such as "my-plugin"`)
	case len(id) > pluginid.MaxLen:
		reason = fmt.Sprintf("it is %d bytes long and the limit is %d, so that derived table names fit PostgreSQL's 63-byte identifiers: use a shorter id",
			len(id), pluginid.MaxLen)
	case strings.ContainsFunc(id, func(r rune) bool { return r >= 'A' && r <= 'Z' }):
		reason = fmt.Sprintf("it must be lowercase: use %q", suggestID(id))
	case strings.Contains(id, "_"):
		reason = fmt.Sprintf(`it must not contain "_": use "-" to separate words, as in %q`, suggestID(id))
	case bad >= 0:
		r, _ := utf8.DecodeRuneInString(id[bad:])
		reason = fmt.Sprintf("it may contain only lowercase letters, digits and single hyphens, not %q: use %q",
			r, suggestID(id))
	case id[0] < 'a' || id[0] > 'z':
		reason = fmt.Sprintf("it must start with a letter: use %q", suggestID(id))
	case strings.Contains(id, "--"):
		reason = fmt.Sprintf(`it must not contain "--": separate words with a single hyphen, as in %q`, suggestID(id))
	case strings.HasSuffix(id, "-"):
		reason = fmt.Sprintf(`it must not end with "-": use %q`, suggestID(id))
	case pluginid.Reserved(id):
		return fmt.Errorf("%q is reserved: the migration ledger records the host's own migrations under it; choose another id", id)
	default:
		return nil
	}
	return fmt.Errorf("%q is not a valid plugin id: %s", id, reason)
}

// isSlugRune reports whether r may appear in a plugin id.
func isSlugRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-'
}

// suggestID turns an invalid id into a valid one to suggest: lowercase,
// words joined by single hyphens, starting with a letter. It returns
// "my-plugin" when nothing usable is left.
func suggestID(id string) string {
	var b strings.Builder
	hyphen := false // a hyphen is pending, to be written before the next letter or digit
	for _, r := range strings.ToLower(id) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9' && b.Len() > 0:
			if hyphen && b.Len() > 0 {
				b.WriteByte('-')
			}
			hyphen = false
			b.WriteRune(r)
		default:
			hyphen = true
		}
	}
	s := b.String()
	if len(s) > pluginid.MaxLen {
		s = strings.TrimRight(s[:pluginid.MaxLen], "-")
	}
	if s == "" || pluginid.Reserved(s) {
		return "my-plugin"
	}
	return s
}
