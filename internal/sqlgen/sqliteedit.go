package sqlgen

import (
	"fmt"
	"slices"
	"strings"
)

// Edit is a change to one column of an SQLite table that leaves the rows
// on disk as they are, made by rewriting the table's CREATE TABLE statement
// in sqlite_schema under PRAGMA writable_schema, as
// sqlite.org/lang_altertable.html (section 8, "making other kinds of table
// schema changes") documents for removing a NOT NULL constraint and for
// adding, removing or changing a default. [EditCreateTable] applies it to
// the statement's text.
type Edit struct {
	// Column is the column's name.
	Column string
	// DropNotNull removes the column's NOT NULL constraint.
	DropNotNull bool
	// SetDefault replaces the column's DEFAULT clause with Default, an SQL
	// expression, or removes it when Default is "".
	SetDefault bool
	Default    string
	// Append is a column constraint to add, such as a REFERENCES clause.
	Append string
}

// String describes the edit for a log line or an error.
func (e Edit) String() string {
	var parts []string
	if e.DropNotNull {
		parts = append(parts, "drop NOT NULL")
	}
	if e.SetDefault && e.Default == "" {
		parts = append(parts, "drop DEFAULT")
	} else if e.SetDefault {
		parts = append(parts, "DEFAULT "+e.Default)
	}
	if e.Append != "" {
		parts = append(parts, "add"+e.Append)
	}
	return fmt.Sprintf("column %s: %s", Quote(e.Column), strings.Join(parts, ", "))
}

// sqlToken is a token of an SQLite statement: its text and byte offsets.
type sqlToken struct {
	text       string
	start, end int
}

// sqliteTokens splits an SQLite statement into tokens, skipping blanks
// and comments: words, numbers (1.5 and 1e-05 included), quoted strings
// and identifiers ('…', "…", `…`, […]) and single punctuation characters.
func sqliteTokens(q string) ([]sqlToken, error) {
	var toks []sqlToken
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			i++
			continue
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			for i < len(q) && q[i] != '\n' {
				i++
			}
			continue
		case c == '/' && i+1 < len(q) && q[i+1] == '*':
			end := strings.Index(q[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("unterminated comment at byte %d", i)
			}
			i += end + 4
			continue
		}
		start := i
		switch {
		case c == '\'' || c == '"' || c == '`':
			i++
			for {
				if i >= len(q) {
					return nil, fmt.Errorf("unterminated quote at byte %d", start)
				}
				if q[i] == c {
					if i+1 < len(q) && q[i+1] == c {
						i += 2
						continue
					}
					i++
					break
				}
				i++
			}
		case c == '[':
			end := strings.IndexByte(q[i:], ']')
			if end < 0 {
				return nil, fmt.Errorf("unterminated bracket at byte %d", i)
			}
			i += end + 1
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(q) && q[i+1] >= '0' && q[i+1] <= '9':
			// A numeric literal is one token: 1.5, .5, 1e-05, 0x1F.
			hex := c == '0' && i+1 < len(q) && (q[i+1] == 'x' || q[i+1] == 'X')
			for i < len(q) && (isWordByte(q[i]) || q[i] == '.') {
				i++
				if !hex && i+1 < len(q) && (q[i-1] == 'e' || q[i-1] == 'E') && (q[i] == '+' || q[i] == '-') {
					i++
				}
			}
		case isWordByte(c):
			for i < len(q) && isWordByte(q[i]) {
				i++
			}
		default:
			i++
		}
		toks = append(toks, sqlToken{q[start:i], start, i})
	}
	return toks, nil
}

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// unquoteIdent returns an identifier token's name.
func unquoteIdent(tok string) string {
	if len(tok) >= 2 {
		switch q := tok[0]; q {
		case '"', '`', '\'':
			return strings.ReplaceAll(tok[1:len(tok)-1], string(q)+string(q), string(q))
		case '[':
			return tok[1 : len(tok)-1]
		}
	}
	return tok
}

// tableConstraintWords start a table constraint rather than a column
// definition in a CREATE TABLE's list.
var tableConstraintWords = map[string]bool{"CONSTRAINT": true, "PRIMARY": true, "UNIQUE": true, "CHECK": true, "FOREIGN": true}

// columnDef returns the tokens of the named column's definition in an
// SQLite CREATE TABLE statement, its name included.
func columnDef(toks []sqlToken, column string) ([]sqlToken, error) {
	open := -1
	for i, t := range toks {
		if t.text == "(" {
			open = i
			break
		}
	}
	if open < 0 {
		return nil, fmt.Errorf("no column list")
	}
	depth, itemStart := 0, open+1
	for i := open + 1; i < len(toks); i++ {
		switch toks[i].text {
		case "(":
			depth++
			continue
		case ")":
			if depth > 0 {
				depth--
				continue
			}
		case ",":
			if depth > 0 {
				continue
			}
		default:
			continue
		}
		item := toks[itemStart:i]
		if len(item) > 0 && !tableConstraintWords[strings.ToUpper(item[0].text)] && strings.EqualFold(unquoteIdent(item[0].text), column) {
			return item, nil
		}
		if toks[i].text == ")" {
			break
		}
		itemStart = i + 1
	}
	return nil, fmt.Errorf("no column %s", Quote(column))
}

// EditCreateTable applies e to an SQLite CREATE TABLE statement and
// returns the new statement, and whether it changed: an edit that finds
// nothing to do (no NOT NULL to drop, the same default) changes nothing.
// Only the column's own constraints at its top level are touched; text in
// a CHECK, a string or a comment is left alone.
func EditCreateTable(stmt string, e Edit) (string, bool, error) {
	toks, err := sqliteTokens(stmt)
	if err != nil {
		return "", false, fmt.Errorf("read the CREATE TABLE statement: %w", err)
	}
	def, err := columnDef(toks, e.Column)
	if err != nil {
		return "", false, fmt.Errorf("read the CREATE TABLE statement: %w", err)
	}
	type span struct{ start, end int } // byte offsets to cut
	var cuts []span
	var defaultSpan *span
	current := "" // the default expression found
	depth := 0
	for i := 1; i < len(def); i++ {
		switch def[i].text {
		case "(":
			depth++
			continue
		case ")":
			depth--
			continue
		}
		if depth > 0 {
			continue
		}
		word := strings.ToUpper(def[i].text)
		from := i
		if from >= 2 && strings.EqualFold(def[from-2].text, "CONSTRAINT") {
			from -= 2
		}
		switch {
		case e.DropNotNull && word == "NOT" && i+1 < len(def) && strings.EqualFold(def[i+1].text, "NULL"):
			to := i + 1
			if to+3 < len(def) && strings.EqualFold(def[to+1].text, "ON") && strings.EqualFold(def[to+2].text, "CONFLICT") {
				to += 3
			}
			cuts = append(cuts, span{def[from].start, def[to].end})
			i = to
		case word == "DEFAULT" && i+1 < len(def):
			to := i + 1
			if def[to].text == "-" || def[to].text == "+" {
				to++
			}
			if to < len(def) && def[to].text == "(" {
				for d := 0; to < len(def); to++ {
					if def[to].text == "(" {
						d++
					} else if def[to].text == ")" {
						if d--; d == 0 {
							break
						}
					}
				}
			}
			if to >= len(def) {
				return "", false, fmt.Errorf("read the CREATE TABLE statement: column %s: unterminated DEFAULT", Quote(e.Column))
			}
			current = stmt[def[i+1].start:def[to].end]
			defaultSpan = &span{def[from].start, def[to].end}
			i = to
		}
	}
	appendDefault := false
	if e.SetDefault && current != e.Default {
		if defaultSpan != nil {
			cuts = append(cuts, *defaultSpan)
			slices.SortFunc(cuts, func(a, b span) int { return a.start - b.start })
		}
		appendDefault = e.Default != ""
	}
	if len(cuts) == 0 && !appendDefault && e.Append == "" {
		return stmt, false, nil
	}
	var b strings.Builder
	last := 0
	for _, c := range cuts {
		b.WriteString(strings.TrimRight(stmt[last:c.start], " \t"))
		last = c.end
	}
	end := def[len(def)-1].end
	if last > end {
		end = last
	}
	b.WriteString(stmt[last:end])
	if appendDefault {
		b.WriteString(" DEFAULT ")
		b.WriteString(e.Default)
	}
	b.WriteString(e.Append)
	b.WriteString(stmt[end:])
	return b.String(), true, nil
}
