package pluginhost

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pluginhost/pluginhost/internal/migrate"
	"github.com/pluginhost/pluginhost/internal/sqlgen"
)

// Export writes every row of plugin id's tables to w as JSON lines, one
// object per row with the table's declared name (without the plugin's
// prefix):
//
//	{"table":"notes","row":{"id":1,"title":"x","created_at":"2024-05-01T10:00:00Z"}}
//
// The tables are those with the plugin's prefix (those its migrations
// created included), in the order they were created; the rows of each
// are in primary key order (in the order of all the columns for a table
// without one; text compared byte by byte, NULL before any value, on both
// dialects), and the columns in the table's order. Values are typed by
// the column's declared type (or, for a column the declaration does not
// know, the database's), the same way on both dialects: integers and
// reals as JSON numbers, booleans as true and false, text as strings,
// timestamps as RFC 3339 strings in UTC, json columns as the JSON value
// itself, blobs as base64 strings, NULL as null.
//
// Export reads in one read-only transaction, so that the rows agree with
// each other, and streams them: no table is held in memory. On SQLite
// outside WAL mode, writers wait for it to end. It works for a registered
// plugin (running or not) and for a removed one (see StateRemoved); a
// registered plugin without tables writes nothing. For an id neither
// registered nor recorded in the database it returns an error wrapping
// ErrNotFound, having written nothing. An error while writing leaves w
// with the lines written before it.
func (m *Manager) Export(ctx context.Context, id string, w io.Writer) (err error) {
	if validateID(id) != nil {
		return fmt.Errorf("%w: no plugin %q", ErrNotFound, id)
	}
	fail := func(err error) error { return fmt.Errorf("pluginhost: export plugin %q: %w", id, err) }
	var opts *sql.TxOptions
	if m.cfg.Dialect == Postgres {
		opts = &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
	}
	stx, err := m.cfg.DB.BeginTx(ctx, opts)
	if err != nil {
		return fail(err)
	}
	defer func() { _ = stx.Rollback() }()
	tx := &Tx{tx: stx, db: m.db}

	rels, err := pluginRelations(ctx, tx, m.cfg.Dialect, id)
	if err != nil {
		return fail(err)
	}
	var tables []relation
	for _, r := range rels {
		if r.kind == "table" {
			tables = append(tables, r)
		}
	}
	registered := m.plugins.get(id) != nil
	decls, recorded, err := declaredTables(ctx, tx, id)
	if err != nil && !registered {
		return fail(err)
	}
	if len(tables) == 0 && !registered && !recorded {
		return fmt.Errorf("%w: no plugin %q: it is not registered, and the database records nothing of it", ErrNotFound, id)
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	e := &exporter{tx: tx, dialect: m.cfg.Dialect, w: bw}
	for _, t := range tables {
		if err := e.table(ctx, t, decls[t.table]); err != nil {
			return fail(fmt.Errorf("table %q: %w", t.table, err))
		}
	}
	if err := bw.Flush(); err != nil {
		return fail(err)
	}
	return stx.Commit()
}

// tableDecl is what the ledger says of a declared table: its canonical
// definition, as sqlgen wrote it.
type tableDecl struct {
	Columns []struct {
		Name string `json:"name"`
		Type string `json:"type"`
	} `json:"columns"`
	PrimaryKey []string `json:"primary_key"`
}

// declaredTables reads the definitions of plugin id's declared tables from
// the ledger, by declared name, and reports whether the ledger has rows of
// the plugin at all.
func declaredTables(ctx context.Context, tx *Tx, id string) (map[string]*tableDecl, bool, error) {
	rows, err := tx.QueryContext(ctx, `SELECT version, definition FROM `+migrate.LedgerTable+` WHERE line = ?`, id)
	if err != nil {
		return nil, false, fmt.Errorf("read the ledger: %w", err)
	}
	defer rows.Close()
	out := map[string]*tableDecl{}
	recorded := false
	for rows.Next() {
		recorded = true
		var version, def string
		if err := rows.Scan(&version, &def); err != nil {
			return nil, false, fmt.Errorf("read the ledger: %w", err)
		}
		name, ok := strings.CutPrefix(version, tableVersionPrefix)
		if !ok || def == "" {
			continue
		}
		d := &tableDecl{}
		if json.Unmarshal([]byte(def), d) == nil {
			out[name] = d
		}
	}
	return out, recorded, rows.Err()
}

// exporter writes the rows of tables as JSON lines.
type exporter struct {
	tx      *Tx
	dialect Dialect
	w       *bufio.Writer
	line    bytes.Buffer
	enc     *json.Encoder // on line
}

// column is a column of an exported table.
type column struct {
	name   string
	kind   string // a sqlgen type: how its values are written
	dbType string // the database's type name, upper case
}

// table writes the rows of t, whose declaration is decl when the ledger
// has one.
func (e *exporter) table(ctx context.Context, t relation, decl *tableDecl) error {
	cols, err := e.columns(ctx, t, decl)
	if err != nil {
		return err
	}
	order, err := e.primaryKey(ctx, t, decl)
	if err != nil {
		return err
	}
	if len(order) == 0 {
		for _, c := range cols {
			order = append(order, c.name)
		}
	}
	byName := map[string]column{}
	names := make([]string, len(cols))
	for i, c := range cols {
		byName[c.name] = c
		names[i] = sqlgen.Quote(c.name)
	}
	keys := make([]string, len(order))
	for i, name := range order {
		keys[i] = sqlgen.Quote(name)
		if e.dialect == Postgres {
			if isPGText(byName[name].dbType) {
				keys[i] += ` COLLATE "C"` // byte order, as SQLite compares
			}
			keys[i] += ` NULLS FIRST` // as SQLite orders them
		}
	}
	rows, err := e.tx.QueryContext(ctx, `SELECT `+strings.Join(names, ", ")+` FROM `+sqlgen.Quote(t.name)+` ORDER BY `+strings.Join(keys, ", "))
	if err != nil {
		return err
	}
	defer rows.Close()
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	tableName, _ := json.Marshal(t.table)
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		if err := e.row(tableName, cols, vals); err != nil {
			return err
		}
	}
	return rows.Err()
}

// row writes one line.
func (e *exporter) row(table []byte, cols []column, vals []any) error {
	if e.enc == nil {
		e.enc = json.NewEncoder(&e.line)
		e.enc.SetEscapeHTML(false)
	}
	e.line.Reset()
	e.line.WriteString(`{"table":`)
	e.line.Write(table)
	e.line.WriteString(`,"row":{`)
	for i, c := range cols {
		if i > 0 {
			e.line.WriteByte(',')
		}
		if err := e.enc.Encode(c.name); err != nil {
			return err
		}
		e.line.Truncate(e.line.Len() - 1) // Encode's newline
		e.line.WriteByte(':')
		v, err := exportValue(c.kind, vals[i])
		if err != nil {
			return fmt.Errorf("column %q: %w", c.name, err)
		}
		if err := e.enc.Encode(v); err != nil {
			return fmt.Errorf("column %q: %w", c.name, err)
		}
		e.line.Truncate(e.line.Len() - 1)
	}
	e.line.WriteString("}}\n")
	_, err := e.w.Write(e.line.Bytes())
	return err
}

// columns returns t's columns, in the table's order.
func (e *exporter) columns(ctx context.Context, t relation, decl *tableDecl) ([]column, error) {
	rows, err := e.tx.QueryContext(ctx, `SELECT * FROM `+sqlgen.Quote(t.name)+` WHERE 1 = 0`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, err
	}
	declared := map[string]string{}
	if decl != nil {
		for _, c := range decl.Columns {
			declared[c.Name] = c.Type
		}
	}
	cols := make([]column, len(types))
	for i, ct := range types {
		c := column{name: ct.Name(), dbType: strings.ToUpper(ct.DatabaseTypeName())}
		if c.kind = declared[c.name]; c.kind == "" {
			c.kind = kindOf(c.dbType)
		}
		cols[i] = c
	}
	return cols, rows.Err()
}

// primaryKey returns the columns of t's primary key, in key order: the
// declaration's, else the catalog's.
func (e *exporter) primaryKey(ctx context.Context, t relation, decl *tableDecl) ([]string, error) {
	if decl != nil && len(decl.PrimaryKey) > 0 {
		return decl.PrimaryKey, nil
	}
	query := `SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk`
	arg := t.name
	if e.dialect == Postgres {
		query = `SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
			WHERE i.indrelid = ?::regclass AND i.indisprimary ORDER BY array_position(i.indkey::int2[], a.attnum)`
		arg = sqlgen.Quote(t.name)
	}
	rows, err := e.tx.QueryContext(ctx, query, arg)
	if err != nil {
		return nil, fmt.Errorf("read its primary key: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		out = append(out, name)
	}
	return out, rows.Err()
}

// kindOf returns the sqlgen type whose values are written like those of
// the database type dbType (upper case), for a column the declaration
// does not know.
func kindOf(dbType string) string {
	base, _, _ := strings.Cut(dbType, "(")
	switch strings.TrimSpace(base) {
	case "INTEGER", "INT", "INT2", "INT4", "INT8", "BIGINT", "SMALLINT", "SERIAL", "BIGSERIAL":
		return sqlgen.TypeInteger
	case "REAL", "FLOAT", "FLOAT4", "FLOAT8", "DOUBLE", "DOUBLE PRECISION":
		return sqlgen.TypeReal
	case "BOOL", "BOOLEAN":
		return sqlgen.TypeBoolean
	case "TIMESTAMP", "TIMESTAMPTZ", "DATETIME", "DATE":
		return sqlgen.TypeTimestamp
	case "JSON", "JSONB":
		return sqlgen.TypeJSON
	case "BLOB", "BYTEA":
		return sqlgen.TypeBlob
	}
	return sqlgen.TypeText
}

// isPGText reports whether a PostgreSQL type name is a collatable text
// type.
func isPGText(dbType string) bool {
	switch dbType {
	case "TEXT", "VARCHAR", "BPCHAR", "NAME", "CITEXT":
		return true
	}
	return false
}

// timestampLayouts are the layouts a timestamp stored as text on SQLite is
// read in, as go-sqlite3 writes and reads them.
var timestampLayouts = []string{
	"2006-01-02 15:04:05.999999999-07:00",
	"2006-01-02T15:04:05.999999999-07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05",
	"2006-01-02T15:04:05",
	"2006-01-02 15:04",
	"2006-01-02T15:04",
	"2006-01-02",
	time.RFC3339Nano,
}

// exportValue returns the JSON form of v, a value the driver scanned from a
// column whose values are written as kind says.
func exportValue(kind string, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	if b, ok := v.([]byte); ok && kind != sqlgen.TypeBlob {
		v = string(b) // text the driver returned as bytes
		if !utf8.ValidString(v.(string)) {
			return b, nil
		}
	}
	switch kind {
	case sqlgen.TypeBoolean:
		switch x := v.(type) {
		case int64:
			return x != 0, nil
		case bool:
			return x, nil
		}
	case sqlgen.TypeInteger, sqlgen.TypeReal:
		if f, ok := v.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
			return strconv.FormatFloat(f, 'g', -1, 64), nil
		}
	case sqlgen.TypeTimestamp:
		switch x := v.(type) {
		case time.Time:
			return x.UTC().Format(time.RFC3339Nano), nil
		case string:
			for _, layout := range timestampLayouts {
				if t, err := time.Parse(layout, x); err == nil {
					return t.UTC().Format(time.RFC3339Nano), nil
				}
			}
		}
	case sqlgen.TypeJSON:
		var text []byte
		switch x := v.(type) {
		case string:
			text = []byte(x)
		default:
			var err error
			if text, err = json.Marshal(x); err != nil {
				return nil, err
			}
		}
		if norm, err := normalJSON(text); err == nil {
			return norm, nil
		}
		return string(text), nil // not JSON (SQLite stores any text): as text
	case sqlgen.TypeBlob:
		if s, ok := v.(string); ok {
			return []byte(s), nil
		}
	}
	if t, ok := v.(time.Time); ok {
		return t.UTC().Format(time.RFC3339Nano), nil
	}
	return v, nil
}

// normalJSON re-encodes a JSON text with sorted object keys and no
// insignificant space, numbers as written: the same for SQLite's text and
// PostgreSQL's jsonb.
func normalJSON(text []byte) (json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("not JSON: text after the value")
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(x); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
