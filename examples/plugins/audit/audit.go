// Package audit is an example plugin that depends on notes: it records every
// created note, which notes announces with a notes.NoteCreated event, in a
// table of its own, and serves the records at /api/plugin/audit/events. Its
// manifest declares that it reads the notes table and one of notes'
// settings ([[reads]]): /api/plugin/audit/summary counts notes and events
// through that grant, which is read-only — a write to notes' table is
// refused by the database. A job that runs once per period across every
// replica (pluginhost.OncePerFleet), every config value prune_interval,
// deletes the events older than the setting audit.retention_days.
package audit

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/examples/plugins/notes"
)

//go:embed plugin.toml
var manifest []byte

func init() { pluginhost.Register(New()) }

// Event is one recorded event.
type Event struct {
	ID        int64           `json:"id"`
	Kind      string          `json:"kind"`
	Subject   string          `json:"subject"`
	Detail    json.RawMessage `json:"detail"`
	CreatedAt time.Time       `json:"created_at"`
}

// Plugin is the audit plugin. Create it with New.
type Plugin struct{}

var (
	_ pluginhost.TableProvider  = (*Plugin)(nil)
	_ pluginhost.Initializer    = (*Plugin)(nil)
	_ pluginhost.RouteRegistrar = (*Plugin)(nil)
)

// New returns an audit plugin, for a registry of your own (tests);
// importing the package already registers one in pluginhost.DefaultRegistry.
func New() *Plugin { return &Plugin{} }

// Manifest returns plugin.toml.
func (p *Plugin) Manifest() []byte { return manifest }

// Tables declares the events table, created as audit__events.
func (p *Plugin) Tables() []pluginhost.Table {
	return []pluginhost.Table{{
		Name: "events",
		Columns: []pluginhost.Column{
			{Name: "id", PrimaryKey: true},
			{Name: "kind", NotNull: true},
			{Name: "subject", NotNull: true},
			{Name: "detail", Type: pluginhost.JSON},
			{Name: "created_at", NotNull: true, DefaultNow: true},
		},
		Indexes: []pluginhost.Index{{Columns: []string{"kind", "created_at"}}},
	}}
}

// PruneJob is the name of the job that prunes old events.
const PruneJob = "prune"

// Init subscribes to the notes plugin's NoteCreated events and starts the
// prune job. The subscription and the job end by themselves when audit
// stops.
func (p *Plugin) Init(ctx context.Context, h *pluginhost.Host) error {
	db := h.DB()
	interval, err := time.ParseDuration(h.Config().String("prune_interval"))
	if err != nil {
		return fmt.Errorf("config prune_interval: %w", err)
	}
	if err := h.Every(PruneJob, interval, pluginhost.OncePerFleet, func(ctx context.Context) error { return prune(ctx, h) }); err != nil {
		return err
	}
	pluginhost.Subscribe(h, func(ctx context.Context, e notes.NoteCreated) error {
		detail, err := json.Marshal(map[string]any{"title": e.Note.Title})
		if err != nil {
			return err
		}
		_, err = db.ExecContext(ctx, `INSERT INTO `+db.Table("events")+` (kind, subject, detail) VALUES (?, ?, ?)`,
			"note.created", "note/"+strconv.FormatInt(e.Note.ID, 10), string(detail))
		return err
	})
	return nil
}

// prune deletes the events older than audit.retention_days; 0 keeps them.
func prune(ctx context.Context, h *pluginhost.Host) error {
	days, err := h.Settings().Number("audit.retention_days")
	if err != nil || days <= 0 {
		return err
	}
	cutoff := time.Now().Add(-time.Duration(days * float64(24*time.Hour))).UTC()
	db := h.DB()
	res, err := db.ExecContext(ctx, `DELETE FROM `+db.Table("events")+` WHERE created_at < ?`, cutoff)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n > 0 {
		h.Logger().Info("pruned old audit events", "events", n, "older_than", cutoff)
	}
	return nil
}

// Summary is what GET /summary returns.
type Summary struct {
	Events int64 `json:"events"`
	// Notes is the number of notes, read in the notes plugin's table.
	Notes int64 `json:"notes"`
	// MaxBodyLength is notes' setting notes.max_body_length.
	MaxBodyLength int64 `json:"max_body_length"`
}

// RegisterRoutes serves GET /events, newest first, and GET /summary.
func (p *Plugin) RegisterRoutes(r chi.Router, h *pluginhost.Host) {
	db := h.DB()
	r.Get("/summary", func(w http.ResponseWriter, r *http.Request) {
		var s Summary
		err := db.QueryRowContext(r.Context(), `SELECT (SELECT count(*) FROM `+db.Table("events")+`), (SELECT count(*) FROM `+
			db.TableOf("notes", "notes")+`)`).Scan(&s.Events, &s.Notes)
		if err == nil {
			s.MaxBodyLength, err = h.Settings().Int("notes.max_body_length")
		}
		if err != nil {
			fail(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s)
	})
	r.Get("/events", func(w http.ResponseWriter, r *http.Request) {
		rows, err := db.QueryContext(r.Context(),
			`SELECT id, kind, subject, detail, created_at FROM `+db.Table("events")+` ORDER BY id DESC`)
		if err != nil {
			fail(w, r, err)
			return
		}
		defer rows.Close()
		out := []Event{}
		for rows.Next() {
			var e Event
			var detail []byte
			if err := rows.Scan(&e.ID, &e.Kind, &e.Subject, &detail, &e.CreatedAt); err != nil {
				fail(w, r, err)
				return
			}
			if len(detail) > 0 {
				e.Detail = detail
			}
			out = append(out, e)
		}
		if err := rows.Err(); err != nil {
			fail(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
}

func fail(w http.ResponseWriter, r *http.Request, err error) {
	pluginhost.Logger(r.Context()).Error("audit request failed", "err", err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = w.Write([]byte(`{"error":"internal error"}`))
}
