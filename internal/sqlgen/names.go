package sqlgen

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/pluginhost/pluginhost/internal/pluginid"
)

// systemColumns are PostgreSQL's system column names; a user column with one
// of these names is rejected by CREATE TABLE.
var systemColumns = map[string]bool{
	"tableoid": true, "xmin": true, "cmin": true, "xmax": true, "cmax": true, "ctid": true,
	"oid": true, // a system column before PostgreSQL 12
}

// nameProblem returns what is wrong with a declared table or column name, or
// "" when it is valid: ^[a-z][a-z0-9]*(_[a-z0-9]+)*$ and at most
// [MaxIdentifier] bytes.
func nameProblem(s string) string {
	switch {
	case s == "":
		return "name is empty"
	case len(s) > MaxIdentifier:
		return fmt.Sprintf("name is %d bytes, over the limit of %d", len(s), MaxIdentifier)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		case c == '_' && i > 0 && i < len(s)-1 && s[i-1] != '_':
		default:
			return "invalid name: use lowercase letters, digits and single underscores, starting with a letter"
		}
	}
	return ""
}

// ValidName reports whether s is a valid declared name of the given kind,
// "table" or "column": lowercase letters, digits and single underscores,
// starting with a letter (^[a-z][a-z0-9]*(_[a-z0-9]+)*$), at most 63 bytes.
// Column names that PostgreSQL reserves for system columns (xmin, ctid, …)
// are rejected too. The error names the kind and s, e.g.
// `column "Title": invalid name: use lowercase letters, …`.
func ValidName(kind, s string) error {
	p := nameProblem(s)
	if kind == "column" {
		p = columnProblem(s)
	}
	if p != "" {
		return fmt.Errorf("%s %q: %s", kind, s, p)
	}
	return nil
}

// columnProblem is nameProblem plus the check for PostgreSQL's system
// column names.
func columnProblem(s string) string {
	if systemColumns[s] {
		return "name is reserved by PostgreSQL for a system column"
	}
	return nameProblem(s)
}

// Quote returns ident as a double-quoted SQL identifier, with any double
// quote doubled. Every identifier in generated SQL goes through Quote, even
// though validated names never need it.
func Quote(ident string) string {
	return `"` + strings.ReplaceAll(ident, `"`, `""`) + `"`
}

// PluginPrefix returns the physical table prefix of a plugin: its id with
// "-" replaced by "_", followed by "__" ("my-plugin" → "my_plugin__"). The
// id is expected to be a valid slug (lowercase letters, digits and single
// hyphens, starting with a letter, at most [pluginid.MaxLen] bytes); [Build]
// and [PhysicalTable] reject the prefix of any other id.
func PluginPrefix(pluginID string) string {
	return strings.ReplaceAll(pluginID, "-", "_") + "__"
}

// prefixProblem returns what is wrong with a table prefix, or "". A prefix
// is "", a plugin prefix ("<name>__" from [PluginPrefix]) or, for the host's
// own tables, "<name>_". In every case prefix+table contains "__" exactly
// when the prefix is a plugin's, and then the first "__" ends the prefix.
func prefixProblem(prefix string) string {
	if prefix == "" {
		return ""
	}
	var base string
	switch {
	case strings.HasSuffix(prefix, "__"):
		base = strings.TrimSuffix(prefix, "__")
		if len(base) > pluginid.MaxLen {
			return fmt.Sprintf("invalid table prefix %q: the plugin id is %d bytes, over the limit of %d", prefix, len(base), pluginid.MaxLen)
		}
	case strings.HasSuffix(prefix, "_"):
		base = strings.TrimSuffix(prefix, "_")
	}
	if base == "" || nameProblem(base) != "" {
		return fmt.Sprintf(`invalid table prefix %q: want "", a plugin id with "-" replaced by "_" followed by "__", or a name followed by "_"`, prefix)
	}
	return ""
}

// PhysicalTable returns prefix+table after checking both: the prefix must be
// "", a [PluginPrefix] or a name followed by "_"; table must be a valid
// name; and the result must fit PostgreSQL's 63-byte identifier limit.
func PhysicalTable(prefix, table string) (string, error) {
	if p := prefixProblem(prefix); p != "" {
		return "", &Error{Table: table, Err: errors.New(p)}
	}
	if p := nameProblem(table); p != "" {
		return "", &Error{Table: table, Err: errors.New(p)}
	}
	phys := prefix + table
	if len(phys) > MaxIdentifier {
		return "", &Error{Table: table, Err: fmt.Errorf(
			"physical name %q is %d bytes, over PostgreSQL's limit of %d; shorten the table name or the plugin id",
			phys, len(phys), MaxIdentifier)}
	}
	return phys, nil
}

// SplitPhysical splits a plugin table's physical name at its first "__"
// into the plugin id (with "-" still replaced by "_") and the declared
// table name. ok is false when phys is not of that form, such as the name of
// a host table or an index. It inverts PluginPrefix(id)+table for every
// valid id and table: the id part is a name, so it neither contains "__"
// nor ends in "_", and the table part starts with a letter, so the first
// "__" is exactly where the prefix ends.
func SplitPhysical(phys string) (idUnderscored, table string, ok bool) {
	i := strings.Index(phys, "__")
	if i < 0 {
		return "", "", false
	}
	id, table := phys[:i], phys[i+2:]
	if len(id) > pluginid.MaxLen || nameProblem(id) != "" || nameProblem(table) != "" {
		return "", "", false
	}
	return id, table, true
}

// InferType returns the type of a column declared without one, by
// DeployStack's documented rule applied to the exact name and suffix, never
// to a substring: "id" and "count" are integer; a name ending in "_at" or
// "date" is timestamp; anything else is text. So "message", "account_id"
// and "discount" are text, and "updated_at" and "birthdate" are timestamp.
func InferType(column string) string {
	switch {
	case column == "id" || column == "count":
		return TypeInteger
	case strings.HasSuffix(column, "_at") || strings.HasSuffix(column, "date"):
		return TypeTimestamp
	default:
		return TypeText
	}
}

// IndexName returns the name of an index of the table with the given
// physical name: "<physical>__ix_<col>__<col>…" ("__ux_" when unique), with
// the columns joined by "__" so that (a, b) and (a_b) differ. When that is
// longer than 63 bytes it is "<physical, truncated>__ix_<hash>", where hash
// is the first 8 hex digits of the SHA-256 of the physical name and the
// columns. An index name contains a second "__", which no table's physical
// name does.
func IndexName(physical string, columns []string, unique bool) string {
	tag := "__ix_"
	if unique {
		tag = "__ux_"
	}
	name := physical + tag + strings.Join(columns, "__")
	if len(name) <= MaxIdentifier {
		return name
	}
	sum := sha256.Sum256([]byte(physical + "\x00" + strings.Join(columns, "\x00")))
	suffix := tag + hex.EncodeToString(sum[:4])
	keep := min(len(physical), MaxIdentifier-len(suffix))
	return strings.TrimRight(physical[:keep], "_") + suffix
}

// pgObjectName mirrors PostgreSQL's makeObjectName (indexcmds.c), which
// names the relations CREATE TABLE creates implicitly: "<table>_pkey",
// "<table>_<col>_key" and "<table>_<col>_seq", truncating the longer of
// name1 and name2 first so that the result fits 63 bytes. name2 may be "".
func pgObjectName(name1, name2, label string) string {
	overhead := len(label) + 1
	if name2 != "" {
		overhead++
	}
	n1, n2 := len(name1), len(name2)
	for n1+n2 > MaxIdentifier-overhead {
		if n1 > n2 {
			n1--
		} else {
			n2--
		}
	}
	name := name1[:n1]
	if name2 != "" {
		name += "_" + name2[:n2]
	}
	return name + "_" + label
}
