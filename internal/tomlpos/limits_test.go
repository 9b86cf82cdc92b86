package tomlpos

import (
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/stretchr/testify/require"
)

func TestDeeper(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		src   string
		limit int
		line  int // 0: within the limit
		depth int
	}{
		{"flat", "a = 1\nb = 'x'\n", 1, 0, 0},
		{"flat over zero", "a = 1\n", 0, 1, 1},
		{"dotted key", "a.b.c = 1\n", 3, 0, 0},
		{"dotted key over", "x = 1\na.b.c.d = 1\n", 3, 2, 4},
		{"quoted parts", "a.\"b.c\".'d' = 1\n", 3, 0, 0},
		{"header", "[a.b]\nc = 1\n", 3, 0, 0},
		{"header key over", "[a.b]\nc = 1\n", 2, 2, 3},
		{"header over", "[a.b.c]\n", 2, 1, 3},
		{"array of tables", "[[settings]]\nkey = 'a'\n", 3, 0, 0},
		{"array of tables over", "[[settings]]\nkey = 'a'\n", 2, 2, 3},
		{"inline table", "c = { d = [1] }\n", 2, 1, 3},
		{"inline tables", "x = {a = {b = {c = 1}}}\n", 4, 0, 0},
		{"inline tables over", "x = {a = {b = {c = 1}}}\n", 3, 1, 4},
		{"inline dotted key", "x = {a.b.c = 1}\n", 3, 1, 4},
		{"second entry", "x = {a = 1, b.c.d = 2}\n", 3, 1, 4},
		{"arrays", "x = [[[1]]]\n", 4, 0, 0},
		{"arrays over", "x = [[[1]]]\n", 3, 1, 4},
		{"arrays closed", "x = [[1], [2]]\ny = 1\n", 3, 0, 0},
		{"multi-line array", "x = [\n  1,\n  [\n    [2],\n  ],\n]\n", 3, 4, 4},
		{"inline tables in an array", "x = [{a = 1}, {b = [1]}]\n", 3, 1, 4},
		{"brackets in strings", "x = '[[[[{{{{'\ny = \"[[[[\"\nz = '''\n[[[[\n'''\n", 1, 0, 0},
		{"brackets in comments", "x = 1 # [[[[ {a={b={c=1}}}\n# [a.b.c.d]\n", 1, 0, 0},
		{"multi-line string with quotes", "x = \"\"\"a \"\" [[[ \"\"\"\ny = 1\n", 1, 0, 0},
		{"escaped quote", "x = \"a\\\" [[[\"\ny = [1]\n", 1, 2, 2},
		{"after a header the top level", "[a.b.c]\n[d]\ne = 1\n", 3, 0, 0},
		{"inline table across lines", "x = {\n  a = {\n    b = 1\n  }\n}\n", 2, 3, 3},
		{"empty inline table", "x = {}\ny = 1\n", 1, 0, 0},
		{"unterminated", "x = [[[[", 2, 1, 3},
		{"garbage", "= ] } ,, [[ \"\n{{{", 1, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			line, depth := Deeper([]byte(tc.src), tc.limit)
			require.Equal(t, tc.line, line, "line")
			require.Equal(t, tc.depth, depth, "depth")
		})
	}
}

// The depth Deeper counts is the depth of the decoded document: its paths,
// with each array element a level.
func TestDeeperMatchesTheDecodedDocument(t *testing.T) {
	t.Parallel()
	docs := []string{
		"a = 1",
		"a.b.c = 1",
		"[a.b]\nc = 1",
		"[[s]]\nk = 1",
		"c = { d = [1] }",
		"x = {a = {b = {c = 1}}}",
		"x = [[[1]]]",
		"x = [{a = 1}, {b = [1]}]",
		"[a]\nb.c = { d.e = [[{ f = 1 }]] }",
	}
	for _, doc := range docs {
		var v map[string]any
		_, err := toml.Decode(doc, &v)
		require.NoError(t, err, doc)
		want := decodedDepth(v)
		_, over := Deeper([]byte(doc), want-1)
		require.Equal(t, want, over, "%s: deeper than %d", doc, want-1)
		line, _ := Deeper([]byte(doc), want)
		require.Zero(t, line, "%s: within %d", doc, want)
	}
}

// decodedDepth is the depth of the deepest value of a decoded document:
// 1 for a key of the top-level table.
func decodedDepth(v any) int {
	deepest := 0
	switch v := v.(type) {
	case map[string]any:
		for _, e := range v {
			deepest = max(deepest, 1+decodedDepth(e))
		}
	case []map[string]any:
		for _, e := range v {
			deepest = max(deepest, 1+decodedDepth(e))
		}
	case []any:
		for _, e := range v {
			deepest = max(deepest, 1+decodedDepth(e))
		}
	}
	return deepest
}

func TestDeeperOnHugeNesting(t *testing.T) {
	t.Parallel()
	// Inputs that cost the decoder time quadratic in their nesting; Deeper
	// reads each once.
	for name, src := range map[string]string{
		"inline tables": "x = " + strings.Repeat("{a=", 100_000) + "1" + strings.Repeat("}", 100_000),
		"dotted key":    strings.Repeat("a.", 100_000) + "a = 1",
		"header":        "[" + strings.Repeat("a.", 100_000) + "a]",
		"arrays":        "x = " + strings.Repeat("[", 100_000),
	} {
		line, depth := Deeper([]byte(src), 16)
		require.Equal(t, 1, line, name)
		require.Greater(t, depth, 16, name)
	}
}

func TestTopString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, src, want string
		ok              bool
	}{
		{"basic", "name = 'x'\nid = \"notes\"\n", "notes", true},
		{"literal", "id = 'notes'", "notes", true},
		{"escaped", `id = "a\"b"`, `a"b`, true},
		{"spaces", "  id   =   \"notes\"  # the id", "notes", true},
		{"after a multi-line string", "d = \"\"\"\nid = \"fake\"\n\"\"\"\nid = \"real\"", "real", true},
		{"after an array", "x = [\n 'id = \"fake\"',\n]\nid = 'real'", "real", true},
		{"under a header", "[t]\nid = 'no'", "", false},
		{"dotted", "a.id = 'no'", "", false},
		{"not a string", "id = 3", "", false},
		{"multi-line", "id = '''x'''", "", false},
		{"unterminated", "id = \"x", "", false},
		{"absent", "name = 'x'", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ok := TopString([]byte(tc.src), "id")
			require.Equal(t, tc.ok, ok)
			require.Equal(t, tc.want, got)
		})
	}
}

func BenchmarkDeeper(b *testing.B) {
	src := []byte("x = " + strings.Repeat("{a=", 8000) + "1" + strings.Repeat("}", 8000))
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		Deeper(src, 16)
	}
}

func FuzzDeeper(f *testing.F) {
	f.Add("[a.b]\nc = { d = [1] }\n", 3)
	f.Add("x = [{a = 1}, {b = [1]}]", 2)
	f.Fuzz(func(t *testing.T, src string, limit int) {
		limit = limit % 32
		line, depth := Deeper([]byte(src), limit)
		if line != 0 && depth <= limit || line == 0 && depth != 0 {
			t.Fatalf("line %d depth %d limit %d", line, depth, limit)
		}
		// A document that decodes is as deep as Deeper counts.
		var v map[string]any
		if _, err := toml.Decode(src, &v); err != nil || limit < 0 {
			return
		}
		if want := decodedDepth(v); want > limit && line == 0 {
			t.Fatalf("%q is %d deep, more than %d, and Deeper found nothing", src, want, limit)
		}
	})
}
