package pluginhost

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/pluginhost/pluginhost/internal/sqlgen"
)

// Introspection: a table as the database's catalog shows it, for the
// schema evolution (schema_evolve.go). It only reads: PRAGMA table_info,
// index_list, index_info and foreign_key_list on SQLite, pg_catalog on
// PostgreSQL. On PostgreSQL it runs in the plugin's sandbox, as its role,
// which owns the tables it reads; on SQLite as the host.

// introspectTable reads the table with physical name phys on q; nil when
// it does not exist.
func introspectTable(ctx context.Context, q queryer, d Dialect, phys string) (*sqlgen.ActualTable, error) {
	var t *sqlgen.ActualTable
	var err error
	if d == Postgres {
		t, err = introspectPG(ctx, q, phys)
	} else {
		t, err = introspectSQLite(ctx, q, phys)
	}
	if err != nil {
		return nil, fmt.Errorf("read the catalog of table %s: %w", phys, err)
	}
	return t, nil
}

// scanRows runs query and calls fn for each row with dest filled.
func scanRows(ctx context.Context, q queryer, query string, args []any, dest []any, fn func() error) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		if err := fn(); err != nil {
			return err
		}
	}
	return rows.Err()
}

func introspectSQLite(ctx context.Context, q queryer, phys string) (*sqlgen.ActualTable, error) {
	t := &sqlgen.ActualTable{Physical: phys}
	qt := sqlgen.Quote(phys)
	var (
		cid, notNull, pk int
		name, typ        string
		dflt             sql.NullString
	)
	type keyCol struct {
		name string
		pos  int
	}
	var keys []keyCol
	err := scanRows(ctx, q, `PRAGMA table_info(`+qt+`)`, nil, []any{&cid, &name, &typ, &notNull, &dflt, &pk}, func() error {
		t.Columns = append(t.Columns, sqlgen.ActualColumn{Name: name, Type: typ, NotNull: notNull != 0, Default: dflt.String})
		if pk > 0 {
			keys = append(keys, keyCol{name, pk})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(t.Columns) == 0 {
		return nil, nil // no such table
	}
	slices.SortFunc(keys, func(a, b keyCol) int { return a.pos - b.pos })
	for _, k := range keys {
		t.PrimaryKey = append(t.PrimaryKey, k.name)
	}
	var (
		seq, unique, partial int
		ixName, origin       string
	)
	var indexes []sqlgen.ActualIndex
	err = scanRows(ctx, q, `PRAGMA index_list(`+qt+`)`, nil, []any{&seq, &ixName, &unique, &origin, &partial}, func() error {
		indexes = append(indexes, sqlgen.ActualIndex{Name: ixName, Unique: unique != 0, Constraint: origin != "c", Partial: partial != 0})
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i := range indexes {
		ix := &indexes[i]
		var seqno, colID int
		var col sql.NullString
		err := scanRows(ctx, q, `PRAGMA index_info(`+sqlgen.Quote(ix.Name)+`)`, nil, []any{&seqno, &colID, &col}, func() error {
			if !col.Valid {
				ix.Partial = true // an expression
			}
			ix.Columns = append(ix.Columns, col.String)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	t.Indexes = indexes
	var (
		id, fseq                               int
		refTable, from, to, onUpdate, onDelete string
		match                                  string
		to2                                    sql.NullString
	)
	counts := map[int]int{}
	type fk struct {
		id   int
		from string
		ref  sqlgen.ActualReference
	}
	var fks []fk
	err = scanRows(ctx, q, `PRAGMA foreign_key_list(`+qt+`)`, nil, []any{&id, &fseq, &refTable, &from, &to2, &onUpdate, &onDelete, &match}, func() error {
		counts[id]++
		to = to2.String
		fks = append(fks, fk{id, from, sqlgen.ActualReference{Table: refTable, Column: to, OnDelete: onDeleteAction(onDelete)}})
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, f := range fks {
		if counts[f.id] != 1 {
			continue // a composite key: no declared column's
		}
		if c := t.Column(f.from); c != nil {
			ref := f.ref
			if ref.Column == "" {
				// REFERENCES t without a column: its primary key. Only the
				// key is read, not the whole parent, whose own references
				// may lead back here (the table itself, or a cycle).
				key := t.PrimaryKey
				if ref.Table != phys {
					if key, err = sqlitePrimaryKey(ctx, q, ref.Table); err != nil {
						return nil, err
					}
				}
				if len(key) == 1 {
					ref.Column = key[0]
				}
			}
			c.References = &ref
		}
	}
	return t, nil
}

// sqlitePrimaryKey returns the primary key columns of table phys, in key
// order.
func sqlitePrimaryKey(ctx context.Context, q queryer, phys string) ([]string, error) {
	var (
		cid, notNull, pk int
		name, typ        string
		dflt             sql.NullString
	)
	byPos := map[int]string{}
	err := scanRows(ctx, q, `PRAGMA table_info(`+sqlgen.Quote(phys)+`)`, nil, []any{&cid, &name, &typ, &notNull, &dflt, &pk}, func() error {
		if pk > 0 {
			byPos[pk] = name
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	key := make([]string, 0, len(byPos))
	for i := 1; i <= len(byPos); i++ {
		key = append(key, byPos[i])
	}
	return key, nil
}

// onDeleteAction is a foreign key's ON DELETE action as declared.
func onDeleteAction(s string) string {
	switch a := strings.ToLower(s); a {
	case "no action", "":
		return ""
	default:
		return a
	}
}

// pgRelation finds a table of the current schema by name.
const pgRelation = `(SELECT c.oid FROM pg_class c WHERE c.relname = $1 AND c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p'))`

func introspectPG(ctx context.Context, q queryer, phys string) (*sqlgen.ActualTable, error) {
	t := &sqlgen.ActualTable{Physical: phys}
	var (
		name, typ, dflt string
		notNull         bool
	)
	err := scanRows(ctx, q, `SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, COALESCE(pg_get_expr(d.adbin, d.adrelid), '')
		FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		WHERE a.attrelid = `+pgRelation+` AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
		[]any{phys}, []any{&name, &typ, &notNull, &dflt}, func() error {
			t.Columns = append(t.Columns, sqlgen.ActualColumn{Name: name, Type: typ, NotNull: notNull, Default: dflt})
			return nil
		})
	if err != nil {
		return nil, err
	}
	if len(t.Columns) == 0 {
		return nil, nil
	}
	var (
		ixName, cols                string
		unique, primary, constraint bool
		partial                     bool
	)
	err = scanRows(ctx, q, `SELECT ci.relname, i.indisunique, i.indisprimary,
			EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.contype IN ('p', 'u')),
			i.indpred IS NOT NULL OR i.indexprs IS NOT NULL,
			COALESCE((SELECT string_agg(a.attname, ',' ORDER BY k.o) FROM unnest(i.indkey) WITH ORDINALITY k(n, o)
				JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n), '')
		FROM pg_index i JOIN pg_class ci ON ci.oid = i.indexrelid WHERE i.indrelid = `+pgRelation+` ORDER BY ci.relname`,
		[]any{phys}, []any{&ixName, &unique, &primary, &constraint, &partial, &cols}, func() error {
			ix := sqlgen.ActualIndex{Name: ixName, Unique: unique, Constraint: constraint, Partial: partial, Columns: strings.Split(cols, ",")}
			if primary {
				t.PrimaryKey = ix.Columns
			}
			t.Indexes = append(t.Indexes, ix)
			return nil
		})
	if err != nil {
		return nil, err
	}
	var (
		conName, from, refTable, to, action string
	)
	err = scanRows(ctx, q, `SELECT k.conname, a.attname, cf.relname, af.attname, k.confdeltype::text
		FROM pg_constraint k
		JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
		JOIN pg_class cf ON cf.oid = k.confrelid
		JOIN pg_attribute af ON af.attrelid = k.confrelid AND af.attnum = k.confkey[1]
		WHERE k.contype = 'f' AND k.conrelid = `+pgRelation+` AND array_length(k.conkey, 1) = 1`,
		[]any{phys}, []any{&conName, &from, &refTable, &to, &action}, func() error {
			if c := t.Column(from); c != nil {
				c.References = &sqlgen.ActualReference{Table: refTable, Column: to, OnDelete: pgAction(action), Constraint: conName}
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// pgAction is the declared form of pg_constraint.confdeltype.
func pgAction(code string) string {
	switch code {
	case "c":
		return sqlgen.OnDeleteCascade
	case "n":
		return sqlgen.OnDeleteSetNull
	case "r":
		return sqlgen.OnDeleteRestrict
	case "d":
		return "set default"
	}
	return ""
}
