package migrate

import (
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/pluginhost/pluginhost/internal/dialect"
	"github.com/pluginhost/pluginhost/internal/sqlgen"
)

// Each migration runs in one transaction together with its ledger row, so
// that it applies whole or not at all. What would break that is refused
// when the file is read, before any migration runs: a statement that
// begins, ends or divides a transaction, and goose annotations that ask
// for what cannot be honoured. Goose's Up section is honoured: only the
// part of the file before "-- +goose Down" runs.

// prepare checks the body of the migration file name and returns the SQL
// to run: the whole body, or for a goose file the part before its Down
// section, with the lines of the file.
func prepare(d dialect.Dialect, name string, body string) (string, error) {
	sql, err := gooseUp(body)
	if err != nil {
		return "", fmt.Errorf("migration %s %w", name, err)
	}
	if kw, off, found := sqlgen.TransactionControl(d, sql); found {
		return "", fmt.Errorf("migration %s line %d: %s %s: pluginhost runs each migration in one transaction, together with its ledger row, so that it applies whole or not at all; remove it",
			name, lineAt(sql, off), kw, transactionVerb(kw))
	}
	return sql, nil
}

// transactionVerb says what a transaction control statement does.
func transactionVerb(kw string) string {
	switch kw {
	case "BEGIN", "START TRANSACTION":
		return "starts a transaction"
	case "SAVEPOINT", "RELEASE":
		return "divides the transaction"
	case "ROLLBACK", "ABORT":
		return "rolls the transaction back"
	}
	return "ends the transaction" // COMMIT, END, PREPARE TRANSACTION
}

// lineAt returns the 1-based line of byte offset off in s.
func lineAt(s string, off int) int { return strings.Count(s[:off], "\n") + 1 }

// gooseError is a problem with a goose annotation, at a line.
func gooseError(line int, format string, args ...any) error {
	return fmt.Errorf("line %d: "+format, append([]any{line}, args...)...)
}

// gooseUp returns the part of a migration that runs: for a file with goose
// annotations (lines "-- +goose Up", "-- +goose Down", "-- +goose
// StatementBegin", "-- +goose StatementEnd") everything before its Down
// section, otherwise all of body. The Up section must come first, only
// comments before it; StatementBegin and StatementEnd must pair up within a
// section. They need no other handling: the file is handed to the driver
// whole, which splits it into statements as the database does. An
// annotation that cannot be honoured, "-- +goose NO TRANSACTION" or "--
// +goose ENVSUB", or any other, is an error. A returned error starts with
// "line N: ".
func gooseUp(body string) (string, error) {
	up, down := 0, 0 // lines of the annotations; 0 before
	open := 0        // line of an unclosed StatementBegin
	downAt := -1     // byte offset of the Down line
	content := 0     // first line with SQL before the Up annotation
	offset := 0
	for n, line := range strings.SplitAfter(body, "\n") {
		n++
		start := offset
		offset += len(line)
		text := strings.TrimSpace(line)
		cmd, isGoose := gooseCommand(text)
		if !isGoose {
			if up == 0 && content == 0 && text != "" && !strings.HasPrefix(text, "--") {
				content = n
			}
			continue
		}
		switch strings.ToUpper(cmd) {
		case "UP":
			if up != 0 {
				return "", gooseError(n, "a second -- +goose Up (the first is on line %d)", up)
			}
			if down != 0 {
				return "", gooseError(down, "-- +goose Down comes before -- +goose Up")
			}
			if content != 0 {
				return "", gooseError(content, "SQL before -- +goose Up: a goose migration starts with its Up section")
			}
			up = n
		case "DOWN":
			if down != 0 {
				return "", gooseError(n, "a second -- +goose Down (the first is on line %d)", down)
			}
			if up == 0 {
				return "", gooseError(n, "-- +goose Down without -- +goose Up before it: pluginhost runs the Up section of a goose migration, which must come first")
			}
			if open != 0 {
				return "", gooseError(open, "-- +goose StatementBegin without -- +goose StatementEnd before the Down section")
			}
			down, downAt = n, start
		case "STATEMENTBEGIN":
			if open != 0 {
				return "", gooseError(n, "-- +goose StatementBegin inside another, opened on line %d: close it with -- +goose StatementEnd first", open)
			}
			open = n
		case "STATEMENTEND":
			if open == 0 {
				return "", gooseError(n, "-- +goose StatementEnd without -- +goose StatementBegin")
			}
			open = 0
		case "NO TRANSACTION":
			return "", gooseError(n, "-- +goose NO TRANSACTION cannot be honoured: pluginhost runs every migration in a transaction, together with its ledger row; remove the annotation (a statement that cannot run in a transaction, such as CREATE INDEX CONCURRENTLY, cannot be a migration)")
		case "ENVSUB ON", "ENVSUB OFF":
			return "", gooseError(n, "-- +goose %s is not supported: pluginhost does not substitute environment variables in migrations", cmd)
		default:
			return "", gooseError(n, "unknown goose annotation %q: pluginhost honours -- +goose Up, Down, StatementBegin and StatementEnd", text)
		}
	}
	if open != 0 {
		return "", gooseError(open, "-- +goose StatementBegin without -- +goose StatementEnd")
	}
	if up == 0 && down == 0 {
		return body, nil
	}
	if downAt >= 0 {
		return body[:downAt], nil
	}
	return body, nil
}

// gooseCommand returns the command of a goose annotation line, such as
// "Up" for "-- +goose Up"; isGoose is false for any other line.
func gooseCommand(text string) (cmd string, isGoose bool) {
	rest, ok := strings.CutPrefix(text, "--")
	if !ok {
		return "", false
	}
	rest = strings.TrimSpace(rest)
	if len(rest) < len("+goose") || !strings.EqualFold(rest[:len("+goose")], "+goose") {
		return "", false
	}
	return strings.Join(strings.Fields(rest[len("+goose"):]), " "), true
}

// missingFolder explains a file system without a folder dir for the
// current dialect when it holds SQL files elsewhere, which would
// otherwise apply nothing, silently; it returns nil when it holds none.
func missingFolder(fsys fs.FS, dir string) error {
	var found []string
	err := fs.WalkDir(fsys, ".", func(p string, ent fs.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable parts hold nothing to report
		}
		if !ent.IsDir() && strings.HasSuffix(p, ".sql") {
			found = append(found, p)
			if len(found) == 3 {
				return fs.SkipAll
			}
		}
		return nil
	})
	if err != nil || len(found) == 0 {
		return nil
	}
	layout := "migrations are read from the folders sqlite/ and postgres/ at the root of the file system, as sqlite/NNNN_name.sql and postgres/NNNN_name.sql"
	first := found[0]
	if parent := path.Dir(path.Dir(first)); parent != "." && isDialectDir(path.Base(path.Dir(first))) {
		// The dialect folders are one level or more down, as with
		// //go:embed migrations.
		return fmt.Errorf("the migrations file system has no folder %q for the current dialect, but SQL files further down (%s): %s; for //go:embed %s, return fs.Sub(fsys, %q)",
			dir, strings.Join(found, ", "), layout, parent, parent)
	}
	if other := path.Dir(first); isDialectDir(other) {
		return fmt.Errorf("the migrations file system has no folder %q for the current dialect, only SQL files for %s (%s): %s; add %s/NNNN_name.sql files or, when %s needs none, a %s/ folder holding any other file (such as %s/README)",
			dir, other, strings.Join(found, ", "), layout, dir, dir, dir, dir)
	}
	return fmt.Errorf("the migrations file system has no folder %q for the current dialect, but SQL files elsewhere (%s): %s; with //go:embed, return fs.Sub of the folder that holds sqlite/ and postgres/",
		dir, strings.Join(found, ", "), layout)
}

func isDialectDir(name string) bool {
	for _, d := range dialect.All {
		if name == string(d) {
			return true
		}
	}
	return false
}
