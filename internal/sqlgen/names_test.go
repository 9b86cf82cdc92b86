package sqlgen

import (
	"math/rand"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"testing/quick"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost/internal/pluginid"
)

func TestValidName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kind, name string
		want       string // "" when valid, else a part of the message
	}{
		{"table", "notes", ""},
		{"table", "a", ""},
		{"table", "note_tags2", ""},
		{"table", "a1_b2_c3", ""},
		{"table", strings.Repeat("a", 63), ""},
		{"table", strings.Repeat("a", 64), `table "aaaa`},
		{"table", "", `table "": name is empty`},
		{"table", "Notes", `table "Notes": invalid name`},
		{"table", "1notes", "invalid name"},
		{"table", "_notes", "invalid name"},
		{"table", "notes_", "invalid name"},
		{"table", "my__notes", "invalid name"},
		{"table", "my-notes", "invalid name"},
		{"table", "notes\"; DROP TABLE x; --", "invalid name"},
		{"table", "café", "invalid name"},
		{"table", "xmin", ""},
		{"column", "title", ""},
		{"column", "xmin", `column "xmin": name is reserved by PostgreSQL`},
		{"column", "ctid", "reserved"},
		{"column", "Title", `column "Title": invalid name: use lowercase letters, digits and single underscores, starting with a letter`},
	}
	for _, tc := range tests {
		t.Run(tc.kind+"/"+tc.name, func(t *testing.T) {
			t.Parallel()
			err := ValidName(tc.kind, tc.name)
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
	require.ErrorContains(t, ValidName("table", strings.Repeat("a", 64)), "64 bytes, over the limit of 63")
}

func TestQuote(t *testing.T) {
	t.Parallel()
	require.Equal(t, `"notes"`, Quote("notes"))
	require.Equal(t, `"a""b"`, Quote(`a"b`))
	require.Equal(t, `""""`, Quote(`"`))
	require.Equal(t, `""`, Quote(""))
}

func TestInferType(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"id": TypeInteger, "count": TypeInteger,
		"updated_at": TypeTimestamp, "created_at": TypeTimestamp, "birthdate": TypeTimestamp,
		"date": TypeTimestamp, "start_date": TypeTimestamp, "at": TypeText,
		// By exact name and suffix, never substring.
		"message": TypeText, "account_id": TypeText, "discount": TypeText, "ids": TypeText,
		"identity": TypeText, "counter": TypeText, "dated": TypeText, "attribute": TypeText,
		"status": TypeText, "user_count": TypeText, "at_home": TypeText,
	}
	for name, want := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, want, InferType(name))
		})
	}
}

func TestPluginPrefix(t *testing.T) {
	t.Parallel()
	require.Equal(t, "my_plugin__", PluginPrefix("my-plugin"))
	require.Equal(t, "notes__", PluginPrefix("notes"))
	phys, err := PhysicalTable(PluginPrefix("my-plugin"), "entities")
	require.NoError(t, err)
	require.Equal(t, "my_plugin__entities", phys)
}

func TestPhysicalTable(t *testing.T) {
	t.Parallel()
	id40 := strings.Repeat("p", 40)
	tests := []struct {
		name, prefix, table string
		want                string // the physical name, or a part of the error
		ok                  bool
	}{
		{"plugin", "my_plugin__", "entities", "my_plugin__entities", true},
		{"host", "", "schema_ledger", "schema_ledger", true},
		{"host with prefix", "pluginhost_", "ledger", "pluginhost_ledger", true},
		{"fits exactly", id40 + "__", strings.Repeat("t", 21), id40 + "__" + strings.Repeat("t", 21), true},
		{"too long", id40 + "__", strings.Repeat("t", 22),
			`table "tttttttttttttttttttttt": physical name "` + id40 + "__" + strings.Repeat("t", 22) +
				`" is 64 bytes, over PostgreSQL's limit of 63`, false},
		{"bad table", "my_plugin__", "Entities", `table "Entities": invalid name`, false},
		{"prefix from a bad id", PluginPrefix("my--plugin"), "x", `invalid table prefix "my__plugin__"`, false},
		{"prefix from a trailing hyphen", PluginPrefix("my-"), "x", "invalid table prefix", false},
		{"prefix with capitals", PluginPrefix("My"), "x", "invalid table prefix", false},
		{"id too long", strings.Repeat("p", 41) + "__", "x", "the plugin id is 41 bytes, over the limit of 40", false},
		{"prefix without separator", "abc", "x", "invalid table prefix", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := PhysicalTable(tc.prefix, tc.table)
			if tc.ok {
				require.NoError(t, err)
				require.Equal(t, tc.want, got)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestIndexName(t *testing.T) {
	t.Parallel()
	require.Equal(t, "my_plugin__notes__ix_created_at", IndexName("my_plugin__notes", []string{"created_at"}, false))
	require.Equal(t, "my_plugin__notes__ux_a__b", IndexName("my_plugin__notes", []string{"a", "b"}, true))
	require.NotEqual(t, IndexName("p__t", []string{"a", "b"}, false), IndexName("p__t", []string{"a_b"}, false))

	long := "p__" + strings.Repeat("t", 60)
	a := IndexName(long, []string{"a"}, false)
	b := IndexName(long, []string{"b"}, false)
	require.Len(t, a, MaxIdentifier)
	require.NotEqual(t, a, b)
	require.Regexp(t, `^p__t{47}__ix_[0-9a-f]{8}$`, a)
	require.Regexp(t, `^p__t{47}__ux_[0-9a-f]{8}$`, IndexName(long, []string{"a"}, true))
	// A truncation that ends in "_" is trimmed.
	require.Regexp(t, `^p__a{46}__ix_[0-9a-f]{8}$`, IndexName("p__"+strings.Repeat("a", 46)+"_"+strings.Repeat("b", 13), []string{"c"}, false))
}

func TestPGObjectName(t *testing.T) {
	t.Parallel()
	require.Equal(t, "p__t_pkey", pgObjectName("p__t", "", "pkey"))
	require.Equal(t, "p__t_email_key", pgObjectName("p__t", "email", "key"))
	n := pgObjectName(strings.Repeat("a", 61), strings.Repeat("b", 30), "key")
	require.Len(t, n, MaxIdentifier)
	require.Equal(t, strings.Repeat("a", 29)+"_"+strings.Repeat("b", 29)+"_key", n)
}

func TestSplitPhysical(t *testing.T) {
	t.Parallel()
	tests := []struct {
		phys, id, table string
		ok              bool
	}{
		{"my_plugin__entities", "my_plugin", "entities", true},
		{"a_b__c", "a_b", "c", true},
		{"a__b_c", "a", "b_c", true},
		{"schema_ledger", "", "", false},                   // a host table
		{"my_plugin__notes__ix_created_at", "", "", false}, // an index
		{"a___b", "", "", false},
		{"__b", "", "", false},
		{"a__", "", "", false},
		{strings.Repeat("a", 41) + "__b", "", "", false},
	}
	for _, tc := range tests {
		id, table, ok := SplitPhysical(tc.phys)
		require.Equal(t, tc.ok, ok, tc.phys)
		require.Equal(t, tc.id, id, tc.phys)
		require.Equal(t, tc.table, table, tc.phys)
	}
}

// The injectivity of (plugin id, table) → physical name.
//
// Claim: for valid ids i1, i2 and valid table names t1, t2,
// PluginPrefix(i1)+t1 == PluginPrefix(i2)+t2 implies i1 == i2 and t1 == t2.
//
// Proof: let u = the id with "-" replaced by "_". Ids contain no "_", so the
// replacement is reversible. Ids are slugs with single hyphens that neither
// start nor end one, so u contains no "__" and does not end in "_"; the
// physical name is u + "__" + t with t starting with a letter. Its first "__"
// therefore starts at len(u): there is none inside u, and none straddling
// the end of u, which is not "_". So SplitPhysical recovers u and t from the
// physical name alone, and equal physical names have equal u and t, hence
// equal ids. Host tables (prefix "" or "<name>_") have physical names without
// "__", so they never equal a plugin's. The tests below check the lemma
// SplitPhysical(PluginPrefix(id)+t) == (u, t) and the conclusion, by
// exhaustion over a small alphabet, with testing/quick and with a fuzzer.

var (
	slugRE      = regexp.MustCompile(`^[a-z][a-z0-9]*(-[a-z0-9]+)*$`)
	tableNameRE = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
)

func validSlug(s string) bool  { return len(s) <= pluginid.MaxLen && slugRE.MatchString(s) }
func validTable(s string) bool { return len(s) <= MaxIdentifier && tableNameRE.MatchString(s) }

// requireRoundTrip checks the lemma for one valid pair.
func requireRoundTrip(t *testing.T, id, table string) string {
	t.Helper()
	phys := PluginPrefix(id) + table
	u, tb, ok := SplitPhysical(phys)
	require.True(t, ok, "%q + %q = %q", id, table, phys)
	require.Equal(t, strings.ReplaceAll(id, "-", "_"), u)
	require.Equal(t, table, tb)
	require.Equal(t, id, strings.ReplaceAll(u, "_", "-"))
	return phys
}

// strings over alphabet of length up to n that satisfy valid.
func enumerate(alphabet string, n int, valid func(string) bool) []string {
	var out []string
	var rec func(prefix string)
	rec = func(prefix string) {
		if valid(prefix) {
			out = append(out, prefix)
		}
		if len(prefix) == n {
			return
		}
		for _, c := range alphabet {
			rec(prefix + string(c))
		}
	}
	rec("")
	return out
}

func TestPhysicalInjectiveExhaustive(t *testing.T) {
	t.Parallel()
	// Every id of up to 5 bytes over {a, b, 1, -} and every table of up to 5
	// bytes over {a, b, 1, _}: the separators are where collisions would be.
	ids := enumerate("ab1-", 5, validSlug)
	tables := enumerate("ab1_", 5, validTable)
	require.Contains(t, ids, "a-b")
	require.Contains(t, tables, "b_a")
	seen := make(map[string][2]string, len(ids)*len(tables))
	for _, id := range ids {
		for _, table := range tables {
			phys := requireRoundTrip(t, id, table)
			prev, dup := seen[phys]
			require.False(t, dup, "%q + %q and %q + %q both give %q", id, table, prev[0], prev[1], phys)
			seen[phys] = [2]string{id, table}
		}
	}
	require.Len(t, seen, len(ids)*len(tables))
	// The tricky pair from the design notes.
	require.Equal(t, "a_b__c", PluginPrefix("a-b")+"c")
	require.Equal(t, "a__b_c", PluginPrefix("a")+"b_c")
}

// pair is a random valid (id, table) for testing/quick, drawn from a small
// alphabet so that near-collisions are common.
type pair struct{ ID, Table string }

func (pair) Generate(r *rand.Rand, _ int) reflect.Value {
	return reflect.ValueOf(pair{ID: randomName(r, "-", pluginid.MaxLen), Table: randomName(r, "_", 20)})
}

// randomName returns a valid name of segments of [ab1] joined by sep.
func randomName(r *rand.Rand, sep string, max int) string {
	var b strings.Builder
	b.WriteByte("ab"[r.Intn(2)])
	for b.Len() < max && r.Intn(4) > 0 {
		if r.Intn(3) == 0 && b.Len()+2 <= max {
			b.WriteString(sep)
		}
		b.WriteByte("ab1"[r.Intn(3)])
	}
	return b.String()
}

func TestPhysicalInjectiveQuick(t *testing.T) {
	t.Parallel()
	property := func(p, q pair) bool {
		if !validSlug(p.ID) || !validTable(p.Table) || !validSlug(q.ID) || !validTable(q.Table) {
			return false
		}
		pp, qp := PluginPrefix(p.ID)+p.Table, PluginPrefix(q.ID)+q.Table
		u, table, ok := SplitPhysical(pp)
		return ok && u == strings.ReplaceAll(p.ID, "-", "_") && table == p.Table &&
			(p == q) == (pp == qp)
	}
	require.NoError(t, quick.Check(property, &quick.Config{MaxCount: 20000}))
	// Pairs that share a physical name only when equal: check the equal
	// case is reached too.
	require.True(t, property(pair{"a-b", "c"}, pair{"a-b", "c"}))
	require.True(t, property(pair{"a-b", "c"}, pair{"a", "b_c"}))
}

func FuzzPhysicalInjective(f *testing.F) {
	f.Add("a-b", "c", "a", "b_c")
	f.Add("my-plugin", "entities", "my", "plugin_entities")
	f.Add("a", "b", "a", "b")
	f.Add("x1-y2", "z3_w", "x1", "y2_z3_w")
	f.Fuzz(func(t *testing.T, id1, t1, id2, t2 string) {
		if !validSlug(id1) || !validTable(t1) || !validSlug(id2) || !validTable(t2) {
			t.Skip()
		}
		p1, p2 := requireRoundTrip(t, id1, t1), requireRoundTrip(t, id2, t2)
		if id1 != id2 || t1 != t2 {
			require.NotEqual(t, p1, p2, "%q + %q and %q + %q", id1, t1, id2, t2)
		}
	})
}
