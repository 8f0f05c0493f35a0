package main

import (
	"testing"

	berth "berth.dev/guest"
)

func node(poolName, costValue string) *berth.Node {
	return &berth.Node{
		Name:        "n",
		Labels:      map[string]string{pool: poolName},
		Annotations: map[string]string{cost: costValue},
	}
}

func newForTest(t *testing.T, args string) *nodePool {
	t.Helper()
	pl, err := newNodePool(berth.NewArgs(name, []byte(args)))
	if err != nil {
		t.Fatal(err)
	}
	return pl.(*nodePool)
}

// The table of the native plugin's test (node_pool.rs).
func TestFilterAndScore(t *testing.T) {
	pl := newForTest(t, `{"defaultPool": "iron"}`)
	gold := &berth.Pod{Name: "g", Annotations: map[string]string{pool: "gold"}}
	plain := &berth.Pod{Name: "p"}
	// node's pool, its cost, gold pod's verdict, plain pod's verdict, score
	table := []struct {
		pool, cost, forGold, forPlain string
		score                         int64
	}{
		{"gold", "1", "", "node(s) are not in pool iron", 100},
		{"gold", "3", "", "node(s) are not in pool iron", 0},
		{"iron", "2", "node(s) are not in pool gold", "", 50},
		{"iron", "none", "node(s) are not in pool gold", "", 0},
	}
	var scores []berth.NodeScore
	for _, c := range table {
		n := node(c.pool, c.cost)
		for _, v := range []struct {
			pod  *berth.Pod
			want string
		}{{gold, c.forGold}, {plain, c.forPlain}} {
			s := pl.Filter(v.pod, n)
			if s.Message != v.want {
				t.Errorf("pool %s, pod %s: %q, want %q", c.pool, v.pod.Name, s.Message, v.want)
			}
			if wantCode := berth.CodeUnschedulableAndUnresolvable; v.want != "" && s.Code != wantCode {
				t.Errorf("pool %s, pod %s: code %v", c.pool, v.pod.Name, s.Code)
			}
		}
		raw, s := pl.Score(gold, n)
		if !s.IsSuccess() {
			t.Fatal(s)
		}
		scores = append(scores, berth.NodeScore{Node: n, Score: raw})
	}
	if s := pl.NormalizeScore(gold, scores); !s.IsSuccess() {
		t.Fatal(s)
	}
	for i, c := range table {
		if scores[i].Score != c.score {
			t.Errorf("node %d: score %d, want %d", i, scores[i].Score, c.score)
		}
	}
}

func TestNoPool(t *testing.T) {
	// Without defaultPool a plain pod fits anywhere; a pod asking for the
	// pool "" does not fit an unlabelled node.
	pl := newForTest(t, `null`)
	unlabelled := &berth.Node{Name: "n"}
	if s := pl.Filter(&berth.Pod{}, unlabelled); !s.IsSuccess() {
		t.Fatal(s)
	}
	s := pl.Filter(&berth.Pod{Annotations: map[string]string{pool: ""}}, unlabelled)
	if s.Code != berth.CodeUnschedulableAndUnresolvable || s.Message != "node(s) are not in pool " {
		t.Fatal(s)
	}
	if s := pl.Filter(&berth.Pod{Annotations: map[string]string{pool: ""}}, node("", "1")); !s.IsSuccess() {
		t.Fatal(s)
	}
}

func TestScores(t *testing.T) {
	pl := newForTest(t, `{}`)
	for _, c := range []struct {
		cost string
		want int64
	}{{"7", 7}, {"0", 0}, {"-3", -1}, {"x", -1}, {"", -1}, {"+4", 4}} {
		if got, _ := pl.Score(nil, node("p", c.cost)); got != c.want {
			t.Errorf("cost %q: %d, want %d", c.cost, got, c.want)
		}
	}
	scores := []berth.NodeScore{{Score: 5}, {Score: -1}, {Score: 5}}
	pl.NormalizeScore(nil, scores)
	if scores[0].Score != 100 || scores[1].Score != 0 || scores[2].Score != 100 {
		t.Errorf("equal costs: %+v", scores)
	}
	scores = []berth.NodeScore{{Score: -1}}
	pl.NormalizeScore(nil, scores)
	if scores[0].Score != 0 {
		t.Errorf("no costs: %+v", scores)
	}
}

func TestStrictArgs(t *testing.T) {
	_, err := newNodePool(berth.NewArgs(name, []byte(`{"defaultPol": "iron"}`)))
	if err == nil || err.Error() != `decoding args for plugin NodePool: unknown field "defaultPol"` {
		t.Fatalf("err %v", err)
	}
}
