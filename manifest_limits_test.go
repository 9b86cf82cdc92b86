package pluginhost

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// header is the start of a valid manifest of plugin "big".
const header = "id = \"big\"\nname = \"Big\"\nversion = \"1.0.0\"\n"

// padTo returns s followed by comment lines up to n bytes.
func padTo(s string, n int) string {
	var b strings.Builder
	b.WriteString(s)
	for b.Len() < n {
		b.WriteString("# " + strings.Repeat("x", min(60, max(0, n-b.Len()-3))) + "\n")
	}
	return b.String()[:n]
}

// A manifest nested deeper than the limit is refused before it is
// decoded: a 32 KB manifest of nested inline tables once took the TOML
// decoder 13 to 16 s of CPU. The test asserts the error; the decoder's time
// is in BenchmarkParseManifestLimits.
func TestParseManifestRefusesDeepNesting(t *testing.T) {
	t.Parallel()
	const size = 32 << 10
	n := (size - len(header) - 8) / 4
	tests := map[string]struct {
		doc  string
		line int
	}{
		"inline tables": {header + "x = " + strings.Repeat("{a=", n) + "1" + strings.Repeat("}", n) + "\n", 4},
		"dotted key":    {header + strings.Repeat("a.", n*2) + "a = 1\n", 4},
		"table header":  {header + "\n[" + strings.Repeat("a.", n*2) + "a]\n", 5},
		"arrays":        {header + "x = " + strings.Repeat("[", n*2) + "1" + strings.Repeat("]", n*2) + "\n", 4},
		"inline tables over lines": {header + "x = {\n" + strings.Repeat("a = {\n", n/2) + "b = 1" + strings.Repeat("}", n/2) + "}\n",
			4 + MaxManifestDepth},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			require.LessOrEqual(t, len(tc.doc), MaxManifestSize)
			m, err := ParseManifest([]byte(tc.doc))
			require.Nil(t, m)
			require.ErrorIs(t, err, ErrInvalidManifest)
			var me *ManifestError
			require.True(t, errors.As(err, &me), "%T", err)
			require.Equal(t, "big", me.Plugin, "the id is read without decoding")
			require.Equal(t, tc.line, me.Line)
			require.ErrorContains(t, err, "more than the limit of 16 (MaxManifestDepth")
			require.ErrorContains(t, err, `pluginhost: plugin "big": plugin.toml line`)
		})
	}
}

func TestParseManifestDepthAtTheLimit(t *testing.T) {
	t.Parallel()
	// x is 1 level deep, each key below one more: a at 2, …, up to 16.
	within := header + "x = " + strings.Repeat("{a=", MaxManifestDepth-1) + "1" + strings.Repeat("}", MaxManifestDepth-1) + "\n"
	m, err := ParseManifest([]byte(within))
	require.NoError(t, err)
	require.Equal(t, []string{`unknown field "x" (line 4) ignored`}, m.Warnings)

	over := header + "x = " + strings.Repeat("{a=", MaxManifestDepth) + "1" + strings.Repeat("}", MaxManifestDepth) + "\n"
	_, err = ParseManifest([]byte(over))
	require.ErrorContains(t, err, "nested 17 levels deep")
}

func TestParseManifestRefusesLargeManifest(t *testing.T) {
	t.Parallel()
	m, err := ParseManifest([]byte(padTo(header, MaxManifestSize)))
	require.NoError(t, err, "exactly the limit")
	require.Equal(t, "big", m.ID)

	m, err = ParseManifest([]byte(padTo(header, MaxManifestSize+1)))
	require.Nil(t, m)
	require.ErrorIs(t, err, ErrInvalidManifest)
	var me *ManifestError
	require.ErrorAs(t, err, &me)
	require.Equal(t, "big", me.Plugin)
	require.Zero(t, me.Line)
	require.EqualError(t, err, `pluginhost: plugin "big": plugin.toml: 65537 bytes, more than the limit of 65536 (MaxManifestSize)`)

	_, err = ParseManifest([]byte(padTo("# no id\n", 1<<20)))
	require.EqualError(t, err, `pluginhost: plugin.toml: 1048576 bytes, more than the limit of 65536 (MaxManifestSize)`)
}

// The registry reports a refused manifest as the plugin's, by the id read
// without decoding.
func TestRegisterDeepManifestKeepsItsID(t *testing.T) {
	t.Parallel()
	doc := header + "x = " + strings.Repeat("{a=", 8000) + "1" + strings.Repeat("}", 8000) + "\n"
	reg := NewRegistry()
	require.NoError(t, reg.Register(rawPlugin(doc)))
	regs := reg.snapshot()
	require.Len(t, regs, 1)
	require.Equal(t, "big", regs[0].key)
	require.ErrorContains(t, regs[0].err, "MaxManifestDepth")
}

type rawPlugin string

func (p rawPlugin) Manifest() []byte { return []byte(p) }

// BenchmarkParseManifestLimits parses the costliest manifests the limits
// let through, beside a typical one: compare them as ratios.
func BenchmarkParseManifestLimits(b *testing.B) {
	deep := strings.Repeat("{a=", MaxManifestDepth-1) + "1" + strings.Repeat("}", MaxManifestDepth-1)
	var inline, dotted strings.Builder
	inline.WriteString(header)
	dotted.WriteString(header)
	for i := 0; inline.Len() < MaxManifestSize-200; i++ {
		inline.WriteString("k" + strconv.Itoa(i) + " = " + deep + "\n")
	}
	for i := 0; dotted.Len() < MaxManifestSize-200; i++ {
		dotted.WriteString("k" + strconv.Itoa(i) + "." + strings.Repeat("a.", MaxManifestDepth-2) + "a = 1\n")
	}
	cases := map[string]string{
		"typical":                   string(readManifest(b, "good/full.toml")),
		"64KiB of depth-16 inline":  inline.String(),
		"64KiB of depth-16 dotted":  dotted.String(),
		"32KiB nested, refused":     header + "x = " + strings.Repeat("{a=", 8000) + "1" + strings.Repeat("}", 8000),
		"64KiB of comments at size": padTo(header, MaxManifestSize),
	}
	for name, doc := range cases {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(doc)))
			for b.Loop() {
				_, _ = ParseManifest([]byte(doc))
			}
		})
	}
}
