// Package notes is an example plugin: short notes stored in a table of its
// own and served at /api/plugin/notes/notes. It publishes a [NoteCreated]
// event for each new note, which the audit example plugin records, and
// reports its note count in the example host's /api/health through the
// host's extension point. It adds a page to the host's web console
// ([pluginhost.ConsoleAssets] and [[nav]] in plugin.toml).
package notes

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/examples/hostapi"
)

//go:embed plugin.toml
var manifest []byte

// console holds the plugin's page of the host's web console.
//
//go:embed console
var console embed.FS

func init() { pluginhost.Register(New()) }

// Note is one note.
type Note struct {
	ID        int64     `json:"id"`
	Title     string    `json:"title"`
	Body      string    `json:"body"`
	CreatedAt time.Time `json:"created_at"`
}

// NoteCreated is the event notes publishes after creating a note;
// subscribe with pluginhost.Subscribe[notes.NoteCreated].
type NoteCreated struct {
	Note Note
}

// Plugin is the notes plugin. Create it with New.
type Plugin struct{}

var (
	_ pluginhost.TableProvider  = (*Plugin)(nil)
	_ pluginhost.SeedOncer      = (*Plugin)(nil)
	_ pluginhost.Initializer    = (*Plugin)(nil)
	_ pluginhost.RouteRegistrar = (*Plugin)(nil)
	_ pluginhost.ConsoleAssets  = (*Plugin)(nil)
)

// New returns a notes plugin, for a registry of your own (tests); importing
// the package already registers one in pluginhost.DefaultRegistry.
func New() *Plugin { return &Plugin{} }

// Manifest returns plugin.toml.
func (p *Plugin) Manifest() []byte { return manifest }

// Tables declares the notes table; it is created as notes__notes.
func (p *Plugin) Tables() []pluginhost.Table {
	return []pluginhost.Table{{
		Name: "notes",
		Columns: []pluginhost.Column{
			{Name: "id", PrimaryKey: true}, // integer, generated
			{Name: "title", NotNull: true},
			{Name: "body"},
			{Name: "created_at", NotNull: true, DefaultNow: true}, // timestamp by its name
		},
	}}
}

// SeedOnce writes the welcome note. It runs once per database, in the
// transaction that created the notes table, however many hosts boot
// together; a welcome note an operator deletes stays deleted.
func (p *Plugin) SeedOnce(ctx context.Context, h *pluginhost.Host, tx *pluginhost.Tx) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO `+tx.Table("notes")+` (title, body) VALUES (?, ?)`,
		"Welcome", "This note was written by the notes plugin's seed hook.")
	return err
}

// Init reports the note count in the host's /api/health, when the host
// offers that extension point.
func (p *Plugin) Init(ctx context.Context, h *pluginhost.Host) error {
	err := pluginhost.Provide[hostapi.StatusReporter](h, hostapi.StatusReporters, "notes", reporter{h.DB()})
	if errors.Is(err, pluginhost.ErrNotFound) {
		return nil // a host without the extension point
	}
	return err
}

// reporter counts the notes.
type reporter struct{ db *pluginhost.DB }

func (r reporter) Status(ctx context.Context) (any, error) {
	var n int
	err := r.db.QueryRowContext(ctx, `SELECT count(*) FROM `+r.db.Table("notes")).Scan(&n)
	return map[string]int{"notes": n}, err
}

// ConsoleAssets returns the plugin's console page, which its manifest's
// [[nav]] lists: served at /api/plugin/notes/_console/index.html.
func (p *Plugin) ConsoleAssets() fs.FS {
	sub, _ := fs.Sub(console, "console")
	return sub
}

// RegisterRoutes serves the notes API.
func (p *Plugin) RegisterRoutes(r chi.Router, h *pluginhost.Host) {
	s := &server{h: h, db: h.DB(), table: h.DB().Table("notes")}
	r.Get("/notes", s.list)
	r.Post("/notes", s.create)
	r.Get("/notes/{id}", s.get)
	r.Delete("/notes/{id}", s.delete)
}

type server struct {
	h     *pluginhost.Host
	db    *pluginhost.DB
	table string
}

const columns = `id, title, body, created_at`

func (s *server) list(w http.ResponseWriter, r *http.Request) {
	rows, err := s.db.QueryContext(r.Context(), `SELECT `+columns+` FROM `+s.table+` ORDER BY id`)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer rows.Close()
	out := []Note{}
	for rows.Next() {
		n, err := scan(rows)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) create(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Title string `json:"title"`
		Body  string `json:"body"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&in); err != nil {
		writeError(w, http.StatusBadRequest, "body must be a JSON object with title and body")
		return
	}
	if in.Title == "" {
		writeError(w, http.StatusBadRequest, "title is required")
		return
	}
	limit, err := s.h.Settings().Int("notes.max_body_length")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if int64(len(in.Body)) > limit {
		writeError(w, http.StatusBadRequest, "body is "+strconv.Itoa(len(in.Body))+" bytes; the limit is "+strconv.FormatInt(limit, 10))
		return
	}
	row := s.db.QueryRowContext(r.Context(),
		`INSERT INTO `+s.table+` (title, body) VALUES (?, ?) RETURNING `+columns, in.Title, in.Body)
	n, err := scan(row)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	pluginhost.Publish(r.Context(), s.h, NoteCreated{Note: n})
	writeJSON(w, http.StatusCreated, n)
}

func (s *server) get(w http.ResponseWriter, r *http.Request) {
	id, ok := noteID(w, r)
	if !ok {
		return
	}
	n, err := scan(s.db.QueryRowContext(r.Context(), `SELECT `+columns+` FROM `+s.table+` WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		writeError(w, http.StatusNotFound, "note not found")
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, n)
}

func (s *server) delete(w http.ResponseWriter, r *http.Request) {
	id, ok := noteID(w, r)
	if !ok {
		return
	}
	res, err := s.db.ExecContext(r.Context(), `DELETE FROM `+s.table+` WHERE id = ?`, id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		writeError(w, http.StatusNotFound, "note not found")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func noteID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil {
		writeError(w, http.StatusNotFound, "note not found")
		return 0, false
	}
	return id, true
}

type scanner interface{ Scan(dest ...any) error }

func scan(row scanner) (Note, error) {
	var n Note
	var body sql.NullString
	err := row.Scan(&n.ID, &n.Title, &body, &n.CreatedAt)
	n.Body = body.String
	return n, err
}

func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	pluginhost.Logger(r.Context()).Error("notes request failed", "err", err)
	writeError(w, http.StatusInternalServerError, "internal error")
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
