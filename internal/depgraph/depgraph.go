// Package depgraph orders nodes by their dependencies: plugins by the
// plugins they depend on ([Sort]) and a plugin's tables by the tables their
// foreign keys reference ([SortInOrder]).
package depgraph

import (
	"container/heap"
	"slices"
	"strings"
)

// Result is the outcome of [Sort] and [SortInOrder].
type Result struct {
	// Order lists every node that is not on a cycle, dependencies first;
	// nodes that no ordering constrains are taken by rank: in ascending id
	// order for Sort, in the order of the nodes given for SortInOrder.
	Order []string
	// Cycles maps every node on a dependency cycle to the cycle, written
	// "a -> b -> a" starting from the cycle's first node by rank (the
	// smallest id for Sort). All the nodes of one strongly connected set
	// share one cycle: the shortest through that node.
	Cycles map[string]string
}

// Sort orders nodes so that each comes after the nodes it depends on. deps
// maps a node to the nodes it depends on; edges to ids that are not in nodes
// are ignored (the caller reports missing dependencies). Nodes on a cycle are
// left out of the order and reported in Result.Cycles; edges to them are
// dropped, so their dependents still appear in the order and the caller can
// fail them as it fails any dependent of a failed plugin. Ties are broken by
// id, so the result does not depend on the order of nodes.
func Sort(nodes []string, deps map[string][]string) Result {
	sorted := slices.Clone(nodes)
	slices.Sort(sorted)
	return SortInOrder(sorted, deps)
}

// SortInOrder is [Sort] with the nodes ranked by their position in nodes
// instead of by id: of the nodes that are ready, the earliest given comes
// first, and a cycle is written from its earliest node. The nodes must be
// distinct.
func SortInOrder(nodes []string, deps map[string][]string) Result {
	g := newGraph(nodes, deps)
	onCycle := g.cycles()
	res := Result{Cycles: make(map[string]string, len(onCycle))}
	for i, path := range onCycle {
		res.Cycles[nodes[i]] = path
	}
	for _, i := range g.order(onCycle) {
		res.Order = append(res.Order, nodes[i])
	}
	return res
}

// graph is the dependency graph over nodes 0…n-1, numbered by rank.
type graph struct {
	names []string
	// edges[i] lists the nodes i depends on, ascending, each once.
	edges [][]int
}

func newGraph(nodes []string, deps map[string][]string) *graph {
	index := make(map[string]int, len(nodes))
	for i, n := range nodes {
		index[n] = i
	}
	g := &graph{names: nodes, edges: make([][]int, len(nodes))}
	for i, n := range nodes {
		for _, d := range deps[n] {
			if j, ok := index[d]; ok {
				g.edges[i] = append(g.edges[i], j)
			}
		}
		slices.Sort(g.edges[i])
		g.edges[i] = slices.Compact(g.edges[i])
	}
	return g
}

// cycles maps every node on a cycle to its cycle, written out.
func (g *graph) cycles() map[int]string {
	out := map[int]string{}
	for _, scc := range g.components() {
		if len(scc) == 1 && !slices.Contains(g.edges[scc[0]], scc[0]) {
			continue
		}
		path := g.cyclePath(scc)
		for _, n := range scc {
			out[n] = path
		}
	}
	return out
}

// order runs Kahn's algorithm over the nodes not on a cycle, taking ready
// nodes by rank; edges to nodes on a cycle are dropped.
func (g *graph) order(onCycle map[int]string) []int {
	indegree := make([]int, len(g.names))
	dependents := make([][]int, len(g.names))
	ready := &minHeap{}
	for n := range g.names {
		if _, cyc := onCycle[n]; cyc {
			continue
		}
		for _, d := range g.edges[n] {
			if _, cyc := onCycle[d]; !cyc {
				indegree[n]++
				dependents[d] = append(dependents[d], n)
			}
		}
		if indegree[n] == 0 {
			heap.Push(ready, n)
		}
	}
	var out []int
	for ready.Len() > 0 {
		n := heap.Pop(ready).(int)
		out = append(out, n)
		for _, m := range dependents[n] {
			indegree[m]--
			if indegree[m] == 0 {
				heap.Push(ready, m)
			}
		}
	}
	return out
}

// components returns the strongly connected components of the graph
// (Tarjan's algorithm), each sorted by rank.
func (g *graph) components() [][]int {
	index := make([]int, len(g.names))
	low := make([]int, len(g.names))
	seen := make([]bool, len(g.names))
	onStack := make([]bool, len(g.names))
	var stack []int
	var out [][]int
	next := 0
	var visit func(n int)
	visit = func(n int) {
		index[n], low[n], seen[n] = next, next, true
		next++
		stack = append(stack, n)
		onStack[n] = true
		for _, d := range g.edges[n] {
			if !seen[d] {
				visit(d)
				low[n] = min(low[n], low[d])
			} else if onStack[d] {
				low[n] = min(low[n], index[d])
			}
		}
		if low[n] != index[n] {
			return
		}
		var scc []int
		for {
			top := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			onStack[top] = false
			scc = append(scc, top)
			if top == n {
				break
			}
		}
		slices.Sort(scc)
		out = append(out, scc)
	}
	for n := range g.names {
		if !seen[n] {
			visit(n)
		}
	}
	return out
}

// cyclePath finds the shortest cycle through the first node of a strongly
// connected component, by breadth-first search inside the component, and
// writes it out.
func (g *graph) cyclePath(scc []int) string {
	start := scc[0]
	in := make(map[int]bool, len(scc))
	for _, n := range scc {
		in[n] = true
	}
	prev := map[int]int{}
	queue := []int{start}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, d := range g.edges[n] {
			if !in[d] {
				continue
			}
			if d == start {
				return g.writePath(start, n, prev)
			}
			if _, seen := prev[d]; !seen {
				prev[d] = n
				queue = append(queue, d)
			}
		}
	}
	return g.names[start] + " -> " + g.names[start]
}

// writePath writes the cycle start -> … -> last -> start found by
// cyclePath, following prev back from last.
func (g *graph) writePath(start, last int, prev map[int]int) string {
	var back []int
	for c := last; c != start; c = prev[c] {
		back = append(back, c)
	}
	names := []string{g.names[start]}
	for _, n := range slices.Backward(back) {
		names = append(names, g.names[n])
	}
	names = append(names, g.names[start])
	return strings.Join(names, " -> ")
}

// minHeap holds the ready nodes, smallest rank first.
type minHeap []int

func (h minHeap) Len() int           { return len(h) }
func (h minHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h minHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *minHeap) Push(x any)        { *h = append(*h, x.(int)) }
func (h *minHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
