// Package tomlpos finds the lines on which the keys of a TOML document are
// defined, which github.com/BurntSushi/toml does not report when decoding
// into a map.
//
// It is a best-effort scanner, not a parser: it is meant to be run on
// documents that have already been decoded successfully, so that error
// messages about their values can name a line. On malformed input it returns
// whatever it found and never fails.
//
// # Paths
//
// A key's path is the names of its tables and keys joined by dots, with the
// index of each array-of-tables element in brackets:
//
//	id                     id = "notes"
//	dependencies.notes     notes = "^1.0.0" under [dependencies]
//	config.api_token.type  type = "string" under [config.api_token]
//	setting_groups[0]      the first [[setting_groups]] header
//	settings[1].default    default = 3 under the second [[settings]]
//
// Quoted keys appear unquoted and unescaped. Only the top-level key of an
// inline table or array is recorded.
package tomlpos

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Lines maps key paths to the 1-based lines that define them. A table header
// ([a.b], [[a]]) is recorded under its table's path; a table that is only
// implied by a longer header or a dotted key is recorded at its first
// mention. The zero value is an empty index.
type Lines map[string]int

// Line returns the line that defines path or, when path was not recorded,
// the line of its nearest recorded ancestor ("settings[1].default", then
// "settings[1]", then "settings"); 0 when there is none.
func (l Lines) Line(path string) int {
	for p := path; p != ""; p = Parent(p) {
		if n, ok := l[p]; ok {
			return n
		}
	}
	return 0
}

// Parent returns the path of the table or array that holds path:
// "settings[1].default" → "settings[1]" → "settings" → "".
func Parent(path string) string {
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndexByte(path, '['); i >= 0 {
			return path[:i]
		}
	}
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return ""
}

// Index scans src and returns the line of every key, table header and
// array-of-tables element it defines. Text inside strings (including
// multi-line strings), multi-line arrays and inline tables is never taken for
// a key.
func Index(src []byte) Lines {
	s := &scanner{
		src:    src,
		line:   1,
		lines:  Lines{},
		arrays: map[string]int{},
	}
	if len(src) >= 3 && string(src[:3]) == "\ufeff" {
		s.pos = 3
	}
	s.run()
	return s.lines
}

type scanner struct {
	src    []byte
	pos    int
	line   int
	lines  Lines
	table  string         // path of the current table; "" at the top level
	arrays map[string]int // path of an array of tables → elements so far
}

func (s *scanner) run() {
	for s.pos < len(s.src) {
		s.skipSpace()
		switch s.peek() {
		case 0:
			if s.pos < len(s.src) {
				s.next() // a NUL byte: not TOML, skip it
			}
		case '\n':
			s.next()
		case '#':
			s.skipComment()
		case '[':
			s.header()
		default:
			s.keyValue()
		}
	}
}

// header reads a [table] or [[array]] header and makes it the current table.
func (s *scanner) header() {
	line := s.line
	s.next() // [
	double := s.peek() == '['
	if double {
		s.next()
	}
	segs, ok := s.key()
	s.skipSpace()
	if ok && s.peek() == ']' {
		s.next()
		if double {
			if s.peek() == ']' {
				s.next()
			} else {
				ok = false
			}
		}
	} else {
		ok = false
	}
	s.skipLine()
	if !ok {
		return
	}
	path := ""
	for i, seg := range segs {
		path = join(path, seg)
		if double && i == len(segs)-1 {
			n := s.arrays[path]
			s.arrays[path] = n + 1
			s.record(path, line)
			path += "[" + strconv.Itoa(n) + "]"
		} else if n, isArray := s.arrays[path]; isArray {
			path += "[" + strconv.Itoa(n-1) + "]"
		}
		s.record(path, line)
	}
	s.table = path
}

// keyValue reads a key = value line and records the key and any tables its
// dotted form implies.
func (s *scanner) keyValue() {
	line := s.line
	segs, ok := s.key()
	s.skipSpace()
	if !ok || s.peek() != '=' {
		s.skipLine()
		return
	}
	s.next() // =
	path := s.table
	for _, seg := range segs {
		path = join(path, seg)
		s.record(path, line)
	}
	s.skipValue()
}

// key reads a possibly dotted key made of bare, "basic" and 'literal' parts.
func (s *scanner) key() (segs []string, ok bool) {
	for {
		s.skipSpace()
		var seg string
		switch c := s.peek(); {
		case c == '"':
			raw, closed := s.quoted('"')
			if !closed {
				return nil, false
			}
			seg = unescape(raw)
		case c == '\'':
			raw, closed := s.quoted('\'')
			if !closed {
				return nil, false
			}
			seg = raw
		case isBare(c):
			start := s.pos
			for s.pos < len(s.src) && isBare(s.src[s.pos]) {
				s.pos++
			}
			seg = string(s.src[start:s.pos])
		default:
			return nil, false
		}
		segs = append(segs, seg)
		s.skipSpace()
		if s.peek() != '.' {
			return segs, true
		}
		s.next()
	}
}

// quoted reads a single-line string delimited by q and returns its raw
// contents.
func (s *scanner) quoted(q byte) (raw string, closed bool) {
	s.next() // opening quote
	start := s.pos
	for s.pos < len(s.src) {
		c := s.src[s.pos]
		switch {
		case c == '\n':
			return "", false
		case c == q:
			raw = string(s.src[start:s.pos])
			s.next()
			return raw, true
		case c == '\\' && q == '"' && s.pos+1 < len(s.src) && s.src[s.pos+1] != '\n':
			s.pos += 2
		default:
			s.pos++
		}
	}
	return "", false
}

// skipValue skips a value, which may span lines when it is a multi-line
// string, array or inline table, and stops before the newline that ends it.
func (s *scanner) skipValue() {
	depth := 0
	for s.pos < len(s.src) {
		switch c := s.peek(); c {
		case '\n':
			if depth == 0 {
				return
			}
			s.next()
		case '"', '\'':
			if s.hasPrefix(c, 3) {
				s.skipMultiline(c)
			} else {
				s.quoted(c)
			}
		case '[', '{':
			depth++
			s.next()
		case ']', '}':
			if depth > 0 {
				depth--
			}
			s.next()
		case '#':
			s.skipComment()
		default:
			s.next()
		}
	}
}

// skipMultiline skips a multi-line basic or literal string, starting at its
// three opening quotes.
func (s *scanner) skipMultiline(q byte) {
	s.pos += 3
	for s.pos < len(s.src) {
		switch c := s.src[s.pos]; {
		case c == '\\' && q == '"':
			s.next()
			if s.pos < len(s.src) {
				s.next()
			}
		case s.hasPrefix(q, 3):
			s.pos += 3
			// Up to two more quotes belong to the string: """a""""".
			for i := 0; i < 2 && s.peek() == q; i++ {
				s.pos++
			}
			return
		default:
			s.next()
		}
	}
}

// skipLine skips to the end of the line, leaving the newline.
func (s *scanner) skipLine() {
	for s.pos < len(s.src) && s.src[s.pos] != '\n' {
		s.pos++
	}
}

// skipComment skips a comment, leaving the newline that ends it.
func (s *scanner) skipComment() { s.skipLine() }

func (s *scanner) skipSpace() {
	for s.pos < len(s.src) {
		switch s.src[s.pos] {
		case ' ', '\t', '\r':
			s.pos++
		default:
			return
		}
	}
}

// peek returns the current byte, or 0 at the end of the input.
func (s *scanner) peek() byte {
	if s.pos < len(s.src) {
		return s.src[s.pos]
	}
	return 0
}

// next consumes one byte, counting lines.
func (s *scanner) next() {
	if s.src[s.pos] == '\n' {
		s.line++
	}
	s.pos++
}

// hasPrefix reports whether the input continues with n copies of c.
func (s *scanner) hasPrefix(c byte, n int) bool {
	if s.pos+n > len(s.src) {
		return false
	}
	for i := range n {
		if s.src[s.pos+i] != c {
			return false
		}
	}
	return true
}

// record remembers the first line on which path appears.
func (s *scanner) record(path string, line int) {
	if _, ok := s.lines[path]; !ok {
		s.lines[path] = line
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// isBare reports whether c may appear in a bare key. Bytes of multi-byte
// UTF-8 sequences are accepted too, so that a document that uses them
// (TOML 1.1) still indexes.
func isBare(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '-' || c >= utf8.RuneSelf
}

// unescape decodes the escape sequences of a TOML basic string. Unknown or
// malformed sequences are kept as they are.
func unescape(raw string) string {
	if !strings.Contains(raw, `\`) {
		return raw
	}
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' || i+1 >= len(raw) {
			b.WriteByte(c)
			continue
		}
		i++
		switch e := raw[i]; e {
		case 'b':
			b.WriteByte('\b')
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'f':
			b.WriteByte('\f')
		case 'r':
			b.WriteByte('\r')
		case 'e':
			b.WriteByte('\x1b')
		case '"', '\\':
			b.WriteByte(e)
		case 'x', 'u', 'U':
			n := hexDigits[e]
			if i+1+n > len(raw) {
				b.WriteByte('\\')
				b.WriteByte(e)
				continue
			}
			r, err := strconv.ParseUint(raw[i+1:i+1+n], 16, 32)
			if err != nil || r > utf8.MaxRune || !utf8.ValidRune(rune(r)) {
				b.WriteByte('\\')
				b.WriteByte(e)
				continue
			}
			b.WriteRune(rune(r))
			i += n
		default:
			b.WriteByte('\\')
			b.WriteByte(e)
		}
	}
	return b.String()
}

// hexDigits is the length of the hexadecimal escapes \xHH, \uHHHH and
// \UHHHHHHHH.
var hexDigits = map[byte]int{'x': 2, 'u': 4, 'U': 8}
