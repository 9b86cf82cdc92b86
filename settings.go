package pluginhost

// ValueType is the type of a setting or of a plugin config value.
type ValueType string

// The value types of settings and plugin config values. In Go, a string value
// is a string, a number is a float64 and a boolean is a bool.
const (
	StringType  ValueType = "string"
	NumberType  ValueType = "number"
	BooleanType ValueType = "boolean"
)

// SettingGroup is a named group of settings, for display. Groups are defined
// by the host in [Config] and by plugins in their manifests
// ([[setting_groups]]); a group id that already exists keeps its first
// definition.
type SettingGroup struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Icon        string `json:"icon,omitempty"`
	SortOrder   int    `json:"sort_order"`
}

// Setting defines one global setting. Core settings come from [Config];
// plugins define theirs in their manifests ([[settings]]). A key that already
// exists keeps its first definition: core settings always win.
type Setting struct {
	// Key is the setting's unique name, such as "notes.max_body_length".
	Key string `json:"key"`
	// Type is the value's type; values of any other type are rejected.
	Type ValueType `json:"type"`
	// Default is written to the store when the key has no value yet. It is
	// nil (no default), a string, a float64 or a bool, matching Type.
	Default any `json:"default,omitempty"`
	// Description says what the setting does.
	Description string `json:"description,omitempty"`
	// Group is the id of the SettingGroup the setting belongs to, or empty.
	Group string `json:"group,omitempty"`
	// Encrypted settings are stored sealed with AES-256-GCM under
	// Config.SecretKey and never logged.
	Encrypted bool `json:"encrypted,omitempty"`
	// Required settings without a value are listed in the owner's status.
	Required bool `json:"required,omitempty"`
}
