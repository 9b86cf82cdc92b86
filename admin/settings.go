package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/secret"
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
		str, _ := s.String(def.Key)
		if secret.IsSealed(str) {
			// A sealed value under a key not declared encrypted: still
			// a secret, whoever owns the key.
			v.Value = mask
			break
		}
		v.Value = str
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
	def, defined := definition(s, key)
	if !defined {
		// Unknown, or the Manager does not run: Set says which, and
		// writes nothing (no setting takes nil, even one defined since).
		if err := s.Set(r.Context(), key, nil); errors.Is(err, pluginhost.ErrNotRunning) || errors.Is(err, pluginhost.ErrClosed) {
			a.setFailed(w, key, err)
			return
		}
		writeError(w, http.StatusNotFound, fmt.Sprintf("no setting %q", key))
		return
	}
	value, err := decodeValue(http.MaxBytesReader(w, r.Body, maxBody), def.Type)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := s.Set(r.Context(), key, value); err != nil {
		a.setFailed(w, key, err)
		return
	}
	def, ok := definition(s, key)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no setting %q", key))
		return
	}
	writeJSON(w, http.StatusOK, view(s, def))
}

// setFailed answers a Set of key that failed with err: 404 for an unknown
// key, 400 for a value of the wrong type, 409 for an encrypted setting
// without a secret key, 503 when the Manager does not run, 500 otherwise.
func (a *api) setFailed(w http.ResponseWriter, key string, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, pluginhost.ErrNotRunning), errors.Is(err, pluginhost.ErrClosed):
		status = http.StatusServiceUnavailable
	case errors.Is(err, pluginhost.ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("no setting %q", key))
		return
	case errors.Is(err, pluginhost.ErrSettingType):
		status = http.StatusBadRequest
	case errors.Is(err, pluginhost.ErrNoSecretKey):
		status = http.StatusConflict
	}
	writeError(w, status, err.Error())
}

// bodyShape is what the body of a PUT of a setting of type typ looks like,
// for error messages.
func bodyShape(typ pluginhost.ValueType) string {
	switch typ {
	case pluginhost.StringType:
		return `{"value": <a string>}`
	case pluginhost.NumberType:
		return `{"value": <a number>}`
	case pluginhost.BooleanType:
		return `{"value": <true or false>}`
	}
	return `{"value": ...}`
}

// decodeValue reads a body {"value": ...} for a setting of type typ and
// returns the value as a string, float64, bool or nil (JSON null), or an
// error saying what the body should be and what is wrong with it, in JSON's
// terms. Other JSON values (objects, arrays) are returned as decoded, for
// Settings.Set to refuse with the setting's type.
func decodeValue(body io.Reader, typ pluginhost.ValueType) (any, error) {
	var req struct {
		Value json.RawMessage `json:"value"`
	}
	want := "the body must be a JSON object " + bodyShape(typ)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("%s: %s", want, bodyProblem(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New(want + ", with nothing after it")
	}
	if req.Value == nil {
		return nil, errors.New(want + `: it has no "value"`)
	}
	var value any
	if err := json.Unmarshal(req.Value, &value); err != nil {
		return nil, fmt.Errorf("%s: its value is not valid JSON", want)
	}
	return value, nil
}

// bodyProblem says what is wrong with a body that did not decode into the
// request object, in JSON's terms rather than Go's.
func bodyProblem(err error) string {
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	var tooLarge *http.MaxBytesError
	switch {
	case errors.Is(err, io.EOF):
		return "it is empty"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "it is not valid JSON: it ends early"
	case errors.As(err, &syntax):
		return fmt.Sprintf("it is not valid JSON: %s (at byte %d)", syntax, syntax.Offset)
	case errors.As(err, &typeErr):
		return "it is a JSON " + typeErr.Value
	case errors.As(err, &tooLarge):
		return fmt.Sprintf("it is larger than %d MiB", tooLarge.Limit>>20)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no type for it.
		return "it has an unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	return "it could not be read: " + err.Error()
}
