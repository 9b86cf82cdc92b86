package pluginhost_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

// grantOwner is the manifest of plugin "notes": a plain number, a plain
// string and an encrypted string.
var grantOwner = manifest("notes", "1.0.0", `
[[settings]]
key = "notes.max_body_length"
type = "number"
default = 100

[[settings]]
key = "notes.title"
type = "string"
default = "Notes"

[[settings]]
key = "notes.secret"
type = "string"
encrypted = true
`)

// grantReader is the manifest of plugin "audit", which depends on notes
// and reads some of its settings: one plain, one encrypted, one notes does
// not declare.
var grantReader = manifest("audit", "1.0.0", `
[dependencies]
notes = "^1.0"

[[reads]]
plugin = "notes"
tables = ["notes"]
settings = ["notes.max_body_length", "notes.secret", "notes.missing"]
`)

// grantOwnerPlugin is plugin notes with manifest, and the table notes
// that grantReader reads.
func grantOwnerPlugin(manifest string) *fake {
	return &fake{manifest: manifest, tables: []pluginhost.Table{{Name: "notes", Columns: []pluginhost.Column{{Name: "id", PrimaryKey: true}}}}}
}

// startGrants starts notes and audit (and others) on e with a secret key,
// stores notes.secret, and returns the Manager and audit's Host.
func startGrants(t *testing.T, e *env, others ...pluginhost.Plugin) (*pluginhost.Manager, *pluginhost.Host) {
	t.Helper()
	plugins := append([]pluginhost.Plugin{grantOwnerPlugin(grantOwner), &fake{manifest: grantReader}}, others...)
	cfg := e.config(plugins...)
	cfg.SecretKey = make([]byte, 32)
	m := e.start(cfg)
	require.NoError(t, m.Settings().Set(context.Background(), "notes.secret", "s3cret"))
	h, err := m.Host("audit")
	require.NoError(t, err)
	return m, h
}

// A setting granted by [[reads]] is readable through the reader's Host;
// one not granted, and one granted but encrypted, are refused; a grant
// does not make the key writable.
func TestHostSettingsReadGrants(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		m, h := startGrants(t, e)
		ps := h.Settings()

		n, err := ps.Int("notes.max_body_length")
		require.NoError(t, err, "a granted setting is readable")
		require.EqualValues(t, 100, n)
		require.True(t, ps.IsSet("notes.max_body_length"))
		require.NoError(t, m.Settings().Set(ctx, "notes.max_body_length", 250))
		n, err = ps.Int("notes.max_body_length")
		require.NoError(t, err)
		require.EqualValues(t, 250, n, "reads see the owner's current value")

		_, err = ps.String("notes.title")
		require.ErrorIs(t, err, pluginhost.ErrSettingAccess, "a setting not granted is refused")
		require.ErrorContains(t, err, `plugin "audit" cannot read setting "notes.title": it belongs to plugin "notes"`)
		require.False(t, ps.IsSet("notes.title"))

		_, err = ps.String("notes.secret")
		require.ErrorIs(t, err, pluginhost.ErrSettingAccess, "an encrypted setting is refused even when granted")
		require.ErrorContains(t, err, `plugin "audit" cannot read setting "notes.secret" of plugin "notes": it is encrypted`)
		require.NotContains(t, err.Error(), "s3cret")
		require.False(t, ps.IsSet("notes.secret"))

		err = ps.Set(ctx, "notes.max_body_length", 1)
		require.ErrorIs(t, err, pluginhost.ErrSettingAccess, "a grant is read-only")
		require.ErrorContains(t, err, `belongs to plugin "notes"`)
		got, err := m.Settings().Int("notes.max_body_length")
		require.NoError(t, err)
		require.EqualValues(t, 250, got, "the refused Set wrote nothing")

		_, err = ps.String("notes.missing")
		require.ErrorIs(t, err, pluginhost.ErrNotFound, "a granted key nobody declares is undefined")
	})
}

// A plugin without a grant cannot read what another plugin's grant lets
// that plugin read: grants are per reader.
func TestHostSettingsReadGrantIsTheReaders(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		other := &fake{manifest: manifest("other", "1.0.0", "[dependencies]\nnotes = \"*\"\n")}
		m, _ := startGrants(t, e, other)
		h, err := m.Host("other")
		require.NoError(t, err)
		_, err = h.Settings().Number("notes.max_body_length")
		require.ErrorIs(t, err, pluginhost.ErrSettingAccess)
		require.ErrorContains(t, err, `plugin "other" cannot read setting "notes.max_body_length"`)
	})
}

// Start checks the granted settings against what their owner declares: a
// key it does not declare and an encrypted key are warned about in the
// reader's status and log; the reader still runs and its status lists its
// grants.
func TestReadGrantWarnings(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		m, _ := startGrants(t, e)
		st := status(t, m, "audit")
		require.Equal(t, pluginhost.StateRunning, st.State)
		requireWarning(t, st.Warnings, `reads setting "notes.missing" of plugin "notes", which notes does not declare`)
		requireWarning(t, st.Warnings, `reads setting "notes.secret" of plugin "notes", which is encrypted`)
		require.Len(t, st.Warnings, 2, "the readable grant is not warned about: %q", st.Warnings)
		require.Equal(t, []pluginhost.ReadGrant{{
			Plugin:   "notes",
			Tables:   []string{"notes"},
			Settings: []string{"notes.max_body_length", "notes.secret", "notes.missing"},
		}}, st.Reads)
		require.Nil(t, status(t, m, "notes").Reads, "a plugin without [[reads]] lists none")
		require.Empty(t, status(t, m, "notes").Warnings)

		logs := e.logs.String()
		require.True(t, logLine(logs, "WARN", "plugin=audit", "notes.missing", "does not declare"), logs)
		require.True(t, logLine(logs, "WARN", "plugin=audit", "notes.secret", "encrypted"), logs)

		st.Reads[0].Settings[0] = "changed"
		require.Equal(t, "notes.max_body_length", status(t, m, "audit").Reads[0].Settings[0], "Status returns a copy")
	})
}

// A key of the grant's plugin namespace that another owner holds (the
// core may define any key) is warned about as not the plugin's.
func TestReadGrantWarnsAboutAnotherOwner(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		reader := &fake{manifest: manifest("audit", "1.0.0", `
[dependencies]
notes = "^1.0"

[[reads]]
plugin = "notes"
settings = ["notes.mode"]
`)}
		cfg := e.config(&fake{manifest: grantOwner}, reader)
		cfg.CoreSettings = []pluginhost.Setting{{Key: "notes.mode", Type: pluginhost.StringType}}
		m := e.start(cfg)
		requireWarning(t, status(t, m, "audit").Warnings, `reads setting "notes.mode" of plugin "notes", which notes does not own: it belongs to the core`)
	})
}

// A granted key that was stored sealed stays unreadable to the reader
// after its owner's declaration drops encrypted: the key stays encrypted.
func TestReadGrantOnKeyStoredSealed(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		cfg := e.config(grantOwnerPlugin(grantOwner), &fake{manifest: grantReader})
		cfg.SecretKey = make([]byte, 32)
		m1, err := pluginhost.New(cfg)
		require.NoError(t, err)
		require.NoError(t, m1.Start(ctx))
		require.NoError(t, m1.Settings().Set(ctx, "notes.secret", "s3cret"))
		require.NoError(t, m1.Shutdown(ctx))

		plain := manifest("notes", "1.1.0", `
[[settings]]
key = "notes.secret"
type = "string"
`)
		cfg2 := e.config(grantOwnerPlugin(plain), &fake{manifest: grantReader})
		cfg2.SecretKey = cfg.SecretKey
		m2 := e.start(cfg2)
		h, err := m2.Host("audit")
		require.NoError(t, err)
		_, err = h.Settings().String("notes.secret")
		require.ErrorIs(t, err, pluginhost.ErrSettingAccess)
		require.ErrorContains(t, err, "it is encrypted")
		requireWarning(t, status(t, m2, "audit").Warnings, `reads setting "notes.secret" of plugin "notes", which is encrypted`)
	})
}

// A read through a plugin's Host, own or granted, does not allocate. Not
// parallel: AllocsPerRun counts every allocation in the process.
func TestPluginSettingsReadDoesNotAllocate(t *testing.T) {
	h := grantsHost(t)
	ps := h.Settings()
	allocs := testing.AllocsPerRun(1000, func() {
		n, _ := ps.Number("notes.max_body_length")
		i, _ := ps.Int("notes.max_body_length")
		sinkNumber = n + float64(i)
		sinkBool = ps.IsSet("notes.max_body_length")
		sinkString, _ = h.Settings().String("audit.name")
	})
	require.Zero(t, allocs, "a plugin's settings read must not allocate")
	require.InDelta(t, 200, sinkNumber, 0)
	require.True(t, sinkBool)
	require.Equal(t, "audit", sinkString)
}

// BenchmarkPluginSettingsGet measures reads through a plugin's Host: its
// own setting and a granted one of a dependency (0 allocs/op).
func BenchmarkPluginSettingsGet(b *testing.B) {
	ps := grantsHost(b).Settings()
	for _, key := range []string{"audit.name", "notes.title"} {
		b.Run(key, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				v, err := ps.String(key)
				if err != nil {
					b.Fatal(err)
				}
				sinkString = v
			}
		})
	}
}

// grantsHost starts notes and a reader audit that owns audit.name and is
// granted notes.max_body_length and notes.title, on an in-memory SQLite
// database, and returns audit's Host.
func grantsHost(tb testing.TB) *pluginhost.Host {
	tb.Helper()
	reader := &fake{manifest: manifest("audit", "1.0.0", `
[dependencies]
notes = "^1.0"

[[reads]]
plugin = "notes"
settings = ["notes.max_body_length", "notes.title"]

[[settings]]
key = "audit.name"
type = "string"
default = "audit"
`)}
	m, err := pluginhost.New(pluginhost.Config{
		DB:        testdb.OpenSQLite(tb),
		Registry:  registry(tb, &fake{manifest: grantOwner}, reader),
		Logger:    discardLogger(),
		SecretKey: make([]byte, 32),
	})
	require.NoError(tb, err)
	require.NoError(tb, m.Start(context.Background()))
	tb.Cleanup(func() { _ = m.Shutdown(context.Background()) })
	h, err := m.Host("audit")
	require.NoError(tb, err)
	return h
}
