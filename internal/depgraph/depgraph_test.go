package depgraph

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSort(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		nodes  []string
		deps   map[string][]string
		order  []string
		cycles map[string]string
	}{
		{
			name:   "no edges sorts by id",
			nodes:  []string{"c", "a", "b"},
			order:  []string{"a", "b", "c"},
			cycles: map[string]string{},
		},
		{
			name:   "dependencies first, ties by id",
			nodes:  []string{"audit", "notes", "alpha", "zeta"},
			deps:   map[string][]string{"audit": {"notes"}, "alpha": {"zeta"}},
			order:  []string{"notes", "audit", "zeta", "alpha"},
			cycles: map[string]string{},
		},
		{
			name:   "missing dependency ignored",
			nodes:  []string{"a"},
			deps:   map[string][]string{"a": {"ghost"}},
			order:  []string{"a"},
			cycles: map[string]string{},
		},
		{
			name:   "two-node cycle",
			nodes:  []string{"b", "a", "c"},
			deps:   map[string][]string{"a": {"b"}, "b": {"a"}},
			order:  []string{"c"},
			cycles: map[string]string{"a": "a -> b -> a", "b": "a -> b -> a"},
		},
		{
			name:   "three-node cycle with a dependent outside it",
			nodes:  []string{"x", "y", "z", "user"},
			deps:   map[string][]string{"x": {"y"}, "y": {"z"}, "z": {"x"}, "user": {"z"}},
			order:  []string{"user"},
			cycles: map[string]string{"x": "x -> y -> z -> x", "y": "x -> y -> z -> x", "z": "x -> y -> z -> x"},
		},
		{
			name:   "self loop",
			nodes:  []string{"a", "b"},
			deps:   map[string][]string{"a": {"a"}, "b": {"a"}},
			order:  []string{"b"},
			cycles: map[string]string{"a": "a -> a"},
		},
		{
			name:  "diamond",
			nodes: []string{"top", "left", "right", "bottom"},
			deps: map[string][]string{
				"top": {"left", "right"}, "left": {"bottom"}, "right": {"bottom"},
			},
			order:  []string{"bottom", "left", "right", "top"},
			cycles: map[string]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := Sort(tt.nodes, tt.deps)
			require.Equal(t, tt.order, res.Order)
			require.Equal(t, tt.cycles, res.Cycles)
		})
	}
}

func TestSortInOrder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		nodes  []string
		deps   map[string][]string
		order  []string
		cycles map[string]string
	}{
		{
			name:   "no edges keeps the given order",
			nodes:  []string{"c", "a", "b"},
			order:  []string{"c", "a", "b"},
			cycles: map[string]string{},
		},
		{
			name:   "dependencies first, ties by position",
			nodes:  []string{"notes", "users", "tags", "accounts"},
			deps:   map[string][]string{"notes": {"users", "tags"}, "users": {"accounts"}},
			order:  []string{"tags", "accounts", "users", "notes"},
			cycles: map[string]string{},
		},
		{
			name:   "cycle written from its earliest node",
			nodes:  []string{"root", "x", "c", "b"},
			deps:   map[string][]string{"x": {"root", "b"}, "c": {"x"}, "b": {"c"}},
			order:  []string{"root"},
			cycles: map[string]string{"x": "x -> b -> c -> x", "b": "x -> b -> c -> x", "c": "x -> b -> c -> x"},
		},
		{
			name:   "cycle reached from an earlier node",
			nodes:  []string{"z", "b", "a"},
			deps:   map[string][]string{"z": {"a"}, "a": {"b"}, "b": {"a"}},
			order:  []string{"z"},
			cycles: map[string]string{"a": "b -> a -> b", "b": "b -> a -> b"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := SortInOrder(tt.nodes, tt.deps)
			require.Equal(t, tt.order, res.Order)
			require.Equal(t, tt.cycles, res.Cycles)
		})
	}
}

func TestSortIgnoresTheOrderOfNodes(t *testing.T) {
	t.Parallel()
	deps := map[string][]string{"x": {"y"}, "y": {"z"}, "z": {"x"}, "user": {"z"}, "b": {"a"}}
	want := Sort([]string{"a", "b", "user", "x", "y", "z"}, deps)
	for _, nodes := range [][]string{
		{"z", "y", "x", "user", "b", "a"},
		{"user", "a", "z", "b", "x", "y"},
	} {
		require.Equal(t, want, Sort(nodes, deps))
	}
}

func TestSortOrderRespectsEveryEdge(t *testing.T) {
	t.Parallel()
	nodes := []string{}
	deps := map[string][]string{}
	for i := range 200 {
		id := string(rune('a'+i%26)) + string(rune('a'+i/26))
		nodes = append(nodes, id)
		if i > 0 {
			deps[id] = append(deps[id], nodes[(i*7)%i])
		}
		if i > 3 {
			deps[id] = append(deps[id], nodes[i/3])
		}
	}
	res := Sort(nodes, deps)
	require.Empty(t, res.Cycles)
	require.Len(t, res.Order, len(nodes))
	pos := map[string]int{}
	for i, n := range res.Order {
		pos[n] = i
	}
	for n, ds := range deps {
		for _, d := range ds {
			require.Less(t, pos[d], pos[n], "%s depends on %s", n, d)
		}
	}
}
