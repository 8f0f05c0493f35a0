package berth

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"
)

// The node and pod reader agrees with encoding/json (empty maps aside,
// which it leaves nil).
func TestReaderAgreesWithEncodingJSON(t *testing.T) {
	words := []string{"", "a", "gold", "kubernetes.io/hostname", "<&>", "quote\"back\\slash", "tab\tnl\n",
		"\x01ctl", "é ü ß", "日本", "😀 emoji", "\u2028sep", strings.Repeat("long", 30)}
	rng := rand.New(rand.NewSource(1))
	word := func() string { return words[rng.Intn(len(words))] + fmt.Sprint(rng.Intn(3)) }
	strMap := func() map[string]string {
		if rng.Intn(4) == 0 {
			return nil
		}
		m := map[string]string{}
		for i := rng.Intn(12); i > 0; i-- {
			m[word()] = word()
		}
		return m
	}
	var r reader
	for i := 0; i < 300; i++ {
		n := Node{Name: word(), Labels: strMap(), Annotations: strMap(), Unschedulable: rng.Intn(2) == 0}
		for j := rng.Intn(3); j > 0; j-- {
			n.Taints = append(n.Taints, Taint{word(), word(), word()})
		}
		if rng.Intn(3) > 0 {
			n.Allocatable = map[string]int64{"cpu": rng.Int63n(100000), "memory": rng.Int63(), "neg": -rng.Int63(), word(): 0}
		}
		b, _ := json.Marshal(n)
		var want Node
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		r.reset(b)
		got := r.node()
		if err := r.end(); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if !reflect.DeepEqual(emptyNil(want), *got) {
			t.Fatalf("%s\n got %#v\nwant %#v", b, *got, want)
		}

		p := Pod{Name: word(), Namespace: word(), UID: word(), Labels: strMap(), Annotations: strMap(),
			NodeSelector: strMap(), Priority: rng.Int31() - 1<<30, SchedulerName: word()}
		b, _ = json.Marshal(p)
		gotPod, err := r.decodePod(b)
		if err != nil || !reflect.DeepEqual(p, emptyNilPod(*gotPod, p)) {
			t.Fatalf("%s\n got %#v %v\nwant %#v", b, gotPod, err, p)
		}
	}
}

func emptyNil(n Node) Node {
	for _, m := range []*map[string]string{&n.Labels, &n.Annotations} {
		if len(*m) == 0 {
			*m = nil
		}
	}
	if len(n.Allocatable) == 0 {
		n.Allocatable = nil
	}
	return n
}

// emptyNilPod is got with want's empty maps where got has nil ones.
func emptyNilPod(got, want Pod) Pod {
	for _, m := range []struct{ g, w *map[string]string }{{&got.Labels, &want.Labels}, {&got.Annotations, &want.Annotations}, {&got.NodeSelector, &want.NodeSelector}} {
		if *m.g == nil && *m.w != nil && len(*m.w) == 0 {
			*m.g = map[string]string{}
		}
	}
	return got
}

func TestReaderShapes(t *testing.T) {
	var r reader
	for _, c := range []struct {
		in   string
		want Node
	}{
		// Escapes json.Marshal does not write, white space, unknown
		// fields of every kind, nulls, numbers as floats.
		{` { "name" : "a\/b\u00e9\ud83d\ude00\ud800x\"" , "future" : {"x":[1,-2.5e3,true,false,null,"s",{"y":{}}],"z":[]},
		   "labels":{"k":null,"\u006b2":"v"}, "annotations":null, "taints":null, "unschedulable":null,
		   "allocatable":{"cpu":4e3,"big":1e300,"neg":-9223372036854775808,"over":18446744073709551616,"f":2.9} } `,
			Node{Name: "a/bé😀\uFFFDx\"", Labels: map[string]string{"k": "", "k2": "v"},
				Allocatable: map[string]int64{"cpu": 4000, "big": 1<<63 - 1, "neg": -1 << 63, "over": 1<<63 - 1, "f": 2}}},
		{`{}`, Node{}},
		{`{"taints":[{},{"key":"k","effect":"NoExecute","x":1}],"labels":{}}`, Node{Taints: []Taint{{}, {Key: "k", Effect: "NoExecute"}}}},
	} {
		r.reset([]byte(c.in))
		got := r.node()
		if err := r.end(); err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if !reflect.DeepEqual(*got, c.want) {
			t.Fatalf("%s\n got %#v\nwant %#v", c.in, *got, c.want)
		}
	}
	for _, bad := range []string{``, `{`, `{"name":}`, `{"name":"x}`, `{"name":"\q"}`, `{"name":"\u12"}`, `{"labels":{"a":1}}`,
		`{"allocatable":{"cpu":"4"}}`, `{"name":"a",}`, `{"name":"a"} x`, `[1]`, `{"x":tru}`, `{"x":-}`, `{"unschedulable":1}`} {
		r.reset([]byte(bad))
		r.node()
		if r.end() == nil {
			t.Errorf("%s: no error", bad)
		}
	}
	// Sync: slots must be u32.
	for _, bad := range []string{`{"remove":[-1]}`, `{"upsert":[{"slot":4294967296,"node":{}}]}`, `{"upsert":{}}`} {
		if _, _, err := r.decodeSync([]byte(bad), nil, nil); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
	up, rm, err := r.decodeSync([]byte(`{"upsert":[{"node":{"name":"n"},"slot":4294967295,"x":[]}],"remove":[0,7],"more":1}`), nil, nil)
	if err != nil || len(up) != 1 || up[0].slot != 1<<32-1 || up[0].node.Name != "n" || !reflect.DeepEqual(rm, []uint32{0, 7}) {
		t.Fatalf("sync: %+v %v %v", up, rm, err)
	}
	if _, _, err := r.decodeSync([]byte(`null`), nil, nil); err != nil {
		t.Fatalf("null sync: %v", err)
	}
}

// Equal strings of different nodes are shared.
func TestReaderSharesStrings(t *testing.T) {
	var r reader
	_, _, err := r.decodeSync([]byte(`{"upsert":[{"slot":0,"node":{"labels":{"zone":"a"}}},{"slot":1,"node":{"labels":{"zone":"a"}}}]}`), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.strs) != 2 {
		t.Fatalf("shared %v", r.strs)
	}
}
