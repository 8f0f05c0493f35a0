// NodePool as a WebAssembly guest: a pod annotated
// `example.berth.dev/pool: X` fits only nodes labelled
// `example.berth.dev/pool=X`; nodes with a lower `example.berth.dev/cost`
// annotation score higher. The same plugin as the native one in
// examples/custom-scheduler/src/node_pool.rs, with the same messages.
//
// Build: ./build.sh (GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared).
package main

import (
	"strconv"

	berth "berth.dev/guest"
)

const (
	// name is the plugin's name.
	name = "NodePool"
	// pool is the pod annotation and the node label naming a pool.
	pool = "example.berth.dev/pool"
	// cost is the node annotation giving its cost.
	cost = "example.berth.dev/cost"
	// maxNodeScore is the best score.
	maxNodeScore = 100
)

func init() { berth.Register(name, newNodePool) }

// main is required by the toolchain and never runs in a reactor.
func main() {}

// args are the pluginConfig args: a pod without the annotation asks for
// defaultPool.
type args struct {
	DefaultPool *string `json:"defaultPool"`
}

type nodePool struct {
	defaultPool *string
	// The message for the last pool asked for, so that rejecting many
	// nodes allocates it once.
	lastWant, lastMsg string
}

func newNodePool(a berth.Args) (berth.Plugin, error) {
	var v args
	if err := a.Decode(&v); err != nil {
		return nil, err
	}
	return &nodePool{defaultPool: v.DefaultPool}, nil
}

// Filter lets a pod that asks for a pool only onto nodes of that pool.
func (p *nodePool) Filter(pod *berth.Pod, node *berth.Node) berth.Status {
	want, ok := pod.Annotations[pool]
	if !ok {
		if p.defaultPool == nil {
			return berth.Success()
		}
		want = *p.defaultPool
	}
	// An unlabelled node is in no pool, not in the pool "".
	if v, ok := node.Labels[pool]; !ok || v != want {
		// Evicting pods cannot move a node into a pool: unresolvable.
		return berth.Unresolvable(p.notInPool(want))
	}
	return berth.Success()
}

func (p *nodePool) notInPool(want string) string {
	if p.lastMsg == "" || want != p.lastWant {
		p.lastWant, p.lastMsg = want, "node(s) are not in pool "+want
	}
	return p.lastMsg
}

// Score is the node's cost, or -1 when it has none.
func (p *nodePool) Score(pod *berth.Pod, node *berth.Node) (int64, berth.Status) {
	if c, err := strconv.ParseInt(node.Annotations[cost], 10, 64); err == nil && c >= 0 {
		return c, berth.Success()
	}
	return -1, berth.Success()
}

// NormalizeScore: cheapest 100, dearest 0 (100 when all costs are equal);
// no cost: 0.
func (p *nodePool) NormalizeScore(pod *berth.Pod, scores []berth.NodeScore) berth.Status {
	var lo, hi int64
	seen := false
	for _, s := range scores {
		if s.Score < 0 {
			continue
		}
		if !seen || s.Score < lo {
			lo = s.Score
		}
		if !seen || s.Score > hi {
			hi = s.Score
		}
		seen = true
	}
	for i := range scores {
		switch c := scores[i].Score; {
		case c < 0:
			scores[i].Score = 0
		case hi == lo:
			scores[i].Score = maxNodeScore
		default:
			scores[i].Score = maxNodeScore * (hi - c) / (hi - lo)
		}
	}
	return berth.Success()
}
