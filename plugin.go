package pluginhost

import (
	"context"
	"io/fs"

	"github.com/go-chi/chi/v5"
)

// Plugin is the one method every plugin implements: it returns the plugin's
// manifest, the contents of its plugin.toml, usually embedded with go:embed.
//
// Everything else a plugin can do is an optional interface found by type
// assertion: [TableProvider], [Migrator], [Seeder], [Initializer],
// [RouteRegistrar] and [Shutdowner]. Manifest is called once, when the plugin
// is registered; it must return the same bytes every time.
type Plugin interface {
	Manifest() []byte
}

// TableProvider is implemented by plugins that declare tables. The Manager
// creates them, inside the plugin's own schema transaction, before the
// plugin's migrations run. See [Table] for the declaration rules.
type TableProvider interface {
	Tables() []Table
}

// Migrator is implemented by plugins that ship versioned SQL migrations.
// The returned file system holds one folder per dialect, "sqlite" and
// "postgres", each with files named NNNN_name.sql; they are applied in
// order, after the plugin's declared tables, and recorded in the ledger
// under the plugin's id.
type Migrator interface {
	Migrations() fs.FS
}

// Seeder is implemented by plugins that put data into their tables. Seed runs
// on every boot, after the plugin's schema and the settings are in place; a
// plugin that wants to seed once checks that its table is empty first.
type Seeder interface {
	Seed(ctx context.Context, h *Host) error
}

// Initializer is implemented by plugins that prepare state before their
// routes are registered: connect to a dependency, start a worker. Init runs
// after Seed, in dependency order.
type Initializer interface {
	Init(ctx context.Context, h *Host) error
}

// RouteRegistrar is implemented by plugins that serve HTTP. RegisterRoutes
// receives a fresh router that the Manager mounts at /api/plugin/<id>/; a
// pattern "/items" registered on it is served at /api/plugin/<id>/items.
type RouteRegistrar interface {
	RegisterRoutes(r chi.Router, h *Host)
}

// Shutdowner is implemented by plugins that hold resources. Shutdown runs
// when the Manager shuts down, in reverse dependency order, within the
// deadline of the context passed to [Manager.Shutdown].
type Shutdowner interface {
	Shutdown(ctx context.Context, h *Host) error
}
