package admin

import (
	"net/http"

	"github.com/pluginhost/pluginhost"
)

// NavItem is one page a plugin contributes to the console's navigation, as
// GET /nav lists it: an entry of the plugin's [[nav]] with the URLs the
// browser loads.
type NavItem struct {
	// Plugin is the id of the plugin, PluginName its name.
	Plugin     string `json:"plugin"`
	PluginName string `json:"plugin_name,omitempty"`
	pluginhost.NavEntry
	// Href is the URL path of the page, under the plugin's mount:
	// /api/plugin/<id>/_console/<path>. IconHref is the icon's, or "".
	Href     string `json:"href"`
	IconHref string `json:"icon_href,omitempty"`
}

// nav serves GET /nav: {"nav": [...]}, the [[nav]] entries of the plugins
// that run and serve console assets (the ConsoleAssets capability), by
// plugin id, then in the order of each manifest. A plugin that is disabled,
// failed or stopped lists none, and neither does one whose console route
// is not mounted.
func (a *api) nav(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"nav": navItems(a.m)})
}

// navItems lists the nav entries of m's running plugins that serve
// console assets.
func navItems(m *pluginhost.Manager) []NavItem {
	out := []NavItem{}
	for _, st := range m.Status() {
		if st.State != pluginhost.StateRunning {
			continue
		}
		base := pluginhost.PluginPathPrefix + st.ID + pluginhost.ConsolePath
		if !servesConsole(st, base) {
			continue
		}
		h, err := m.Host(st.ID)
		if err != nil {
			continue // stopped since Status
		}
		for _, e := range h.Manifest().Nav {
			item := NavItem{Plugin: st.ID, PluginName: st.Name, NavEntry: e, Href: base + e.Path}
			if e.Icon != "" {
				item.IconHref = base + e.Icon
			}
			out = append(out, item)
		}
	}
	return out
}

// servesConsole reports whether the plugin of st mounted its console
// files, whose URLs start with base.
func servesConsole(st pluginhost.PluginStatus, base string) bool {
	for _, rt := range st.Routes {
		if rt.Pattern == base+"*" {
			return true
		}
	}
	return false
}
