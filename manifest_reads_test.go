package pluginhost

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// readsManifest is a manifest of plugin "audit" that depends on "notes"
// and "my-vault", with reads before its [dependencies].
func readsManifest(reads string) []byte {
	return []byte("id = \"audit\"\nname = \"Audit\"\nversion = \"1.0.0\"\n" + reads + "\n[dependencies]\nnotes = \"^1.0\"\nmy-vault = \"*\"\n")
}

func TestParseManifestReads(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name  string
		reads string
		want  []ReadGrant
		field string // of the one error; "" for none
		msg   string
	}{
		{
			name:  "tables only",
			reads: "[[reads]]\nplugin = \"notes\"\ntables = [\"notes\"]\n",
			want:  []ReadGrant{{Plugin: "notes", Tables: []string{"notes"}}},
		},
		{
			name:  "settings only, both forms of the namespace",
			reads: "[[reads]]\nplugin = \"my-vault\"\nsettings = [\"my-vault.a\", \"myVault.b\"]\n",
			want:  []ReadGrant{{Plugin: "my-vault", Settings: []string{"my-vault.a", "myVault.b"}}},
		},
		{
			name:  "an array of inline tables",
			reads: "reads = [{ plugin = \"notes\", tables = [\"notes\"] }, { plugin = \"my-vault\", settings = [\"myVault.x\"] }]\n",
			want: []ReadGrant{
				{Plugin: "notes", Tables: []string{"notes"}},
				{Plugin: "my-vault", Settings: []string{"myVault.x"}},
			},
		},
		{
			name:  "empty settings and tables",
			reads: "[[reads]]\nplugin = \"notes\"\ntables = []\nsettings = []\n",
			field: "reads[0]", msg: "grants nothing",
		},
		{
			name:  "no lists at all",
			reads: "[[reads]]\nplugin = \"notes\"\n",
			field: "reads[0]", msg: "grants nothing",
		},
		{
			name:  "a wrong type is reported once",
			reads: "[[reads]]\nplugin = \"notes\"\nsettings = 3\n",
			field: "reads[0].settings", msg: "must be an array of strings, not an integer",
		},
		{
			name:  "plugin not a string",
			reads: "[[reads]]\nplugin = 1\ntables = [\"notes\"]\n",
			field: "reads[0].plugin", msg: "must be a string, not an integer",
		},
		{
			name:  "empty table name",
			reads: "[[reads]]\nplugin = \"notes\"\ntables = [\"\"]\n",
			field: "reads[0].tables[0]", msg: "must not be empty",
		},
		{
			name:  "a table whose physical name is too long",
			reads: "[[reads]]\nplugin = \"my-vault\"\ntables = [\"" + strings.Repeat("t", 60) + "\"]\n",
			field: "reads[0].tables[0]", msg: `over PostgreSQL's limit of 63`,
		},
		{
			name:  "an uppercase table name",
			reads: "[[reads]]\nplugin = \"notes\"\ntables = [\"Notes\"]\n",
			field: "reads[0].tables[0]", msg: `write the table's name as plugin "notes" declares it`,
		},
		{
			name:  "another plugin's namespace",
			reads: "[[reads]]\nplugin = \"my-vault\"\nsettings = [\"notes.title\"]\n",
			field: "reads[0].settings[0]", msg: `outside plugin "my-vault"'s namespace (its keys start with "my-vault." or "myVault.")`,
		},
		{
			name:  "a key that only starts like the id",
			reads: "[[reads]]\nplugin = \"notes\"\nsettings = [\"notesx.title\"]\n",
			field: "reads[0].settings[0]", msg: "outside plugin",
		},
		{
			name:  "a setting key too long",
			reads: "[[reads]]\nplugin = \"notes\"\nsettings = [\"notes." + strings.Repeat("k", 130) + "\"]\n",
			field: "reads[0].settings[0]", msg: "the limit is 128",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := ParseManifest(readsManifest(tt.reads))
			if tt.field == "" {
				require.NoError(t, err)
				require.Equal(t, tt.want, m.Reads)
				return
			}
			require.ErrorIs(t, err, ErrInvalidManifest)
			errs := manifestErrors(t, err)
			require.Len(t, errs, 1, "want exactly one error, got: %v", err)
			require.Equal(t, "audit", errs[0].Plugin)
			require.Equal(t, tt.field, errs[0].Field)
			require.NotZero(t, errs[0].Line)
			require.ErrorContains(t, err, tt.msg)
		})
	}
}

// Every problem of the entries is reported, each with its field.
func TestParseManifestReadsReportsAllProblems(t *testing.T) {
	t.Parallel()
	_, err := ParseManifest(readsManifest(`
[[reads]]
plugin = "auth"
tables = ["Users", "users"]

[[reads]]
plugin = "notes"
settings = ["app.name", "notes.a", "notes.a"]
`))
	var fields []string
	for _, me := range manifestErrors(t, err) {
		fields = append(fields, me.Field)
	}
	require.Equal(t, []string{"reads[0].plugin", "reads[0].tables[0]", "reads[1].settings[0]", "reads[1].settings[2]"}, fields)
}

func TestManifestReadsOf(t *testing.T) {
	t.Parallel()
	m, err := ParseManifest(readManifest(t, "good/reads.toml"))
	require.NoError(t, err)
	require.Equal(t, []string{"notes", "note_tags"}, m.readsOf("notes").Tables)
	require.Equal(t, &m.Reads[1], m.readsOf("my-vault"))
	require.Nil(t, m.readsOf("audit"))
	require.Nil(t, m.readsOf("other"))
}
