package berth

import (
	"fmt"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// A JSON reader for what Berth sends on every cycle and every node change
// (nodes, pods, sync and pod-on-node inputs). encoding/json decodes a
// full sync of 5000 nodes in several hundred milliseconds under
// WebAssembly, past Berth's default call timeout; this reader decodes the
// known shapes directly, skips unknown fields (the ABI adds fields without
// a version bump), and shares the many equal label and annotation strings
// between nodes. encoding/json stays for init and the plugin's args.

// internLimit bounds the table of shared strings; it starts again empty
// when full.
const internLimit = 1 << 15

// internMaxLen is the longest string shared.
const internMaxLen = 64

// reader reads one JSON value from b. The first error stops it: every read
// after it returns zero values, and loops end.
type reader struct {
	b   []byte
	i   int
	err error
	// buf holds a string with escapes, unescaped.
	buf []byte
	// pairs collects a map's entries before the map is made its size.
	pairs []pair
	// strs shares equal strings across calls.
	strs map[string]string
}

type pair struct {
	k, v string
	n    int64
}

func (r *reader) reset(b []byte) {
	r.b, r.i, r.err = b, 0, nil
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("at byte %d: "+format, append([]any{r.i}, args...)...)
	}
	r.i = len(r.b)
}

func (r *reader) ws() {
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

// peek is the next byte that is not white space, or 0 at the end.
func (r *reader) peek() byte {
	r.ws()
	if r.i < len(r.b) {
		return r.b[r.i]
	}
	return 0
}

// null consumes a null, if one is next.
func (r *reader) null() bool {
	if r.peek() == 'n' {
		r.literal("null")
		return true
	}
	return false
}

func (r *reader) literal(lit string) {
	if len(r.b)-r.i < len(lit) || string(r.b[r.i:r.i+len(lit)]) != lit {
		r.fail("expected %s", lit)
		return
	}
	r.i += len(lit)
}

// begin consumes open ('{' or '['), or a null; it reports whether a first
// element follows.
func (r *reader) begin(open byte) bool {
	switch r.peek() {
	case open:
		r.i++
	case 'n':
		r.literal("null")
		return false
	default:
		r.fail("expected %q", open)
		return false
	}
	close := byte('}')
	if open == '[' {
		close = ']'
	}
	if r.peek() == close {
		r.i++
		return false
	}
	return r.err == nil
}

// next consumes the comma before another element (true) or close (false).
func (r *reader) next(close byte) bool {
	switch r.peek() {
	case ',':
		r.i++
		return r.err == nil
	case close:
		r.i++
		return false
	}
	r.fail("expected ',' or %q", close)
	return false
}

// key reads an object key and its colon; the bytes are valid until the
// next read.
func (r *reader) key() []byte {
	k := r.strBytes()
	if r.peek() != ':' {
		r.fail("expected ':'")
		return nil
	}
	r.i++
	return k
}

// strBytes reads a string, unescaped; the bytes are valid until the next
// read.
func (r *reader) strBytes() []byte {
	if r.peek() != '"' {
		r.fail("expected a string")
		return nil
	}
	r.i++
	start := r.i
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case '"':
			s := r.b[start:r.i]
			r.i++
			return s
		case '\\':
			return r.escaped(start)
		}
		r.i++
	}
	r.fail("unterminated string")
	return nil
}

// escaped reads the rest of a string that has an escape at r.i.
func (r *reader) escaped(start int) []byte {
	buf := append(r.buf[:0], r.b[start:r.i]...)
	for r.i < len(r.b) {
		c := r.b[r.i]
		switch {
		case c == '"':
			r.i++
			r.buf = buf
			return buf
		case c != '\\':
			buf = append(buf, c)
			r.i++
			continue
		}
		if r.i+1 >= len(r.b) {
			break
		}
		r.i += 2
		switch e := r.b[r.i-1]; e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			c1 := r.hex4()
			if utf16.IsSurrogate(c1) {
				c2 := rune(-1)
				if r.i+1 < len(r.b) && r.b[r.i] == '\\' && r.b[r.i+1] == 'u' {
					save := r.i
					r.i += 2
					if c2 = r.hex4(); utf16.DecodeRune(c1, c2) == utf8.RuneError {
						r.i, c2 = save, -1
					}
				}
				c1 = utf16.DecodeRune(c1, c2)
			}
			buf = utf8.AppendRune(buf, c1)
		default:
			r.fail("bad escape \\%c", e)
			return nil
		}
	}
	r.fail("unterminated string")
	return nil
}

func (r *reader) hex4() rune {
	if len(r.b)-r.i < 4 {
		r.fail("bad \\u escape")
		return utf8.RuneError
	}
	var v rune
	for _, c := range r.b[r.i : r.i+4] {
		switch {
		case '0' <= c && c <= '9':
			v = v<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			v = v<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			v = v<<4 | rune(c-'A'+10)
		default:
			r.fail("bad \\u escape")
			return utf8.RuneError
		}
	}
	r.i += 4
	return v
}

// str reads a string, or a null as "".
func (r *reader) str() string {
	if r.null() {
		return ""
	}
	return r.share(r.strBytes())
}

// share is b as a string, the same string as an earlier equal one when b
// is short.
func (r *reader) share(b []byte) string {
	if len(b) > internMaxLen {
		return string(b)
	}
	if s, ok := r.strs[string(b)]; ok {
		return s
	}
	if r.strs == nil || len(r.strs) >= internLimit {
		r.strs = make(map[string]string, 1024)
	}
	s := string(b)
	r.strs[s] = s
	return s
}

// int reads an integer (a number with a fraction or an exponent is
// truncated), or a null as 0.
func (r *reader) int() int64 {
	if r.null() {
		return 0
	}
	r.ws()
	start := r.i
	if r.i < len(r.b) && r.b[r.i] == '-' {
		r.i++
	}
	var v uint64
	digits, overflow := 0, false
	for r.i < len(r.b) && '0' <= r.b[r.i] && r.b[r.i] <= '9' {
		d := uint64(r.b[r.i] - '0')
		if v > (math.MaxUint64-d)/10 {
			overflow = true
		}
		v = v*10 + d
		r.i++
		digits++
	}
	if digits == 0 {
		r.fail("expected a number")
		return 0
	}
	if r.i < len(r.b) && (r.b[r.i] == '.' || r.b[r.i] == 'e' || r.b[r.i] == 'E') || overflow {
		for r.i < len(r.b) && (r.b[r.i] == '.' || r.b[r.i] == 'e' || r.b[r.i] == 'E' || r.b[r.i] == '+' || r.b[r.i] == '-' || '0' <= r.b[r.i] && r.b[r.i] <= '9') {
			r.i++
		}
		f, err := strconv.ParseFloat(string(r.b[start:r.i]), 64)
		if err != nil && f == 0 {
			r.fail("bad number %q", r.b[start:r.i])
			return 0
		}
		switch {
		case f >= math.MaxInt64:
			return math.MaxInt64
		case f <= math.MinInt64:
			return math.MinInt64
		}
		return int64(f)
	}
	if r.b[start] == '-' {
		if v > 1<<63 {
			return math.MinInt64
		}
		return -int64(v)
	}
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}

// bool reads true or false, or a null as false.
func (r *reader) bool() bool {
	switch r.peek() {
	case 't':
		r.literal("true")
		return true
	case 'f':
		r.literal("false")
	case 'n':
		r.literal("null")
	default:
		r.fail("expected a boolean")
	}
	return false
}

// skip reads any value.
func (r *reader) skip() {
	switch r.peek() {
	case '{':
		for more := r.begin('{'); more; more = r.next('}') {
			r.key()
			r.skip()
		}
	case '[':
		for more := r.begin('['); more; more = r.next(']') {
			r.skip()
		}
	case '"':
		r.strBytes()
	case 't':
		r.literal("true")
	case 'f':
		r.literal("false")
	case 'n':
		r.literal("null")
	default:
		r.int()
	}
}

// stringMap reads an object of strings; nil when null or empty.
func (r *reader) stringMap() map[string]string {
	base := len(r.pairs)
	for more := r.begin('{'); more; more = r.next('}') {
		k := r.share(r.key())
		r.pairs = append(r.pairs, pair{k: k, v: r.str()})
	}
	if len(r.pairs) == base || r.err != nil {
		r.pairs = r.pairs[:base]
		return nil
	}
	m := make(map[string]string, len(r.pairs)-base)
	for _, p := range r.pairs[base:] {
		m[p.k] = p.v
	}
	clear(r.pairs[base:])
	r.pairs = r.pairs[:base]
	return m
}

// intMap reads an object of integers; nil when null or empty.
func (r *reader) intMap() map[string]int64 {
	base := len(r.pairs)
	for more := r.begin('{'); more; more = r.next('}') {
		k := r.share(r.key())
		r.pairs = append(r.pairs, pair{k: k, n: r.int()})
	}
	if len(r.pairs) == base || r.err != nil {
		r.pairs = r.pairs[:base]
		return nil
	}
	m := make(map[string]int64, len(r.pairs)-base)
	for _, p := range r.pairs[base:] {
		m[p.k] = p.n
	}
	clear(r.pairs[base:])
	r.pairs = r.pairs[:base]
	return m
}

// node reads a Node; nil for null.
func (r *reader) node() *Node {
	if r.null() {
		return nil
	}
	n := new(Node)
	for more := r.begin('{'); more; more = r.next('}') {
		switch string(r.key()) {
		case "name":
			n.Name = r.str()
		case "labels":
			n.Labels = r.stringMap()
		case "annotations":
			n.Annotations = r.stringMap()
		case "unschedulable":
			n.Unschedulable = r.bool()
		case "taints":
			n.Taints = r.taints()
		case "allocatable":
			n.Allocatable = r.intMap()
		default:
			r.skip()
		}
	}
	return n
}

func (r *reader) taints() []Taint {
	var ts []Taint
	for more := r.begin('['); more; more = r.next(']') {
		var t Taint
		for more := r.begin('{'); more; more = r.next('}') {
			switch string(r.key()) {
			case "key":
				t.Key = r.str()
			case "value":
				t.Value = r.str()
			case "effect":
				t.Effect = r.str()
			default:
				r.skip()
			}
		}
		ts = append(ts, t)
	}
	return ts
}

// pod reads a Pod; nil for null.
func (r *reader) pod() *Pod {
	if r.null() {
		return nil
	}
	p := new(Pod)
	for more := r.begin('{'); more; more = r.next('}') {
		switch string(r.key()) {
		case "name":
			p.Name = r.str()
		case "namespace":
			p.Namespace = r.str()
		case "uid":
			p.UID = r.str()
		case "labels":
			p.Labels = r.stringMap()
		case "annotations":
			p.Annotations = r.stringMap()
		case "nodeSelector":
			p.NodeSelector = r.stringMap()
		case "priority":
			p.Priority = int32(r.int())
		case "schedulerName":
			p.SchedulerName = r.str()
		default:
			r.skip()
		}
	}
	return p
}

// end checks that nothing but white space follows the value.
func (r *reader) end() error {
	if r.err == nil && r.peek() != 0 {
		r.fail("unexpected data after the value")
	}
	return r.err
}

// decodePod decodes a Pod.
func (r *reader) decodePod(b []byte) (*Pod, error) {
	r.reset(b)
	p := r.pod()
	if err := r.end(); err != nil {
		return nil, err
	}
	if p == nil {
		return nil, fmt.Errorf("no pod")
	}
	return p, nil
}

// syncEntry is a node of a sync, in its slot.
type syncEntry struct {
	slot uint32
	node *Node
}

// decodeSync decodes a sync's input: {"upsert":[{"slot":u32,"node":Node}],
// "remove":[u32]}.
func (r *reader) decodeSync(b []byte, upsert []syncEntry, remove []uint32) ([]syncEntry, []uint32, error) {
	r.reset(b)
	for more := r.begin('{'); more; more = r.next('}') {
		switch string(r.key()) {
		case "upsert":
			for more := r.begin('['); more; more = r.next(']') {
				var e syncEntry
				for more := r.begin('{'); more; more = r.next('}') {
					switch string(r.key()) {
					case "slot":
						e.slot = r.slot()
					case "node":
						e.node = r.node()
					default:
						r.skip()
					}
				}
				upsert = append(upsert, e)
			}
		case "remove":
			for more := r.begin('['); more; more = r.next(']') {
				remove = append(remove, r.slot())
			}
		default:
			r.skip()
		}
	}
	return upsert, remove, r.end()
}

func (r *reader) slot() uint32 {
	v := r.int()
	if v < 0 || v > math.MaxUint32 {
		r.fail("slot %d is not a u32", v)
		return 0
	}
	return uint32(v)
}

// decodePodOnNode decodes the input of reserve, unreserve, permit and
// preBind: {"pod":Pod,"node":"name"}.
func (r *reader) decodePodOnNode(b []byte) (*Pod, string, error) {
	r.reset(b)
	var pod *Pod
	var node string
	for more := r.begin('{'); more; more = r.next('}') {
		switch string(r.key()) {
		case "pod":
			pod = r.pod()
		case "node":
			node = r.str()
		default:
			r.skip()
		}
	}
	if err := r.end(); err != nil {
		return nil, "", err
	}
	if pod == nil {
		return nil, "", fmt.Errorf("no pod")
	}
	return pod, node, nil
}
