package pluginhost

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// Permission is one entry of the host's permission catalog
// (Config.Permissions), and one permission a plugin declares, as
// [PluginStatus] lists it.
type Permission struct {
	// Name is what a manifest's permissions array names, such as
	// "notes.read".
	Name string `json:"name"`
	// Description says what the permission allows, for the operators who
	// map permissions to roles. In a status, it is the catalog's; empty
	// when the host has no catalog or the catalog does not list the name.
	Description string `json:"description,omitempty"`
}

var (
	// ErrUnknownPermission is wrapped by the failure of a plugin that
	// declares a permission the host's catalog (Config.Permissions) does not
	// list.
	ErrUnknownPermission = errors.New("unknown permission")
	// ErrUndeclaredPermission is wrapped by the failure of a plugin that
	// protects a route with a permission its manifest does not declare.
	ErrUndeclaredPermission = errors.New("undeclared permission")
)

// checkPermissions checks the catalog: every name non-empty, without
// surrounding space, listed once.
func (c *Config) checkPermissions(errs *configErrors) {
	seen := map[string]bool{}
	for i, p := range c.Permissions {
		switch {
		case p.Name == "":
			errs.add("Permissions[%d]: Name is empty", i)
		case strings.TrimSpace(p.Name) != p.Name:
			errs.add("Permissions[%d]: name %q has leading or trailing space", i, p.Name)
		case seen[p.Name]:
			errs.add("Permissions[%d]: permission %q is listed twice", i, p.Name)
		}
		seen[p.Name] = true
	}
}

// checkPermissions checks the permissions man declares against the host's
// catalog. Without a catalog every permission is accepted. An unknown
// permission is an error naming the plugin, the permission and its line, or
// with Config.WarnUnknownPermissions a warning.
func (m *Manager) checkPermissions(man *Manifest) (warnings []string, err error) {
	if len(m.cfg.Permissions) == 0 {
		return nil, nil
	}
	var errs []error
	at := ""
	// The line of the array: the line index does not hold its elements.
	if line := man.line("permissions"); line > 0 {
		at = fmt.Sprintf(" (plugin.toml line %d)", line)
	}
	for _, name := range man.Permissions {
		if slices.ContainsFunc(m.cfg.Permissions, func(p Permission) bool { return p.Name == name }) {
			continue
		}
		msg := fmt.Sprintf("plugin %q: permission %q%s is not in the host's catalog (Config.Permissions lists %s)",
			man.ID, name, at, m.catalogNames())
		if m.cfg.WarnUnknownPermissions {
			warnings = append(warnings, msg+": ignored because Config.WarnUnknownPermissions is set")
			continue
		}
		errs = append(errs, fmt.Errorf("%w: %s", ErrUnknownPermission, msg))
	}
	return warnings, errors.Join(errs...)
}

// catalogNames lists the catalog's names, quoted, for error messages.
func (m *Manager) catalogNames() string {
	names := make([]string, len(m.cfg.Permissions))
	for i, p := range m.cfg.Permissions {
		names[i] = fmt.Sprintf("%q", p.Name)
	}
	return strings.Join(names, ", ")
}

// permissionsOf returns the permissions man declares with the catalog's
// descriptions.
func (m *Manager) permissionsOf(man *Manifest) []Permission {
	if man == nil || len(man.Permissions) == 0 {
		return nil
	}
	out := make([]Permission, len(man.Permissions))
	for i, name := range man.Permissions {
		out[i] = Permission{Name: name}
		if j := slices.IndexFunc(m.cfg.Permissions, func(p Permission) bool { return p.Name == name }); j >= 0 {
			out[i].Description = m.cfg.Permissions[j].Description
		}
	}
	return out
}

// withPermissions fills in the Permissions of each status.
func (m *Manager) withPermissions(sts []PluginStatus) []PluginStatus {
	for i := range sts {
		if p := m.plugins.get(sts[i].ID); p != nil {
			sts[i].Permissions = m.permissionsOf(p.manifest)
		}
	}
	return sts
}

// hostPerms is the state of a Host's Require: the first undeclared
// permission a route asked for, which fails the plugin at route
// registration, and the one warning about a missing authorizer.
type hostPerms struct {
	mu         sync.Mutex
	undeclared error
	noAuthLog  sync.Once
}

// Require returns a middleware that lets a request through only when the
// host's authorizer (Config.Authorize) allows permission for this plugin,
// and otherwise answers 403 with a JSON body
// {"error":"permission denied","plugin":"<id>","permission":"<name>"}.
// Without an authorizer every request is refused (deny by default), and a
// warning is logged once.
//
//	r.With(h.Require("notes.write")).Post("/notes", create)
//
// The permission must be one the manifest declares: requiring another one
// fails the plugin when its RegisterRoutes returns, with an error wrapping
// [ErrUndeclaredPermission] that names the plugin and the permission, and
// the middleware refuses every request.
func (h *Host) Require(permission string) func(http.Handler) http.Handler {
	if !slices.Contains(h.manifest.Permissions, permission) {
		err := fmt.Errorf("%w: plugin %q requires permission %q on a route, which its manifest does not declare (add it to permissions in plugin.toml)",
			ErrUndeclaredPermission, h.id, permission)
		h.perms.mu.Lock()
		if h.perms.undeclared == nil {
			h.perms.undeclared = err
		}
		h.perms.mu.Unlock()
		return func(http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				h.denied(w, permission)
			})
		}
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := h.authorize(r, permission); err != nil {
				h.logger.Debug("request refused", "permission", permission, "method", r.Method, "path", r.URL.Path, "err", err)
				h.denied(w, permission)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// errNoAuthorizer refuses every permission when Config.Authorize is nil.
var errNoAuthorizer = errors.New("no authorizer: Config.Authorize is nil, so every permission is refused")

// authorize asks the host's authorizer.
func (h *Host) authorize(r *http.Request, permission string) error {
	auth := h.m.cfg.Authorize
	if auth == nil {
		h.perms.noAuthLog.Do(func() {
			h.logger.Warn("a route that requires a permission refuses every request",
				"permission", permission, "hint", "set Config.Authorize to decide which requests hold which permissions")
		})
		return errNoAuthorizer
	}
	return auth(r, h.id, permission)
}

// denied answers 403 for permission.
func (h *Host) denied(w http.ResponseWriter, permission string) {
	writeJSON(w, http.StatusForbidden, map[string]string{
		"error": "permission denied", "plugin": h.id, "permission": permission,
	})
}

// takeUndeclared returns, and forgets, the first undeclared permission a
// route required.
func (h *Host) takeUndeclared() error {
	if h == nil || h.perms == nil {
		return nil
	}
	h.perms.mu.Lock()
	defer h.perms.mu.Unlock()
	err := h.perms.undeclared
	h.perms.undeclared = nil
	return err
}
