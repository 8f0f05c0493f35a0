package berth

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// The operations of berth_call (docs/wasm-abi.md, "Calls").
const (
	opInit      uint32 = 1
	opSync      uint32 = 2
	opPreFilter uint32 = 3
	opFilter    uint32 = 4
	opScore     uint32 = 5
	opReserve   uint32 = 6
	opUnreserve uint32 = 7
	opPermit    uint32 = 8
	opPreBind   uint32 = 9
)

// keptCycles is how many scheduling attempts keep their pod.
const keptCycles = 64

// maxSlot bounds node slots, so that a bad one cannot grow the node table
// past memory. Berth numbers slots from 0 and reuses freed ones.
const maxSlot = 1 << 22

// noMessage is the message index of a verdict without a message.
const noMessage = 0xFFFFFFFF

var le = binary.LittleEndian

// cycle is a scheduling attempt and its pod.
type cycle struct {
	id   uint64
	pod  *Pod
	used bool
}

// guest is the module's state: its plugin, resident nodes, recent cycles
// and reused buffers.
type guest struct {
	name    string
	factory func(Args) (Plugin, error)

	plugin     Plugin
	pluginName string
	preFilter  PreFilterPlugin
	filter     FilterPlugin
	score      ScorePlugin
	normalize  NormalizeScorePlugin
	reserve    ReservePlugin
	permit     PermitPlugin
	preBind    PreBindPlugin

	nodes     []*Node
	cycles    [keptCycles]cycle
	nextCycle int

	// dec decodes nodes and pods; upsert and remove are sync's scratch.
	dec    reader
	upsert []syncEntry
	remove []uint32

	// out is the last output, alive until the next call, and its
	// backing array is reused.
	out      []byte
	msgs     []string
	msgIndex map[string]uint32
	lastMsg  string
	lastIdx  uint32
	scores   []NodeScore
}

var g guest

// dispatch runs one berth_call: op on the input bytes in (which it does not
// keep). The output stays valid until the next call. A panic is logged
// through berth.log as "panic: <value>" and panics on, which ends the call
// with a trap.
func dispatch(op uint32, in []byte) []byte {
	defer func() {
		if v := recover(); v != nil {
			hostLog(int32(LogError), "panic: "+fmt.Sprint(v))
			panic(v)
		}
	}()
	out := g.run(op, in)
	if cap(out) > 0 {
		g.out = out[:0]
	}
	return out
}

func (g *guest) run(op uint32, in []byte) []byte {
	switch op {
	case opInit:
		return g.init(in)
	case opSync:
		return g.status(g.sync(in))
	case opPreFilter:
		return g.status(g.runPreFilter(in))
	case opFilter:
		return g.runFilter(in)
	case opScore:
		return g.runScore(in)
	case opReserve, opUnreserve, opPermit, opPreBind:
		return g.podOnNode(op, in)
	}
	panic(fmt.Sprintf("berth: op %d is not in ABI version %d", op, ABIVersion))
}

// reset forgets the plugin, the nodes and the cycles.
func (g *guest) reset() {
	name, factory := g.name, g.factory
	*g = guest{name: name, factory: factory, out: g.out}
}

// status is s as the output.
func (g *guest) status(s Status) []byte {
	return appendStatus(g.out[:0], s)
}

// appendStatus appends s as the ABI encodes a status: nothing for Success,
// else the code byte and the message.
func appendStatus(b []byte, s Status) []byte {
	if s.Code == CodeSuccess {
		return b
	}
	s = valid(s)
	b = append(b, byte(s.Code))
	return append(b, s.Message...)
}

// valid is s with a code Berth knows and a UTF-8 message.
func valid(s Status) Status {
	if s.Code > CodePending {
		s = Status{Code: CodeError, Message: fmt.Sprintf("status code %d is not one of 0-6: %s", uint8(s.Code), s.Message)}
	}
	if !utf8.ValidString(s.Message) {
		s.Message = strings.ToValidUTF8(s.Message, "\uFFFD")
	}
	return s
}

func (g *guest) notInitialized() Status {
	return Errorf("berth: the plugin is not initialized (init must come first)")
}

// ---- init ----

type initInput struct {
	ABI     int             `json:"abi"`
	Name    string          `json:"name"`
	Profile string          `json:"profile"`
	Args    json.RawMessage `json:"args"`
}

type metadata struct {
	Points []string       `json:"points"`
	SDK    string         `json:"sdk"`
	Events []ClusterEvent `json:"events,omitempty"`
}

func (g *guest) init(in []byte) []byte {
	var req initInput
	if err := json.Unmarshal(in, &req); err != nil {
		return g.initError("berth: malformed init input: " + err.Error())
	}
	g.reset()
	if g.factory == nil {
		return g.initError("the module registers no plugin: call berth.Register from an init function")
	}
	name := req.Name
	if name == "" {
		name = g.name
	}
	p, err := g.factory(Args{raw: req.Args, plugin: name, profile: req.Profile})
	if err != nil {
		return g.initError(err.Error())
	}
	if p == nil {
		return g.initError("plugin " + name + ": its factory returned no plugin")
	}
	g.plugin, g.pluginName = p, name
	meta := metadata{Points: []string{}, SDK: SDKVersion}
	if pl, ok := p.(PreFilterPlugin); ok {
		g.preFilter = pl
		meta.Points = append(meta.Points, "preFilter")
	}
	if pl, ok := p.(FilterPlugin); ok {
		g.filter = pl
		meta.Points = append(meta.Points, "filter")
	}
	if pl, ok := p.(ScorePlugin); ok {
		g.score = pl
		meta.Points = append(meta.Points, "score")
		g.normalize, _ = p.(NormalizeScorePlugin)
	}
	if pl, ok := p.(ReservePlugin); ok {
		g.reserve = pl
		meta.Points = append(meta.Points, "reserve")
	}
	if pl, ok := p.(PermitPlugin); ok {
		g.permit = pl
		meta.Points = append(meta.Points, "permit")
	}
	if pl, ok := p.(PreBindPlugin); ok {
		g.preBind = pl
		meta.Points = append(meta.Points, "preBind")
	}
	if ev, ok := p.(EventsPlugin); ok {
		meta.Events = ev.EventsToRegister()
	}
	out, err := json.Marshal(meta)
	if err != nil {
		return g.initError("berth: encoding the metadata: " + err.Error())
	}
	return out
}

func (g *guest) initError(msg string) []byte {
	out, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{valid(Status{Message: msg}).Message})
	return out
}

// ---- sync ----

// sync applies removals, then upserts, to the node table.
func (g *guest) sync(in []byte) Status {
	upsert, remove, err := g.dec.decodeSync(in, g.upsert[:0], g.remove[:0])
	defer func() {
		clear(upsert)
		g.upsert, g.remove = upsert[:0], remove[:0]
	}()
	if err != nil {
		return Errorf("berth: malformed sync input: %v", err)
	}
	// A sync is applied whole or not at all.
	for _, u := range upsert {
		if u.node == nil {
			return Errorf("berth: sync of slot %d has no node", u.slot)
		}
		if u.slot >= maxSlot {
			return Errorf("berth: slot %d is beyond the %d slots a guest keeps", u.slot, maxSlot)
		}
	}
	for _, slot := range remove {
		if uint64(slot) < uint64(len(g.nodes)) {
			g.nodes[slot] = nil
		}
	}
	for _, u := range upsert {
		if int(u.slot) >= len(g.nodes) {
			if int(u.slot) < cap(g.nodes) {
				g.nodes = g.nodes[:u.slot+1]
			} else {
				nodes := make([]*Node, u.slot+1, 2*(u.slot+1))
				copy(nodes, g.nodes)
				g.nodes = nodes
			}
		}
		g.nodes[u.slot] = u.node
	}
	return Success()
}

// node is the node in slot, or nil.
func (g *guest) node(slot uint32) *Node {
	if uint64(slot) < uint64(len(g.nodes)) {
		return g.nodes[slot]
	}
	return nil
}

// ---- cycles ----

// pod is the pod of cycle id, or nil when the cycle is not one of the
// recent ones.
func (g *guest) pod(id uint64) *Pod {
	for i := range g.cycles {
		if c := &g.cycles[i]; c.used && c.id == id {
			return c.pod
		}
	}
	return nil
}

// remember keeps pod as the pod of cycle id, forgetting the oldest cycle
// when keptCycles are kept.
func (g *guest) remember(id uint64, pod *Pod) {
	for i := range g.cycles {
		if c := &g.cycles[i]; c.used && c.id == id {
			c.pod = pod
			return
		}
	}
	g.cycles[g.nextCycle] = cycle{id: id, pod: pod, used: true}
	g.nextCycle = (g.nextCycle + 1) % keptCycles
}

// ---- preFilter ----

func (g *guest) runPreFilter(in []byte) Status {
	if len(in) < 8 {
		return Errorf("berth: preFilter input of %d bytes is too short", len(in))
	}
	id := le.Uint64(in)
	pod, err := g.dec.decodePod(in[8:])
	if err != nil {
		return Errorf("berth: decoding the pod of cycle %d: %v", id, err)
	}
	g.remember(id, pod)
	if g.plugin == nil {
		return g.notInitialized()
	}
	if g.preFilter == nil {
		return Success()
	}
	return g.preFilter.PreFilter(pod)
}

// ---- filter ----

// slots reads the head of filter's and score's input: the cycle, n and the
// slots (still encoded), and what follows them.
func slots(in []byte) (id uint64, n int, slots, rest []byte, ok bool) {
	if len(in) < 12 {
		return 0, 0, nil, nil, false
	}
	id, n = le.Uint64(in), int(le.Uint32(in[8:]))
	if uint64(len(in)-12) < 4*uint64(n) {
		return id, n, nil, nil, false
	}
	return id, n, in[12 : 12+4*n], in[12+4*n:], true
}

func (g *guest) runFilter(in []byte) []byte {
	id, n, enc, _, ok := slots(in)
	if !ok {
		// The verdicts cannot say this for a count that is not there.
		panic(fmt.Sprintf("berth: malformed filter input (%d bytes)", len(in)))
	}
	if g.plugin != nil && g.filter == nil {
		return nil
	}
	var pod *Pod
	if g.plugin != nil {
		pod = g.pod(id)
	}
	if pod == nil {
		msg := fmt.Sprintf("unknown cycle %d", id)
		if g.plugin == nil {
			msg = g.notInitialized().Message
		}
		return g.allFailed(n, CodeError, msg)
	}
	out := g.grow(5 * n)
	codes, indexes := out[:n], out[n:5*n]
	g.resetMessages()
	failed := false
	for i := 0; i < n; i++ {
		slot := le.Uint32(enc[4*i:])
		var s Status
		if node := g.node(slot); node != nil {
			s = g.filter.Filter(pod, node)
		} else {
			s = Errorf("unknown slot %d", slot)
		}
		if s.Code == CodeSuccess {
			codes[i] = 0
			le.PutUint32(indexes[4*i:], noMessage)
			continue
		}
		failed = true
		if s.Code > CodePending {
			s = valid(s)
		}
		codes[i] = byte(s.Code)
		le.PutUint32(indexes[4*i:], g.intern(s.Message))
	}
	if !failed {
		return nil
	}
	return g.appendMessages(out)
}

// allFailed is filter's output with every one of n slots at code, msg.
func (g *guest) allFailed(n int, code Code, msg string) []byte {
	out := g.grow(5 * n)
	for i := 0; i < n; i++ {
		out[i] = byte(code)
		le.PutUint32(out[n+4*i:], 0)
	}
	g.resetMessages()
	g.intern(msg)
	return g.appendMessages(out)
}

// grow makes g.out n bytes long, reusing its backing array when it can.
func (g *guest) grow(n int) []byte {
	if cap(g.out) < n {
		g.out = make([]byte, n, n+n/4+256)
	}
	g.out = g.out[:n]
	return g.out
}

func (g *guest) resetMessages() {
	clear(g.msgs)
	g.msgs = g.msgs[:0]
	if g.msgIndex == nil {
		g.msgIndex = make(map[string]uint32)
	} else {
		clear(g.msgIndex)
	}
	g.lastMsg, g.lastIdx = "", noMessage
}

// intern is the index of msg in this call's message table, which it adds
// to once per distinct message; an empty message has none.
func (g *guest) intern(msg string) uint32 {
	if msg == "" {
		return noMessage
	}
	if g.lastIdx != noMessage && msg == g.lastMsg {
		return g.lastIdx
	}
	i, ok := g.msgIndex[msg]
	if !ok {
		i = uint32(len(g.msgs))
		g.msgs = append(g.msgs, msg)
		g.msgIndex[msg] = i
	}
	g.lastMsg, g.lastIdx = msg, i
	return i
}

// appendMessages appends the message table: its count, then each message
// as its length and bytes.
func (g *guest) appendMessages(out []byte) []byte {
	out = le.AppendUint32(out, uint32(len(g.msgs)))
	for _, m := range g.msgs {
		if !utf8.ValidString(m) {
			m = strings.ToValidUTF8(m, "\uFFFD")
		}
		out = le.AppendUint32(out, uint32(len(m)))
		out = append(out, m...)
	}
	return out
}

// ---- score ----

func (g *guest) runScore(in []byte) []byte {
	id, n, enc, podJSON, ok := slots(in)
	if !ok {
		return g.scoreStatus(Errorf("berth: malformed score input (%d bytes)", len(in)))
	}
	if g.plugin == nil {
		return g.scoreStatus(g.notInitialized())
	}
	if g.score == nil {
		return g.scoreStatus(Errorf("plugin %s does not score", g.pluginName))
	}
	// The pod of a cycle does not change: a known cycle's is not decoded
	// again.
	pod := g.pod(id)
	if pod == nil {
		var err error
		if pod, err = g.dec.decodePod(podJSON); err != nil {
			return g.scoreStatus(Errorf("berth: decoding the pod of cycle %d: %v", id, err))
		}
		g.remember(id, pod)
	}
	if cap(g.scores) < n {
		g.scores = make([]NodeScore, 0, n+n/4)
	}
	scores := g.scores[:n]
	defer clear(scores)
	for i := range scores {
		slot := le.Uint32(enc[4*i:])
		node := g.node(slot)
		if node == nil {
			return g.scoreStatus(Errorf("unknown slot %d", slot))
		}
		v, s := g.score.Score(pod, node)
		if s.Code != CodeSuccess {
			return g.scoreStatus(s)
		}
		scores[i] = NodeScore{Node: node, Score: v}
	}
	if g.normalize != nil {
		if s := g.normalize.NormalizeScore(pod, scores); s.Code != CodeSuccess {
			return g.scoreStatus(s)
		}
	}
	out := g.grow(4 + 8*n)
	le.PutUint32(out, 0)
	for i := range scores {
		le.PutUint64(out[4+8*i:], uint64(scores[i].Score))
	}
	return out
}

// scoreStatus is score's output for a status that is not Success: its
// length and the status, and no scores.
func (g *guest) scoreStatus(s Status) []byte {
	out := append(g.out[:0], 0, 0, 0, 0)
	out = appendStatus(out, s)
	le.PutUint32(out, uint32(len(out)-4))
	return out
}

// ---- reserve, unreserve, permit, preBind ----

func (g *guest) podOnNode(op uint32, in []byte) []byte {
	pod, node, err := g.dec.decodePodOnNode(in)
	if err != nil {
		if op == opUnreserve {
			return nil
		}
		return g.permitOr(op, Errorf("berth: malformed input: %v", err), 0)
	}
	if g.plugin == nil {
		return g.permitOr(op, g.notInitialized(), 0)
	}
	switch op {
	case opReserve:
		if g.reserve != nil {
			return g.status(g.reserve.Reserve(pod, node))
		}
	case opUnreserve:
		if g.reserve != nil {
			g.reserve.Unreserve(pod, node)
		}
	case opPermit:
		if g.permit != nil {
			s, wait := g.permit.Permit(pod, node)
			return g.permitOr(op, s, wait)
		}
	case opPreBind:
		if g.preBind != nil {
			return g.status(g.preBind.PreBind(pod, node))
		}
	}
	return nil
}

// permitOr is s as op's output: permit's layout (the wait in milliseconds,
// then the status; nothing for Success without a wait) for permit, a
// status for the others.
func (g *guest) permitOr(op uint32, s Status, wait time.Duration) []byte {
	if op != opPermit {
		return g.status(s)
	}
	if s.Code == CodeSuccess && wait <= 0 {
		return nil
	}
	ms := uint64(0)
	if wait > 0 {
		// Rounded up: a wait under a millisecond is not "no wait".
		ms = uint64((wait + time.Millisecond - 1) / time.Millisecond)
	}
	out := le.AppendUint64(g.out[:0], ms)
	return appendStatus(out, s)
}
