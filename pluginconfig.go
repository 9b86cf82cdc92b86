package pluginhost

import (
	"fmt"
	"math"
	"slices"
	"strconv"
)

// PluginConfig holds one plugin's config values, resolved at Start from the
// manifest's [config.<key>] declarations: a value from the environment
// variable wins over one from Config.PluginConfig, which wins over the
// declared default. It is immutable and safe for concurrent use. The typed
// getters return the zero value for an undeclared key, a key without a
// value, or a getter of the wrong type; use Lookup to tell these apart.
type PluginConfig struct {
	values map[string]any
}

// Lookup returns the value of key (a string, float64 or bool) and whether it
// has one.
func (c *PluginConfig) Lookup(key string) (any, bool) {
	v, ok := c.values[key]
	return v, ok
}

// String returns a string value.
func (c *PluginConfig) String(key string) string {
	s, _ := c.values[key].(string)
	return s
}

// Number returns a number value.
func (c *PluginConfig) Number(key string) float64 {
	n, _ := c.values[key].(float64)
	return n
}

// Bool returns a boolean value.
func (c *PluginConfig) Bool(key string) bool {
	b, _ := c.values[key].(bool)
	return b
}

// resolvePluginConfig computes a plugin's config values. given holds the
// values from Config.PluginConfig for the plugin; lookupEnv reads the
// environment. Every problem names the key and where the value came from;
// secret values never appear in errors or warnings.
func resolvePluginConfig(m *Manifest, given map[string]any, lookupEnv func(string) (string, bool)) (*PluginConfig, []string, error) {
	cfg := &PluginConfig{values: map[string]any{}}
	declared := map[string]bool{}
	for _, f := range m.Config {
		declared[f.Key] = true
		source := fmt.Sprintf("Config.PluginConfig[%q][%q]", m.ID, f.Key)
		v, ok, err := configValue(f, source, given, lookupEnv)
		if err != nil {
			return nil, nil, err
		}
		if !ok && f.Default != nil {
			v, ok = f.Default, true
		}
		if !ok || (f.Required && v == "") {
			if f.Required {
				return nil, nil, fmt.Errorf("config key %q is required: set the environment variable %s or %s", f.Key, f.Env, source)
			}
			continue
		}
		cfg.values[f.Key] = v
	}
	return cfg, undeclaredConfig(m.ID, given, declared), nil
}

// undeclaredConfig returns a warning for each key of given that the
// manifest does not declare, sorted by key.
func undeclaredConfig(id string, given map[string]any, declared map[string]bool) []string {
	var unknown []string
	for k := range given {
		if !declared[k] {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	var warnings []string
	for _, k := range unknown {
		warnings = append(warnings, fmt.Sprintf("Config.PluginConfig[%q][%q] is not declared in the manifest; ignored", id, k))
	}
	return warnings
}

// configValue reads one key from the environment, which wins, or else from
// Config.PluginConfig. A value of the wrong type is an error naming the key
// and both places a value can come from; a secret value is never shown.
func configValue(f ConfigField, source string, given map[string]any, lookupEnv func(string) (string, bool)) (any, bool, error) {
	if text, set := lookupEnv(f.Env); set {
		v, err := parseConfigText(f.Type, text)
		if err != nil {
			shown := strconv.Quote(text)
			if f.Secret {
				shown = "(secret)"
			}
			return nil, false, fmt.Errorf("config key %q: environment variable %s=%s: %w", f.Key, f.Env, shown, err)
		}
		return v, true, nil
	}
	v, ok := given[f.Key]
	if !ok {
		return nil, false, nil
	}
	conv, err := convertConfigValue(f.Type, v)
	if err != nil {
		return nil, false, fmt.Errorf("config key %q: %s: %w (or set the environment variable %s)", f.Key, source, err, f.Env)
	}
	return conv, true, nil
}

func convertConfigValue(t ValueType, v any) (any, error) {
	switch t {
	case StringType:
		if s, ok := v.(string); ok {
			return s, nil
		}
	case NumberType:
		if n, ok := toFloat(v); ok {
			if math.IsNaN(n) || math.IsInf(n, 0) {
				return nil, fmt.Errorf("want a finite number, got %v", n)
			}
			return n, nil
		}
	case BooleanType:
		if b, ok := v.(bool); ok {
			return b, nil
		}
	}
	return nil, fmt.Errorf("want a %s, got %T", t, v)
}

func parseConfigText(t ValueType, text string) (any, error) {
	switch t {
	case NumberType:
		n, err := strconv.ParseFloat(text, 64)
		if err != nil || math.IsNaN(n) || math.IsInf(n, 0) {
			return nil, fmt.Errorf("not a finite number")
		}
		return n, nil
	case BooleanType:
		b, err := strconv.ParseBool(text)
		if err != nil {
			return nil, fmt.Errorf("not a boolean (use true or false)")
		}
		return b, nil
	}
	return text, nil
}
