package sqlgen

import (
	"strconv"
	"strings"
)

// Rebind rewrites the "?" placeholders of query for the dialect. On
// PostgreSQL they become $1, $2, … in order, except inside a single-quoted
// string (a doubled quote escapes a quote; so does a backslash in an E
// string), a double-quoted identifier, a -- line comment, a /* … */
// comment (which nests) or a $tag$…$tag$ dollar-quoted string. PostgreSQL's jsonb operators ?, ?| and
// ?& therefore cannot be written outside those: use jsonb_exists and its
// kin. On SQLite, which understands "?", query is returned unchanged. It is
// safe for concurrent use.
func Rebind(d Dialect, query string) string {
	if d != Postgres {
		return query
	}
	marks := strings.Count(query, "?")
	if marks == 0 {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + marks*digits(marks))
	var num [20]byte
	n := 0
	start := 0 // query[start:i] is not yet copied
	for i := 0; i < len(query); {
		if query[i] != '?' {
			i = skipToken(query, i)
			continue
		}
		b.WriteString(query[start:i])
		n++
		b.WriteByte('$')
		b.Write(strconv.AppendInt(num[:0], int64(n), 10))
		i++
		start = i
	}
	b.WriteString(query[start:])
	return b.String()
}

// digits returns the number of decimal digits of n > 0.
func digits(n int) int {
	d := 1
	for ; n >= 10; n /= 10 {
		d++
	}
	return d
}

// skipToken returns the index just past what starts at q[i], which is not a
// placeholder: a whole single-quoted string, double-quoted identifier,
// comment or dollar-quoted string, or else that one byte.
func skipToken(q string, i int) int {
	switch q[i] {
	case '\'':
		escapes := i > 0 && (q[i-1] == 'E' || q[i-1] == 'e') && (i < 2 || !identByte(q[i-2]))
		return skipQuoted(q, i+1, '\'', escapes)
	case '"':
		return skipQuoted(q, i+1, '"', false)
	case '-':
		if i+1 < len(q) && q[i+1] == '-' {
			return skipLineComment(q, i+2)
		}
	case '/':
		if i+1 < len(q) && q[i+1] == '*' {
			return skipBlockComment(q, i+2)
		}
	case '$':
		return skipDollarQuoted(q, i)
	}
	return i + 1
}

// skipLineComment returns the index just past the newline that ends a --
// comment whose body starts at i, or the end when there is none.
func skipLineComment(q string, i int) int {
	if end := strings.IndexByte(q[i:], '\n'); end >= 0 {
		return i + end + 1
	}
	return len(q)
}

// skipQuoted returns the index just past the closing quote of a string or
// identifier whose body starts at i, a doubled quote being part of the body;
// with backslash escapes a backslash also escapes the next byte. An
// unterminated body runs to the end.
func skipQuoted(q string, i int, quote byte, backslash bool) int {
	for i < len(q) {
		switch q[i] {
		case '\\':
			if backslash {
				i += 2
				continue
			}
		case quote:
			if i+1 < len(q) && q[i+1] == quote {
				i += 2
				continue
			}
			return i + 1
		}
		i++
	}
	return len(q)
}

// skipBlockComment returns the index just past the */ that closes a comment
// whose body starts at i, counting nested /* … */ as PostgreSQL does.
func skipBlockComment(q string, i int) int {
	depth := 1
	for i < len(q) {
		switch {
		case q[i] == '/' && i+1 < len(q) && q[i+1] == '*':
			depth++
			i += 2
		case q[i] == '*' && i+1 < len(q) && q[i+1] == '/':
			depth--
			i += 2
			if depth == 0 {
				return i
			}
		default:
			i++
		}
	}
	return len(q)
}

// skipDollarQuoted handles a "$" at i: when it opens a dollar-quoted string
// ($$ or $tag$, where the tag is an identifier without "$" and the "$" does
// not continue an identifier), it returns the index just past the closing
// delimiter, or the end when there is none; otherwise (such as $1) i+1.
func skipDollarQuoted(q string, i int) int {
	if i > 0 && identByte(q[i-1]) {
		return i + 1
	}
	j := i + 1
	if j < len(q) && !isDigit(q[j]) {
		for j < len(q) && q[j] != '$' && identByte(q[j]) {
			j++
		}
	}
	if j >= len(q) || q[j] != '$' {
		return i + 1
	}
	delim := q[i : j+1]
	end := strings.Index(q[j+1:], delim)
	if end < 0 {
		return len(q)
	}
	return j + 1 + end + len(delim)
}

// identByte reports whether c can continue an unquoted identifier.
func identByte(c byte) bool {
	return c == '_' || c == '$' || isDigit(c) || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
