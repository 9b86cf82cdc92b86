package pluginhost

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"
)

// The JSON Schema of plugin.toml, schema/plugin.schema.json, agrees with
// the parser on the manifest corpus: a manifest is schema-valid exactly when
// ParseManifest reports no error, except for the rules listed below, which
// JSON Schema cannot express. Each list is checked both ways: a case listed
// must still be accepted by the schema (else it has become expressible and
// leaves the list), and a case not listed must be rejected.

// schemaCannotExpress lists the bad manifests that the parser refuses and
// the schema accepts, with the reason.
var schemaCannotExpress = map[string]string{
	"dependency-constraint-invalid.toml":   "semver constraint syntax (Masterminds/semver): ranges, operators, wildcards, hyphen ranges and || have no regular expression of reasonable size",
	"host-constraint-invalid.toml":         "semver constraint syntax, as for dependencies",
	"dependency-self.toml":                 "cross-field: a key of [dependencies] equal to the top-level id",
	"reads-not-dependency.toml":            "cross-field: reads[].plugin must be a key of [dependencies]",
	"reads-self.toml":                      "cross-field: reads[].plugin equal to the top-level id",
	"reads-setting-outside-namespace.toml": "cross-field: a setting's first segment must be reads[].plugin or its camelCase form",
	"reads-table-physical-too-long.toml":   "cross-field: <plugin id>__<table>, the physical name, must fit 63 bytes",
	"reads-duplicate-plugin.toml":          "uniqueness of one property across the items of an array (uniqueItems compares whole items)",
	"group-duplicate-id.toml":              "uniqueness of one property across the items of an array",
	"setting-duplicate-key.toml":           "uniqueness of one property across the items of an array",
	"nav-duplicate-path.toml":              "uniqueness of one property across the items of an array",
	"description-datetime.toml":            "TOML datetimes have no JSON type: in the JSON model that editors validate they are RFC 3339 strings",
	"group-sort-order-whole-float.toml":    "JSON Schema's integer is any number without a fractional part, 2.0 too; TOML tells the float 2.0 from the integer 2",
}

// noJSONModel lists the bad manifests that have no JSON model to validate.
var noJSONModel = map[string]string{
	"not-toml.toml":                   "not TOML: there is no document",
	"setting-default-not-finite.toml": "JSON has no NaN or infinity (the default is nan)",
	"too-deep.toml":                   "refused on its text for its nesting (MaxManifestDepth) before it is decoded, which it does not even need to be: its inline tables are not closed",
}

// refusedAtRegistration lists the bad manifests that ParseManifest accepts:
// they fail only when registered with a Manager.
var refusedAtRegistration = map[string]string{
	"group-not-found.toml": "a setting's group is checked against the host's groups (Config.CoreSettingGroups) at registration; CheckManifest warns of it",
}

// compileSchema compiles schema/plugin.schema.json, which must declare draft
// 2020-12.
func compileSchema(t testing.TB) *jsonschema.Schema {
	t.Helper()
	path := filepath.Join("schema", "plugin.schema.json")
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	require.NoError(t, err)
	require.Equal(t, "https://json-schema.org/draft/2020-12/schema", doc.(map[string]any)["$schema"])
	c := jsonschema.NewCompiler()
	require.NoError(t, c.AddResource("plugin.schema.json", doc))
	sch, err := c.Compile("plugin.schema.json")
	require.NoError(t, err, "the schema is valid under its metaschema")
	return sch
}

// jsonModel turns a decoded TOML document into the JSON model that a
// JSON Schema validates, as editors do: tables are objects, arrays arrays,
// datetimes RFC 3339 strings. NaN and infinities have no JSON form.
func jsonModel(v any) (any, error) {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			m, err := jsonModel(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			out[k] = m
		}
		return out, nil
	case []map[string]any:
		out := make([]any, len(v))
		for i, e := range v {
			m, err := jsonModel(e)
			if err != nil {
				return nil, err
			}
			out[i] = m
		}
		return out, nil
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			m, err := jsonModel(e)
			if err != nil {
				return nil, err
			}
			out[i] = m
		}
		return out, nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%v has no JSON form", v)
		}
		return json.Number(fmt.Sprint(v)), nil
	case int64:
		return json.Number(fmt.Sprint(v)), nil
	case time.Time:
		return v.Format(time.RFC3339Nano), nil
	case string, bool:
		return v, nil
	}
	return nil, fmt.Errorf("unexpected TOML value %T", v)
}

// decodeForSchema decodes a manifest into its JSON model.
func decodeForSchema(data []byte) (any, error) {
	var doc map[string]any
	if _, err := toml.Decode(string(data), &doc); err != nil {
		return nil, err
	}
	return jsonModel(doc)
}

func TestSchemaAgreesWithParser(t *testing.T) {
	t.Parallel()
	sch := compileSchema(t)

	for _, f := range corpusFiles(t, "good") {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		_, err = ParseManifest(data)
		require.NoError(t, err, f)
		model, err := decodeForSchema(data)
		require.NoError(t, err, f)
		require.NoError(t, sch.Validate(model), "%s: the parser accepts it, the schema must too", f)
	}

	seen := map[string]bool{}
	for _, f := range corpusFiles(t, "bad") {
		name := filepath.Base(f)
		seen[name] = true
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		_, perr := ParseManifest(data)
		if _, ok := refusedAtRegistration[name]; ok {
			require.NoError(t, perr, name)
			_, warns := CheckManifest(data)
			require.NotEmpty(t, warns, "%s: CheckManifest warns", name)
		} else {
			require.Error(t, perr, "%s: a bad manifest the parser accepts belongs in refusedAtRegistration", name)
		}

		model, err := decodeForSchema(data)
		if _, ok := noJSONModel[name]; ok {
			require.Error(t, err, "%s has a JSON model now: take it off noJSONModel", name)
			continue
		}
		require.NoError(t, err, name)
		verr := sch.Validate(model)
		_, cannot := schemaCannotExpress[name]
		_, later := refusedAtRegistration[name]
		switch {
		case cannot || later:
			require.NoError(t, verr, "%s: the schema rejects it now: take it off the list of what the schema cannot express", name)
		default:
			require.Error(t, verr, "%s: the parser refuses it (%v) and the schema accepts it: make the schema say so, or list it in schemaCannotExpress with the reason", name, perr)
		}
	}
	for _, list := range []map[string]string{schemaCannotExpress, noJSONModel, refusedAtRegistration} {
		for name, reason := range list {
			require.NotEmpty(t, reason)
			require.True(t, seen[name], "%s is listed but not in testdata/manifests/bad", name)
		}
	}
}

// schemaPlaces maps each table of manifestFields to the JSON pointer of its
// properties in the schema.
var schemaPlaces = map[string][]string{
	"":                 {"properties"},
	"reads[]":          {"properties", "reads", "items", "properties"},
	"config.<key>":     {"properties", "config", "additionalProperties", "properties"},
	"setting_groups[]": {"properties", "setting_groups", "items", "properties"},
	"settings[]":       {"properties", "settings", "items", "properties"},
	"nav[]":            {"properties", "nav", "items", "properties"},
}

// Every field the parser knows, in every table, is in the schema, with a
// title or description for editors; and the schema has no field the parser
// ignores.
func TestSchemaHasEveryField(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join("schema", "plugin.schema.json"))
	require.NoError(t, err)
	var schema map[string]any
	require.NoError(t, json.Unmarshal(data, &schema))
	defs := schema["$defs"].(map[string]any)

	places := slices.Sorted(func(yield func(string) bool) {
		for k := range manifestFields {
			if !yield(k) {
				return
			}
		}
	})
	for _, place := range places {
		ptr, ok := schemaPlaces[place]
		require.Truef(t, ok, "manifestFields has a table %q that schemaPlaces does not map", place)
		var node any = schema
		for _, step := range ptr {
			m, ok := node.(map[string]any)
			require.Truef(t, ok, "no /%s in the schema", strings.Join(ptr, "/"))
			node = m[step]
		}
		props, ok := node.(map[string]any)
		require.Truef(t, ok, "no properties at /%s", strings.Join(ptr, "/"))
		var names []string
		for name, p := range props {
			names = append(names, name)
			prop := p.(map[string]any)
			if ref, ok := prop["$ref"].(string); ok && prop["description"] == nil {
				prop = defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
			}
			require.Truef(t, prop["title"] != nil || prop["description"] != nil, "%q of %q has neither title nor description", name, place)
		}
		require.ElementsMatch(t, manifestFields[place], names, "the fields of %q: parser and schema", place)
	}
	require.Len(t, schemaPlaces, len(manifestFields))
}
