// Package migrate keeps the migration ledger and applies versioned SQL
// migrations, each in one transaction together with its ledger row.
package migrate

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/pluginhost/pluginhost/internal/dialect"
)

// LedgerTable is the name of the ledger table.
const LedgerTable = "pluginhost_ledger"

// Execer runs statements: a *sql.Conn, *sql.Tx or *sql.DB.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Entry is one ledger row: one applied step of one line (the library, the
// core, or a plugin id).
type Entry struct {
	Line     string
	Version  string
	Checksum string
	// Definition holds what the checksum was computed from, for steps whose
	// changes are described to the user (declared tables); empty otherwise.
	Definition string
}

// Ledger is the applied steps, by line and version.
type Ledger map[string]map[string]Entry

// Get returns the entry of a line and version.
func (l Ledger) Get(line, version string) (Entry, bool) {
	e, ok := l[line][version]
	return e, ok
}

// Put records e in the in-memory ledger.
func (l Ledger) Put(e Entry) {
	if l[e.Line] == nil {
		l[e.Line] = map[string]Entry{}
	}
	l[e.Line][e.Version] = e
}

// Load reads the whole ledger in one query. A missing ledger table reads as
// empty; exists reports whether it was there.
func Load(ctx context.Context, q Execer, tableExists func(context.Context, string) (bool, error)) (l Ledger, exists bool, err error) {
	l = Ledger{}
	exists, err = tableExists(ctx, LedgerTable)
	if err != nil || !exists {
		return l, exists, err
	}
	rows, err := q.QueryContext(ctx, `SELECT line, version, checksum, definition FROM `+LedgerTable)
	if err != nil {
		return nil, true, fmt.Errorf("read migration ledger: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e Entry
		if err := rows.Scan(&e.Line, &e.Version, &e.Checksum, &e.Definition); err != nil {
			return nil, true, fmt.Errorf("read migration ledger: %w", err)
		}
		l.Put(e)
	}
	if err := rows.Err(); err != nil {
		return nil, true, fmt.Errorf("read migration ledger: %w", err)
	}
	return l, true, nil
}

// Refresh re-reads the rows of one line from the ledger table and replaces
// what l held for it. Call it inside the transaction that applies the
// line's steps: another process may have applied them since l was loaded.
// bind turns ? placeholders into the dialect's.
func (l Ledger) Refresh(ctx context.Context, q Execer, bind func(string) string, line string) error {
	rows, err := q.QueryContext(ctx, bind(`SELECT version, checksum, definition FROM `+LedgerTable+` WHERE line = ?`), line)
	if err != nil {
		return fmt.Errorf("read migration ledger: %w", err)
	}
	defer rows.Close()
	fresh := map[string]Entry{}
	for rows.Next() {
		e := Entry{Line: line}
		if err := rows.Scan(&e.Version, &e.Checksum, &e.Definition); err != nil {
			return fmt.Errorf("read migration ledger: %w", err)
		}
		fresh[e.Version] = e
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read migration ledger: %w", err)
	}
	if len(fresh) == 0 {
		delete(l, line)
	} else {
		l[line] = fresh
	}
	return nil
}

// Record writes entries to the ledger table in one statement, replacing
// earlier rows of the same line and version (development mode rewrites a
// recreated table's row). bind turns ? placeholders into the dialect's.
func Record(ctx context.Context, ex Execer, bind func(string) string, entries ...Entry) error {
	if len(entries) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString(`INSERT INTO ` + LedgerTable + ` (line, version, checksum, definition) VALUES `)
	args := make([]any, 0, 4*len(entries))
	for i, e := range entries {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?)")
		args = append(args, e.Line, e.Version, e.Checksum, e.Definition)
	}
	b.WriteString(` ON CONFLICT (line, version) DO UPDATE SET checksum = excluded.checksum, definition = excluded.definition, applied_at = CURRENT_TIMESTAMP`)
	if _, err := ex.ExecContext(ctx, bind(b.String()), args...); err != nil {
		return fmt.Errorf("record %s %s in the ledger: %w", entries[0].Line, entries[0].Version, err)
	}
	return nil
}

// Migration is one versioned SQL file.
type Migration struct {
	// Version is the file name without ".sql", such as "0001_create_users";
	// files apply in the order of their number.
	Version string
	// SQL is what runs: the file, or the Up section of a goose file.
	SQL string
	// Checksum is the whole file's, Down section included.
	Checksum string
}

var fileName = regexp.MustCompile(`^([0-9]{4,})_([A-Za-z0-9_-]+)\.sql$`)

// Read lists the migrations in dir of fsys, the folder of a dialect named
// after it ("sqlite", "postgres"), ordered by number, and checks them
// before any runs. A .sql file whose name is not NNNN_name.sql, or two
// files with the same number, is an error; other files are ignored. So is
// a migration with a statement that begins, ends or divides a transaction
// (BEGIN, COMMIT, SAVEPOINT, …), naming the file and the line: each
// migration runs in one transaction with its ledger row. Of a file with
// goose annotations ("-- +goose Up") only the Up section runs; annotations
// that cannot be honoured are errors.
//
// A nil fsys means no migrations, and so does a missing dir when fsys
// holds no SQL files at all; SQL files elsewhere (the dialect folders one
// level down, as //go:embed migrations without fs.Sub gives, or only
// another dialect's folder) are an error that says where they were found
// and the layout expected.
func Read(fsys fs.FS, dir string) ([]Migration, error) {
	if fsys == nil {
		return nil, nil
	}
	ents, err := fs.ReadDir(fsys, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, missingFolder(fsys, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var out []Migration
	numbers := map[string]string{}
	for _, ent := range ents {
		name := ent.Name()
		if ent.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		m := fileName.FindStringSubmatch(name)
		if m == nil {
			return nil, fmt.Errorf("migration %s: name must be NNNN_name.sql (four or more digits, then letters, digits, _ or -)", path.Join(dir, name))
		}
		num := strings.TrimLeft(m[1], "0")
		if prev, dup := numbers[num]; dup {
			return nil, fmt.Errorf("migrations %s and %s have the same number", path.Join(dir, prev), path.Join(dir, name))
		}
		numbers[num] = name
		body, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", path.Join(dir, name), err)
		}
		sql, err := prepare(dialect.Dialect(dir), path.Join(dir, name), string(body))
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{
			Version:  strings.TrimSuffix(name, ".sql"),
			SQL:      sql,
			Checksum: Checksum(body),
		})
	}
	slices.SortFunc(out, func(a, b Migration) int { return compareVersions(a.Version, b.Version) })
	return out, nil
}

// compareVersions orders "0002_x" before "0010_y" by number, then by name.
func compareVersions(a, b string) int {
	na, _, _ := strings.Cut(a, "_")
	nb, _, _ := strings.Cut(b, "_")
	na, nb = strings.TrimLeft(na, "0"), strings.TrimLeft(nb, "0")
	if len(na) != len(nb) {
		return len(na) - len(nb)
	}
	// Compare the numbers without their padding: "00013_b" after "0012_a".
	if c := strings.Compare(na, nb); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

// Checksum is the hex SHA-256 of b.
func Checksum(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// ChangedError reports an applied step whose source changed since.
type ChangedError struct {
	Line, Version string
	What          string // what changed, when known
}

func (e *ChangedError) Error() string {
	msg := fmt.Sprintf("%s was applied and has changed since", e.Version)
	if e.What != "" {
		msg += ": " + e.What
	}
	return msg
}

// Pending returns the migrations of line not yet in the ledger. An applied
// migration whose checksum differs is a *ChangedError: a migration must not
// change once applied; add a new one instead.
func Pending(l Ledger, line string, ms []Migration) ([]Migration, error) {
	var pending []Migration
	var errs []error
	for _, m := range ms {
		e, ok := l.Get(line, m.Version)
		switch {
		case !ok:
			pending = append(pending, m)
		case e.Checksum != m.Checksum:
			errs = append(errs, &ChangedError{Line: line, Version: "migration " + m.Version,
				What: "checksum " + short(e.Checksum) + " → " + short(m.Checksum) + "; add a new migration instead of editing an applied one"})
		}
	}
	return pending, errors.Join(errs...)
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}
