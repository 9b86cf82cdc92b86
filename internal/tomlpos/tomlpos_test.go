package tomlpos_test

import (
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost/internal/tomlpos"
)

func TestIndex(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		src  string
		want tomlpos.Lines
	}{
		{
			name: "empty",
			src:  "",
			want: tomlpos.Lines{},
		},
		{
			name: "top-level keys, comments and blank lines",
			src: `# a comment
id = "notes"   # trailing comment

name = 'Notes'
  version="1.0.0"
`,
			want: tomlpos.Lines{"id": 2, "name": 4, "version": 5},
		},
		{
			name: "tables",
			src: `id = "x"
[dependencies]
notes = "^1.0.0"
"quoted-dep" = "*"

[config.api_token]
type = "string"
`,
			want: tomlpos.Lines{
				"id":                      1,
				"dependencies":            2,
				"dependencies.notes":      3,
				"dependencies.quoted-dep": 4,
				"config":                  6,
				"config.api_token":        6,
				"config.api_token.type":   7,
			},
		},
		{
			name: "arrays of tables",
			src: `[[setting_groups]]
id = "a"

[[settings]]
key = "a"

[[settings]]
key = "b"
default = 3
[[setting_groups]]
id = "b"
`,
			want: tomlpos.Lines{
				"setting_groups":       1,
				"setting_groups[0]":    1,
				"setting_groups[0].id": 2,
				"settings":             4,
				"settings[0]":          4,
				"settings[0].key":      5,
				"settings[1]":          7,
				"settings[1].key":      8,
				"settings[1].default":  9,
				"setting_groups[1]":    10,
				"setting_groups[1].id": 11,
			},
		},
		{
			name: "sub-table and nested array of an array element",
			src: `[[fruit]]
name = "apple"
[fruit.physical]
color = "red"
[[fruit.variety]]
name = "fuji"
[[fruit]]
name = "banana"
[[fruit.variety]]
name = "plantain"
`,
			want: tomlpos.Lines{
				"fruit":                    1,
				"fruit[0]":                 1,
				"fruit[0].name":            2,
				"fruit[0].physical":        3,
				"fruit[0].physical.color":  4,
				"fruit[0].variety":         5,
				"fruit[0].variety[0]":      5,
				"fruit[0].variety[0].name": 6,
				"fruit[1]":                 7,
				"fruit[1].name":            8,
				"fruit[1].variety":         9,
				"fruit[1].variety[0]":      9,
				"fruit[1].variety[0].name": 10,
			},
		},
		{
			name: "quoted and dotted keys and headers",
			src: `"quoted key" = 1
'literal.key' = 2
a.b . "c" = 3
"esc\u0041\t" = 4
[ "my table" . 'sub' ]  # comment
x = 5
`,
			want: tomlpos.Lines{
				"quoted key":     1,
				"literal.key":    2,
				"a":              3,
				"a.b":            3,
				"a.b.c":          3,
				"escA\t":         4,
				"my table":       5,
				"my table.sub":   5,
				"my table.sub.x": 6,
			},
		},
		{
			name: "multi-line strings hide their contents",
			src: `description = """
fake = "not a key"
[not.a.table]
\"""still inside"""
after = 1
literal = '''
[[nope]]
x = 1'''
tricky = """a""""" # five quotes end it
last = 2
`,
			want: tomlpos.Lines{"description": 1, "after": 5, "literal": 6, "tricky": 9, "last": 10},
		},
		{
			name: "multi-line arrays and inline tables hide their contents",
			src: `permissions = [
  "db.read", # fake = 1
  "a]b", 'c[d',
  """
  [x]
  """,
]
inline = { a = 1,
  b = [1, 2],
  c = { d = 2 } }
arr = [{ k = 1 }, { k = 2 }]
after = 3
`,
			want: tomlpos.Lines{"permissions": 1, "inline": 8, "arr": 11, "after": 12},
		},
		{
			name: "windows line endings and a byte order mark",
			src:  "\ufeffid = \"x\"\r\n[t]\r\nk = 1\r\n",
			want: tomlpos.Lines{"id": 1, "t": 2, "t.k": 3},
		},
		{
			name: "strings with escaped quotes",
			src: `a = "say \"b = 1\""
c = 'it''s'
d = 2
`,
			want: tomlpos.Lines{"a": 1, "c": 2, "d": 3},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, tomlpos.Index([]byte(tt.src)))
		})
	}
}

func TestIndexMalformed(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		src  string
		want tomlpos.Lines
	}{
		{name: "unterminated header", src: "[a\nb = 1\n", want: tomlpos.Lines{"b": 2}},
		{name: "unterminated double header", src: "[[a]\nb = 1\n", want: tomlpos.Lines{"b": 2}},
		{name: "key without value", src: "a\nb = 1\n", want: tomlpos.Lines{"b": 2}},
		{name: "unterminated quoted key", src: "\"a = 1\nb = 1\n", want: tomlpos.Lines{"b": 2}},
		{name: "unterminated multi-line string", src: "a = \"\"\"\nb = 1\n", want: tomlpos.Lines{"a": 1}},
		{name: "stray closing bracket", src: "a = ]]\nb = 1\n", want: tomlpos.Lines{"a": 1, "b": 2}},
		{name: "NUL bytes", src: "\x00a = 1\x00\nb = 1\n", want: tomlpos.Lines{"a": 1, "b": 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, tomlpos.Index([]byte(tt.src)))
		})
	}
}

func TestLine(t *testing.T) {
	t.Parallel()

	lines := tomlpos.Index([]byte(`id = "x"
[[settings]]
key = "a"
[[settings]]
key = "b"
[config.token]
type = "string"
`))
	tests := []struct {
		path string
		want int
	}{
		{"id", 1},
		{"settings[1].key", 5},
		{"settings[1].default", 4},
		{"settings[7].default", 2},
		{"config.token.default", 6},
		{"config.other.type", 6},
		{"missing", 0},
		{"missing.child[3]", 0},
		{"", 0},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, lines.Line(tt.path))
		})
	}
	require.Zero(t, tomlpos.Lines(nil).Line("id"))
}

func TestParent(t *testing.T) {
	t.Parallel()

	tests := []struct{ path, want string }{
		{"settings[1].default", "settings[1]"},
		{"settings[1]", "settings"},
		{"settings", ""},
		{"config.api_token.type", "config.api_token"},
		{"a[0].b[2]", "a[0].b"},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, tomlpos.Parent(tt.path))
		})
	}
}

// FuzzIndex checks that Index never panics and, on documents BurntSushi/toml
// accepts, records every top-level key on a line that exists.
func FuzzIndex(f *testing.F) {
	f.Add([]byte("id = \"x\"\n[[settings]]\nkey = 'a'\n"))
	f.Add([]byte("a = \"\"\"\nb\n\"\"\"\nc = [\n1,\n]\n"))
	f.Add([]byte("[a.'b'.\"c\"]\nd.e = { f = 1 }\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		lines := tomlpos.Index(src)
		total := 1
		for _, c := range src {
			if c == '\n' {
				total++
			}
		}
		for path, n := range lines {
			if n < 1 || n > total {
				t.Fatalf("path %q on line %d of %d", path, n, total)
			}
		}
		var doc map[string]any
		if _, err := toml.Decode(string(src), &doc); err != nil {
			return
		}
		for key := range doc {
			if _, ok := lines[key]; !ok {
				t.Fatalf("top-level key %q not indexed in %q: %v", key, src, lines)
			}
		}
	})
}
