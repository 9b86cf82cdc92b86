package sqlgen

import "strings"

// TransactionControl finds the first statement of script, SQL in dialect
// d, that begins, ends or divides a transaction: BEGIN, START TRANSACTION,
// COMMIT, END, ROLLBACK, ABORT, SAVEPOINT, RELEASE or PREPARE TRANSACTION.
// It returns the statement's keywords, upper-cased ("COMMIT", "START
// TRANSACTION"), and the byte offset at which the statement starts; ok is
// false when there is none.
//
// Only statements count. A keyword inside a string, a quoted identifier, a
// comment or (on PostgreSQL) a dollar-quoted string is not one, nor inside
// parentheses, nor is the BEGIN … END of a body that a statement stores
// rather than runs: SQLite's CREATE TRIGGER … BEGIN … END and PostgreSQL's
// CREATE FUNCTION or PROCEDURE … BEGIN ATOMIC … END. Comments follow the
// dialect: PostgreSQL's /* … */ nest, SQLite's do not.
//
// It scans script once, in time linear in its length, and is safe for
// concurrent use.
func TransactionControl(d Dialect, script string) (keywords string, offset int, ok bool) {
	var st stmtState
	for i := 0; ; {
		tok, start, next := nextToken(d, script, i)
		if next == start {
			return "", 0, false
		}
		if kw, found := st.add(tok, start); found {
			return kw, st.start, true
		}
		i = next
	}
}

// stmtState follows the statements of a script, token by token.
type stmtState struct {
	depth   int    // open parentheses
	tokens  int    // tokens of the current statement so far
	start   int    // offset of the current statement's first token
	first   string // the statement's first word, upper-cased
	heading int    // tokens of the statement that are CREATE and its modifiers
	routine bool   // the statement creates a trigger, function or procedure
	body    bool   // inside the BEGIN … END body of such a statement
	inner   int    // tokens of the body's current statement so far
}

// add takes the next token, which starts at offset, and reports the
// keywords of a transaction control statement once it is recognized.
func (s *stmtState) add(tok string, offset int) (keywords string, found bool) {
	switch tok {
	case ";":
		if s.depth == 0 {
			if s.body {
				s.inner = 0
			} else {
				*s = stmtState{}
			}
			return "", false
		}
	case "(":
		s.depth++
	case ")":
		if s.depth > 0 {
			s.depth--
		}
	}
	word := ""
	if isWordStart(tok[0]) {
		word = strings.ToUpper(tok)
	}
	if s.body {
		if s.inner == 0 && s.depth == 0 && word == "END" {
			s.body = false
		} else {
			s.inner++
		}
		return "", false
	}
	s.tokens++
	switch s.tokens {
	case 1:
		s.start, s.first, s.heading = offset, word, 1
		switch word {
		case "BEGIN", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE":
			return word, true
		}
		return "", false
	case 2:
		if (s.first == "START" || s.first == "PREPARE") && word == "TRANSACTION" {
			return s.first + " " + word, true
		}
	}
	switch {
	case s.first != "CREATE":
	case s.routine:
		if s.depth == 0 && word == "BEGIN" {
			s.body, s.inner = true, 0
		}
	case s.tokens == s.heading+1:
		// CREATE [OR REPLACE] [TEMP | TEMPORARY | CONSTRAINT] TRIGGER …
		switch word {
		case "OR", "REPLACE", "TEMP", "TEMPORARY", "CONSTRAINT":
			s.heading++
		case "TRIGGER", "FUNCTION", "PROCEDURE":
			s.routine = true
		}
	}
	return "", false
}

// nextToken skips the white space and comments at script[i:] and returns
// the token that follows, with the offsets of its first byte and just past
// it: a word, a number, a whole string, quoted identifier or dollar-quoted
// string, or one other byte. At the end of script start equals next.
func nextToken(d Dialect, q string, i int) (tok string, start, next int) {
	for i < len(q) {
		switch c := q[i]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			i = skipLineComment(q, i+2)
		case c == '/' && i+1 < len(q) && q[i+1] == '*':
			if d == Postgres {
				i = skipBlockComment(q, i+2)
			} else {
				i = skipFlatComment(q, i+2)
			}
		default:
			j := tokenEnd(d, q, i)
			return q[i:j], i, j
		}
	}
	return "", i, i
}

// tokenEnd returns the index just past the token that starts at q[i],
// which is neither white space nor a comment.
func tokenEnd(d Dialect, q string, i int) int {
	c := q[i]
	switch {
	case isWordStart(c) || isDigit(c):
		j := i + 1
		for j < len(q) && identByte(q[j]) {
			j++
		}
		return j
	case c == '\'' || c == '"':
		if d == Postgres {
			return skipToken(q, i) // E'…' strings take backslash escapes
		}
		return skipQuoted(q, i+1, c, false)
	case c == '`' && d != Postgres:
		return skipQuoted(q, i+1, '`', false)
	case c == '[' && d != Postgres:
		if end := strings.IndexByte(q[i+1:], ']'); end >= 0 {
			return i + 1 + end + 1
		}
		return len(q)
	case c == '$' && d == Postgres:
		return skipDollarQuoted(q, i)
	}
	return i + 1
}

// skipFlatComment returns the index just past the */ that closes a comment
// whose body starts at i, without nesting, as SQLite reads comments.
func skipFlatComment(q string, i int) int {
	if end := strings.Index(q[i:], "*/"); end >= 0 {
		return i + end + 2
	}
	return len(q)
}

// isWordStart reports whether c starts a keyword or unquoted identifier.
func isWordStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// RoleControl reports the first statement of script that changes the
// session's role or authorization: SET [SESSION | LOCAL] ROLE, RESET ROLE,
// SET [SESSION | LOCAL] SESSION AUTHORIZATION, RESET SESSION
// AUTHORIZATION and RESET ALL, with its keywords and byte offset. Text in
// strings, comments and dollar-quoted bodies is not looked into: SQL that
// a function or a DO block runs (EXECUTE, set_config) is not found.
func RoleControl(d Dialect, script string) (keywords string, offset int, ok bool) {
	var words []string
	start, depth := -1, 0
	for i := 0; ; {
		tok, s, next := nextToken(d, script, i)
		if next == s {
			return "", 0, false
		}
		i = next
		switch tok {
		case ";":
			if depth == 0 {
				words, start = words[:0], -1
			}
			continue
		case "(":
			depth++
		case ")":
			if depth > 0 {
				depth--
			}
		}
		if start < 0 {
			start = s
		}
		if len(words) >= 4 {
			continue
		}
		w := ""
		if isWordStart(tok[0]) {
			w = strings.ToUpper(tok)
		}
		words = append(words, w)
		if kw := roleStatement(words); kw != "" {
			return kw, start, true
		}
	}
}

// roleStatement names the role statement that the first words of a
// statement begin, or "".
func roleStatement(w []string) string {
	if len(w) < 2 || (w[0] != "SET" && w[0] != "RESET") {
		return ""
	}
	n := 1 // the words before ROLE or SESSION AUTHORIZATION
	if w[0] == "SET" && (w[1] == "LOCAL" || w[1] == "SESSION") {
		if len(w) < 3 {
			return ""
		}
		if w[1] == "LOCAL" || w[2] == "ROLE" {
			n = 2
		}
	}
	switch {
	case w[0] == "RESET" && w[1] == "ALL":
		return "RESET ALL"
	case w[n] == "ROLE":
		return strings.Join(w[:n+1], " ")
	case w[n] == "SESSION" && len(w) > n+1 && w[n+1] == "AUTHORIZATION":
		return strings.Join(w[:n+2], " ")
	}
	return ""
}
