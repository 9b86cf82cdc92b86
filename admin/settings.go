package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/pluginhost/pluginhost"
)

// mask stands for the value of an encrypted setting that is set.
const mask = "********"

// maxBody bounds the body of a PUT /settings/{key}.
const maxBody = 1 << 20

// setting is a setting as the API shows it.
type setting struct {
	Key         string               `json:"key"`
	Type        pluginhost.ValueType `json:"type"`
	Description string               `json:"description,omitempty"`
	Group       string               `json:"group,omitempty"`
	// Owner is "core" or the id of the plugin that defined the setting.
	Owner     string `json:"owner"`
	Encrypted bool   `json:"encrypted,omitempty"`
	Required  bool   `json:"required,omitempty"`
	// Default is omitted for encrypted settings.
	Default any `json:"default,omitempty"`
	// Set reports whether the setting has a value.
	Set bool `json:"set"`
	// Value is null when the setting has none, and "********" for an
	// encrypted setting that has one.
	Value any `json:"value"`
}

// group is a setting group with its settings.
type group struct {
	pluginhost.SettingGroup
	Settings []setting `json:"settings"`
}

// view returns the setting def as the API shows it, with its current
// value; an encrypted value never leaves this function.
func view(s *pluginhost.Settings, def pluginhost.Setting) setting {
	v := setting{
		Key: def.Key, Type: def.Type, Description: def.Description, Group: def.Group, Owner: s.Owner(def.Key),
		Encrypted: def.Encrypted, Required: def.Required, Set: s.IsSet(def.Key),
	}
	if !def.Encrypted {
		v.Default = def.Default
	}
	switch {
	case !v.Set:
	case def.Encrypted:
		v.Value = mask
	case def.Type == pluginhost.StringType:
		v.Value, _ = s.String(def.Key)
	case def.Type == pluginhost.NumberType:
		v.Value, _ = s.Number(def.Key)
	case def.Type == pluginhost.BooleanType:
		v.Value, _ = s.Bool(def.Key)
	}
	return v
}

// definition returns the definition of key.
func definition(s *pluginhost.Settings, key string) (pluginhost.Setting, bool) {
	for _, def := range s.Definitions() {
		if def.Key == key {
			return def, true
		}
	}
	return pluginhost.Setting{}, false
}

func (a *api) listSettings(w http.ResponseWriter, r *http.Request) {
	s := a.m.Settings()
	groups := []group{}
	index := map[string]int{} // group id → position in groups
	for _, g := range s.Groups() {
		index[g.ID] = len(groups)
		groups = append(groups, group{SettingGroup: g, Settings: []setting{}})
	}
	ungrouped := []setting{}
	for _, def := range s.Definitions() {
		v := view(s, def)
		if i, ok := index[def.Group]; ok && def.Group != "" {
			groups[i].Settings = append(groups[i].Settings, v)
		} else {
			ungrouped = append(ungrouped, v)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"groups": groups, "ungrouped": ungrouped})
}

func (a *api) getSetting(w http.ResponseWriter, r *http.Request) {
	s := a.m.Settings()
	key := chi.URLParam(r, "key")
	def, ok := definition(s, key)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no setting %q", key))
		return
	}
	writeJSON(w, http.StatusOK, view(s, def))
}

func (a *api) putSetting(w http.ResponseWriter, r *http.Request) {
	s := a.m.Settings()
	key := chi.URLParam(r, "key")
	if _, ok := definition(s, key); !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no setting %q", key))
		return
	}
	value, err := decodeValue(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := s.Set(r.Context(), key, value); err != nil {
		status := http.StatusInternalServerError
		switch {
		case errors.Is(err, pluginhost.ErrNotFound):
			status = http.StatusNotFound
		case errors.Is(err, pluginhost.ErrSettingType):
			status = http.StatusBadRequest
		case errors.Is(err, pluginhost.ErrNoSecretKey):
			status = http.StatusConflict
		}
		writeError(w, status, err.Error())
		return
	}
	def, ok := definition(s, key)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no setting %q", key))
		return
	}
	writeJSON(w, http.StatusOK, view(s, def))
}

// decodeValue reads a body {"value": ...} and returns the value as a
// string, float64, bool or nil (JSON null), or an error saying what is
// wrong with the body. Other JSON values (objects, arrays) are returned as
// decoded, for Settings.Set to refuse with the setting's type.
func decodeValue(body io.Reader) (any, error) {
	var req struct {
		Value json.RawMessage `json:"value"`
	}
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf(`the body must be a JSON object {"value": ...}: %w`, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New(`the body must be a JSON object {"value": ...}, with nothing after it`)
	}
	if req.Value == nil {
		return nil, errors.New(`the body has no "value"`)
	}
	var value any
	if err := json.Unmarshal(req.Value, &value); err != nil {
		return nil, fmt.Errorf("value: %w", err)
	}
	return value, nil
}
