package sqlgen

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// canonTable is the canonical form of a resolved table. Optional fields are
// omitted when unset, so that a field added in a later version does not
// change the checksum of tables that do not use it.
type canonTable struct {
	Name       string        `json:"name"`
	Columns    []canonColumn `json:"columns"`
	PrimaryKey []string      `json:"primary_key,omitempty"`
	Indexes    []canonIndex  `json:"indexes,omitempty"`
}

type canonColumn struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	NotNull    bool            `json:"not_null,omitempty"`
	Unique     bool            `json:"unique,omitempty"`
	Default    json.RawMessage `json:"default,omitempty"`
	DefaultNow bool            `json:"default_now,omitempty"`
	References string          `json:"references,omitempty"`
	OnDelete   string          `json:"on_delete,omitempty"`
}

type canonIndex struct {
	Columns []string `json:"columns"`
	Unique  bool     `json:"unique,omitempty"`
}

// canonical returns the canonical JSON of a resolved table and its hex
// SHA-256. Columns keep their declaration order; indexes are sorted, since
// their order means nothing; names are declared names, not physical ones.
func canonical(t *Resolved) (string, string) {
	ct := canonTable{Name: t.Name, PrimaryKey: t.PrimaryKey}
	for _, c := range t.Columns {
		cc := canonColumn{
			Name: c.Name, Type: c.Type, NotNull: c.NotNull, Unique: c.Unique,
			DefaultNow: c.DefaultNow, OnDelete: c.OnDelete,
		}
		if c.Default != nil {
			cc.Default = mustJSON(c.Default)
		}
		if c.References != nil {
			cc.References = c.References.Table + "." + c.References.Column
		}
		ct.Columns = append(ct.Columns, cc)
	}
	for _, ix := range t.Indexes {
		ct.Indexes = append(ct.Indexes, canonIndex{Columns: ix.Columns, Unique: ix.Unique})
	}
	slices.SortFunc(ct.Indexes, func(a, b canonIndex) int {
		if c := slices.Compare(a.Columns, b.Columns); c != 0 {
			return c
		}
		return boolCompare(a.Unique, b.Unique)
	})
	s := string(mustJSON(ct))
	sum := sha256.Sum256([]byte(s))
	return s, hex.EncodeToString(sum[:])
}

func boolCompare(a, b bool) int {
	switch {
	case a == b:
		return 0
	case b:
		return -1
	default:
		return 1
	}
}

// mustJSON encodes v without HTML escaping; v is always encodable.
func mustJSON(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("sqlgen: " + err.Error())
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// Diff describes what changed from one canonical definition (see
// [Resolved.Canonical]) to another, as a short list separated by "; ", e.g.
// `column "body" added; column "title": not null false → true; column "rank"
// removed; index (a, b) added; primary key (id) → (id, version)`. It
// returns "" when they are equal, and a general description when either
// cannot be read.
func Diff(oldCanonical, newCanonical string) string {
	if oldCanonical == newCanonical {
		return ""
	}
	var o, n canonTable
	if err := json.Unmarshal([]byte(oldCanonical), &o); err != nil {
		return fmt.Sprintf("definition changed (the old definition cannot be read: %v)", err)
	}
	if err := json.Unmarshal([]byte(newCanonical), &n); err != nil {
		return fmt.Sprintf("definition changed (the new definition cannot be read: %v)", err)
	}
	var parts []string
	if o.Name != n.Name {
		parts = append(parts, fmt.Sprintf("table name %q → %q", o.Name, n.Name))
	}
	parts = append(parts, columnsDiff(o.Columns, n.Columns)...)
	parts = append(parts, indexesDiff(o.Indexes, n.Indexes)...)
	if !slices.Equal(o.PrimaryKey, n.PrimaryKey) {
		parts = append(parts, fmt.Sprintf("primary key %s → %s", list(o.PrimaryKey), list(n.PrimaryKey)))
	}
	if len(parts) == 0 {
		return "definition changed (only in form)"
	}
	return strings.Join(parts, "; ")
}

// columnsDiff lists the columns added, changed and removed, and a change of
// the order of the columns kept.
func columnsDiff(o, n []canonColumn) []string {
	var parts []string
	oldCols := make(map[string]canonColumn, len(o))
	for _, c := range o {
		oldCols[c.Name] = c
	}
	newCols := make(map[string]bool, len(n))
	var oldOrder, newOrder []string
	for _, c := range n {
		newCols[c.Name] = true
		oc, ok := oldCols[c.Name]
		if !ok {
			parts = append(parts, fmt.Sprintf("column %q added", c.Name))
			continue
		}
		newOrder = append(newOrder, c.Name)
		parts = append(parts, columnChanges(oc, c)...)
	}
	for _, c := range o {
		if !newCols[c.Name] {
			parts = append(parts, fmt.Sprintf("column %q removed", c.Name))
		} else {
			oldOrder = append(oldOrder, c.Name)
		}
	}
	if !slices.Equal(oldOrder, newOrder) {
		parts = append(parts, fmt.Sprintf("column order %s → %s", list(oldOrder), list(newOrder)))
	}
	return parts
}

// indexesDiff lists the indexes removed and added.
func indexesDiff(o, n []canonIndex) []string {
	var parts []string
	for _, ix := range o {
		if !slices.ContainsFunc(n, ix.equal) {
			parts = append(parts, indexLabel(ix.Columns, ix.Unique)+" removed")
		}
	}
	for _, ix := range n {
		if !slices.ContainsFunc(o, ix.equal) {
			parts = append(parts, indexLabel(ix.Columns, ix.Unique)+" added")
		}
	}
	return parts
}

func (ix canonIndex) equal(other canonIndex) bool {
	return ix.Unique == other.Unique && slices.Equal(ix.Columns, other.Columns)
}

// columnChanges lists the changed properties of a column.
func columnChanges(o, n canonColumn) []string {
	var parts []string
	add := func(what, from, to string) {
		if from != to {
			parts = append(parts, fmt.Sprintf("column %q: %s %s → %s", n.Name, what, from, to))
		}
	}
	add("type", o.Type, n.Type)
	add("not null", fmt.Sprint(o.NotNull), fmt.Sprint(n.NotNull))
	add("unique", fmt.Sprint(o.Unique), fmt.Sprint(n.Unique))
	add("default", orNone(string(o.Default)), orNone(string(n.Default)))
	add("default now", fmt.Sprint(o.DefaultNow), fmt.Sprint(n.DefaultNow))
	add("references", orNone(o.References), orNone(n.References))
	add("on delete", orNone(o.OnDelete), orNone(n.OnDelete))
	return parts
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// list renders names as "(a, b)", or "none" when there are none.
func list(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return "(" + strings.Join(names, ", ") + ")"
}
