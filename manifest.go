package pluginhost

// Manifest is a plugin's validated plugin.toml. Obtain one with
// [ParseManifest]; the zero value is not a valid manifest.
type Manifest struct {
	// ID is the plugin's unique slug: lowercase letters, digits and single
	// hyphens, starting with a letter, at most 40 bytes.
	ID string
	// Name is the human-readable name.
	Name string
	// Version is the plugin's semantic version.
	Version string
	// Description and Author are free text.
	Description string
	Author      string
	// Host is a semver constraint on [APIVersion], or empty for any.
	Host string
	// Dependencies maps plugin ids this plugin needs to semver constraints
	// on their versions.
	Dependencies map[string]string
	// Permissions lists the permissions the plugin asks for.
	Permissions []string
	// Config declares the plugin's config keys ([config.<key>]), in the order
	// of their keys.
	Config []ConfigField
	// SettingGroups and Settings are the plugin's contributions to the
	// global settings.
	SettingGroups []SettingGroup
	Settings      []Setting
	// Warnings lists what was ignored, such as unknown keys, with their
	// lines.
	Warnings []string
}

// ConfigField declares one plugin config key ([config.<key>] in plugin.toml).
// Values come from Config.PluginConfig and from the environment.
type ConfigField struct {
	Key         string
	Type        ValueType
	Description string
	Required    bool
	// Secret values are never logged.
	Secret bool
	// Default is nil, a string, a float64 or a bool, matching Type.
	Default any
	// Env names the environment variable that supplies the value; when empty
	// it is PLUGINHOST_<ID>_<KEY>, upper-cased, with "-" replaced by "_".
	Env string
}
