// Package depgraph orders plugins by their dependencies.
package depgraph

import (
	"container/heap"
	"slices"
	"strings"
)

// Result is the outcome of [Sort].
type Result struct {
	// Order lists every node that is not on a cycle, dependencies first;
	// nodes that no ordering constrains are taken in ascending id order.
	Order []string
	// Cycles maps every node on a dependency cycle to the cycle, written
	// "a -> b -> a" starting from the cycle's smallest id.
	Cycles map[string]string
}

// Sort orders nodes so that each comes after the nodes it depends on. deps
// maps a node to the nodes it depends on; edges to ids that are not in nodes
// are ignored (the caller reports missing dependencies). Nodes on a cycle are
// left out of the order and reported in Result.Cycles; edges to them are
// dropped, so their dependents still appear in the order and the caller can
// fail them as it fails any dependent of a failed plugin.
func Sort(nodes []string, deps map[string][]string) Result {
	known := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		known[n] = true
	}
	edges := make(map[string][]string, len(nodes))
	for _, n := range nodes {
		for _, d := range deps[n] {
			if known[d] {
				edges[n] = append(edges[n], d)
			}
		}
		slices.Sort(edges[n])
	}

	res := Result{Cycles: map[string]string{}}
	for _, scc := range components(nodes, edges) {
		if len(scc) == 1 && !slices.Contains(edges[scc[0]], scc[0]) {
			continue
		}
		path := cyclePath(scc, edges)
		for _, n := range scc {
			res.Cycles[n] = path
		}
	}

	// Kahn's algorithm over the acyclic rest, ready nodes taken by id.
	indegree := make(map[string]int, len(nodes))
	dependents := make(map[string][]string, len(nodes))
	for _, n := range nodes {
		if _, cyc := res.Cycles[n]; cyc {
			continue
		}
		indegree[n] += 0
		for _, d := range edges[n] {
			if _, cyc := res.Cycles[d]; cyc {
				continue
			}
			indegree[n]++
			dependents[d] = append(dependents[d], n)
		}
	}
	ready := &minHeap{}
	for n, deg := range indegree {
		if deg == 0 {
			heap.Push(ready, n)
		}
	}
	for ready.Len() > 0 {
		n := heap.Pop(ready).(string)
		res.Order = append(res.Order, n)
		for _, m := range dependents[n] {
			indegree[m]--
			if indegree[m] == 0 {
				heap.Push(ready, m)
			}
		}
	}
	return res
}

// components returns the strongly connected components of the graph
// (Tarjan's algorithm), each sorted by id.
func components(nodes []string, edges map[string][]string) [][]string {
	index := map[string]int{}
	low := map[string]int{}
	onStack := map[string]bool{}
	var stack []string
	var out [][]string
	next := 0
	var visit func(n string)
	visit = func(n string) {
		index[n], low[n] = next, next
		next++
		stack = append(stack, n)
		onStack[n] = true
		for _, d := range edges[n] {
			if _, seen := index[d]; !seen {
				visit(d)
				low[n] = min(low[n], low[d])
			} else if onStack[d] {
				low[n] = min(low[n], index[d])
			}
		}
		if low[n] == index[n] {
			var scc []string
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
	}
	sorted := slices.Clone(nodes)
	slices.Sort(sorted)
	for _, n := range sorted {
		if _, seen := index[n]; !seen {
			visit(n)
		}
	}
	return out
}

// cyclePath finds the shortest cycle through the smallest id of a strongly
// connected component, by breadth-first search inside the component.
func cyclePath(scc []string, edges map[string][]string) string {
	start := scc[0]
	in := make(map[string]bool, len(scc))
	for _, n := range scc {
		in[n] = true
	}
	prev := map[string]string{}
	queue := []string{start}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, d := range edges[n] {
			if !in[d] {
				continue
			}
			if d == start {
				path := []string{start}
				for c := n; c != start; c = prev[c] {
					path = append(path, c)
				}
				path = append(path, start)
				// path is start, n, …, start backwards from n; reverse the middle.
				slices.Reverse(path[1 : len(path)-1])
				return strings.Join(path, " -> ")
			}
			if _, seen := prev[d]; !seen && d != start {
				prev[d] = n
				queue = append(queue, d)
			}
		}
	}
	return start + " -> " + start
}

type minHeap []string

func (h minHeap) Len() int           { return len(h) }
func (h minHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h minHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *minHeap) Push(x any)        { *h = append(*h, x.(string)) }
func (h *minHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
