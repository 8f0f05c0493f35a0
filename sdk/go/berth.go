// Package berth is the Go SDK for Berth's WebAssembly plugin ABI, version 1
// (docs/wasm-abi.md in the Berth repository).
//
// A guest is a Go main package that registers one plugin in init() and is
// built as a WebAssembly reactor:
//
//	package main
//
//	import berth "berth.dev/guest"
//
//	func init() { berth.Register("NodePool", newNodePool) }
//
//	func main() {}
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o node_pool.wasm .
//
// The SDK owns every export of the module (berth_abi_version, berth_buffer,
// berth_call) and decodes what Berth sends. The plugin takes part in an
// extension point by implementing that point's interface (FilterPlugin,
// ScorePlugin, ...); the SDK reports those points to Berth at init.
//
// Berth calls a guest from one thread at a time; a plugin needs no locks.
// Nodes are kept in the guest and decoded once, when Berth sends them, so
// Filter and Score receive the same *Node until the node changes. Plugins
// must not modify the pods and nodes they are given.
package berth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// ABIVersion is the version of Berth's WebAssembly plugin ABI this SDK
// implements; berth_abi_version returns it.
const ABIVersion = 1

// SDKVersion names this SDK in the metadata sent to Berth at init.
const SDKVersion = "berth-go 0.1.0"

// Plugin is a scheduler plugin. It takes part in the extension points whose
// interfaces it implements: PreFilterPlugin, FilterPlugin, ScorePlugin (with
// NormalizeScorePlugin), ReservePlugin, PermitPlugin, PreBindPlugin; and it
// may declare EventsPlugin.
type Plugin interface{}

// PreFilterPlugin is a plugin with a PreFilter point, called once at the
// start of each scheduling attempt.
type PreFilterPlugin interface {
	// PreFilter checks the pod before any node is filtered; a status that
	// is not Success ends the attempt (Skip skips this plugin's Filter).
	PreFilter(pod *Pod) Status
}

// FilterPlugin is a plugin with a Filter point.
type FilterPlugin interface {
	// Filter says whether the pod may run on the node: Success, or why not
	// (Unschedulable, Unresolvable, Errorf). Many nodes rejected for one
	// reason should get the same message.
	Filter(pod *Pod, node *Node) Status
}

// ScorePlugin is a plugin with a Score point.
type ScorePlugin interface {
	// Score ranks a node that passed the filters. Without
	// NormalizeScorePlugin, the scores must already be in 0..100; a status
	// that is not Success fails the attempt.
	Score(pod *Pod, node *Node) (int64, Status)
}

// NormalizeScorePlugin is a ScorePlugin that rescales its raw scores once
// all nodes are scored.
type NormalizeScorePlugin interface {
	// NormalizeScore rewrites scores[i].Score in place, to 0..100. It must
	// not reorder, add or remove entries.
	NormalizeScore(pod *Pod, scores []NodeScore) Status
}

// ReservePlugin is a plugin with Reserve and Unreserve points.
type ReservePlugin interface {
	// Reserve is called when the pod is assumed on the node.
	Reserve(pod *Pod, node string) Status
	// Unreserve undoes Reserve when a later step fails.
	Unreserve(pod *Pod, node string)
}

// PermitPlugin is a plugin with a Permit point.
type PermitPlugin interface {
	// Permit allows the pod to bind (Success), rejects it, or holds it
	// (Wait) for at most the returned duration.
	Permit(pod *Pod, node string) (Status, time.Duration)
}

// PreBindPlugin is a plugin with a PreBind point.
type PreBindPlugin interface {
	// PreBind runs before the pod is bound to the node.
	PreBind(pod *Pod, node string) Status
}

// EventsPlugin is a plugin that says which cluster events may make a pod it
// rejected schedulable. A plugin that does not implement it (or returns
// none) is retried on any event.
type EventsPlugin interface {
	// EventsToRegister lists the events, as upstream's EventsToRegister.
	EventsToRegister() []ClusterEvent
}

// NodeScore is one node's score during NormalizeScore.
type NodeScore struct {
	// Node is the scored node.
	Node *Node
	// Score is its raw score, to be normalized in place.
	Score int64
}

// ClusterEvent is a kind of change to the cluster, for EventsToRegister.
type ClusterEvent struct {
	// Resource is one of the Resource constants.
	Resource string `json:"resource"`
	// Action is the OR of Action constants.
	Action uint32 `json:"action"`
}

// Resources of ClusterEvent.
const (
	// ResourcePod is any pod.
	ResourcePod = "Pod"
	// ResourceAssignedPod is a pod bound to a node.
	ResourceAssignedPod = "AssignedPod"
	// ResourceUnscheduledPod is a pod not yet bound.
	ResourceUnscheduledPod = "UnscheduledPod"
	// ResourceNode is a node.
	ResourceNode = "Node"
	// ResourceNamespace is a namespace.
	ResourceNamespace = "Namespace"
	// ResourceAll is every resource.
	ResourceAll = "*"
)

// Actions of ClusterEvent, upstream's ActionType bits.
const (
	// ActionAdd is an object added.
	ActionAdd uint32 = 1
	// ActionDelete is an object deleted.
	ActionDelete uint32 = 2
	// ActionUpdateNodeAllocatable is a node's allocatable changed.
	ActionUpdateNodeAllocatable uint32 = 4
	// ActionUpdateNodeLabel is a node's labels changed.
	ActionUpdateNodeLabel uint32 = 8
	// ActionUpdateNodeTaint is a node's taints changed.
	ActionUpdateNodeTaint uint32 = 16
	// ActionUpdateNodeCondition is a node's conditions changed.
	ActionUpdateNodeCondition uint32 = 32
	// ActionUpdateNodeAnnotation is a node's annotations changed.
	ActionUpdateNodeAnnotation uint32 = 64
	// ActionUpdatePodLabel is a pod's labels changed.
	ActionUpdatePodLabel uint32 = 128
	// ActionUpdatePodScaleDown is a pod's requests lowered.
	ActionUpdatePodScaleDown uint32 = 256
	// ActionUpdatePodToleration is a pod's tolerations changed.
	ActionUpdatePodToleration uint32 = 512
	// ActionAll is every action.
	ActionAll uint32 = 0xFFFFFFFF
)

// Code is the code of a Status, Berth's and upstream's.
type Code uint8

// Status codes. (The constructors Success, Unschedulable, ... have the
// short names, so the codes carry a Code prefix.)
const (
	// CodeSuccess: the plugin agrees.
	CodeSuccess Code = 0
	// CodeError: an internal error; the pod is retried with backoff.
	CodeError Code = 1
	// CodeUnschedulable: the pod does not fit; preemption may help.
	CodeUnschedulable Code = 2
	// CodeUnschedulableAndUnresolvable: the pod does not fit and
	// preemption cannot help.
	CodeUnschedulableAndUnresolvable Code = 3
	// CodeWait: Permit holds the pod.
	CodeWait Code = 4
	// CodeSkip: the plugin takes no part for this pod.
	CodeSkip Code = 5
	// CodePending: the pod waits for something outside the scheduler.
	CodePending Code = 6
)

var codeNames = [...]string{"Success", "Error", "Unschedulable", "UnschedulableAndUnresolvable", "Wait", "Skip", "Pending"}

// String is the code's name, as Berth prints it.
func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("Code(%d)", uint8(c))
}

// Status is the outcome of an extension point: a code and, unless it is
// Success, a message for the pod's events.
type Status struct {
	// Code is the outcome.
	Code Code
	// Message says why; it is dropped for Success.
	Message string
}

// Success is the status of a plugin that agrees.
func Success() Status { return Status{} }

// Errorf is an Error status with a formatted message.
func Errorf(format string, args ...any) Status {
	return Status{Code: CodeError, Message: fmt.Sprintf(format, args...)}
}

// Unschedulable is the status of a pod that does not fit, where preempting
// pods may help.
func Unschedulable(msg string) Status { return Status{Code: CodeUnschedulable, Message: msg} }

// Unresolvable is the status of a pod that does not fit and that preempting
// pods cannot help (code UnschedulableAndUnresolvable).
func Unresolvable(msg string) Status {
	return Status{Code: CodeUnschedulableAndUnresolvable, Message: msg}
}

// Skip is the status of a plugin that takes no part for this pod.
func Skip() Status { return Status{Code: CodeSkip} }

// Wait is the status of a Permit that holds the pod.
func Wait() Status { return Status{Code: CodeWait} }

// IsSuccess reports whether the status is Success.
func (s Status) IsSuccess() bool { return s.Code == CodeSuccess }

// String is the code and the message, for logs and tests.
func (s Status) String() string {
	if s.Message == "" {
		return s.Code.String()
	}
	return s.Code.String() + ": " + s.Message
}

// Pod is a pod as Berth gives it to a guest.
type Pod struct {
	// Name is the pod's name.
	Name string `json:"name"`
	// Namespace is the pod's namespace.
	Namespace string `json:"namespace"`
	// UID is the pod's UID.
	UID string `json:"uid"`
	// Labels are the pod's labels.
	Labels map[string]string `json:"labels"`
	// Annotations are the pod's annotations.
	Annotations map[string]string `json:"annotations"`
	// NodeSelector is the pod's spec.nodeSelector.
	NodeSelector map[string]string `json:"nodeSelector"`
	// Priority is the pod's resolved priority.
	Priority int32 `json:"priority"`
	// SchedulerName is the pod's spec.schedulerName.
	SchedulerName string `json:"schedulerName"`
}

// Node is a node as Berth gives it to a guest. The pods on it and its usage
// are not part of ABI version 1.
type Node struct {
	// Name is the node's name.
	Name string `json:"name"`
	// Labels are the node's labels.
	Labels map[string]string `json:"labels"`
	// Annotations are the node's annotations.
	Annotations map[string]string `json:"annotations"`
	// Unschedulable is the node's spec.unschedulable (cordoned).
	Unschedulable bool `json:"unschedulable"`
	// Taints are the node's taints.
	Taints []Taint `json:"taints"`
	// Allocatable is what pods may use: "cpu" in millicores, "memory" and
	// "ephemeral-storage" in bytes, "pods" and extended resources as
	// counts.
	Allocatable map[string]int64 `json:"allocatable"`
}

// Taint is a node's taint.
type Taint struct {
	// Key is the taint's key.
	Key string `json:"key"`
	// Value is the taint's value.
	Value string `json:"value"`
	// Effect is NoSchedule, PreferNoSchedule or NoExecute.
	Effect string `json:"effect"`
}

// Args are a plugin's pluginConfig args: everything but the `wasm` entry.
type Args struct {
	raw     json.RawMessage
	plugin  string
	profile string
}

// NewArgs makes the args a plugin named plugin is built with from their
// JSON, for tests of a plugin's factory outside WebAssembly.
func NewArgs(plugin string, raw json.RawMessage) Args {
	return Args{raw: raw, plugin: plugin}
}

// Plugin is the plugin's name in the configuration.
func (a Args) Plugin() string { return a.plugin }

// Profile is the scheduler profile the plugin is built for.
func (a Args) Profile() string { return a.profile }

// Raw is the args' JSON as Berth sent it (nil when there are none).
func (a Args) Raw() json.RawMessage { return a.raw }

// Decode decodes the args into v, a pointer to a struct with json tags.
// Decoding is strict, as Berth's native plugins' is: a field v does not
// have is an error naming it (`decoding args for plugin NodePool: unknown
// field "x"`), so a typo in a configuration stops the scheduler. Absent or
// null args decode as an empty object; `apiVersion` and `kind` are allowed
// and ignored.
func (a Args) Decode(v any) error {
	raw := bytes.TrimSpace(a.raw)
	if len(raw) == 0 || string(raw) == "null" {
		raw = []byte("{}")
	}
	raw = withoutTypeMeta(raw)
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &argsError{plugin: a.plugin, err: err}
	}
	return nil
}

// withoutTypeMeta drops the top-level `apiVersion` and `kind` of an object,
// which upstream's args carry and a plugin's struct does not name.
func withoutTypeMeta(raw []byte) []byte {
	if raw[0] != '{' || (!bytes.Contains(raw, []byte(`"apiVersion"`)) && !bytes.Contains(raw, []byte(`"kind"`))) {
		return raw
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return raw
	}
	_, a := obj["apiVersion"]
	_, k := obj["kind"]
	if !a && !k {
		return raw
	}
	delete(obj, "apiVersion")
	delete(obj, "kind")
	out, err := json.Marshal(obj)
	if err != nil {
		return raw
	}
	return out
}

// argsError is a failure of Args.Decode, worded as Berth's native plugins'.
type argsError struct {
	plugin string
	err    error
}

func (e *argsError) Error() string {
	return "decoding args for plugin " + e.plugin + ": " + strings.TrimPrefix(e.err.Error(), "json: ")
}

func (e *argsError) Unwrap() error { return e.err }

// Register makes factory the module's plugin, under name. Call it once, from
// an init function; Berth calls factory with the plugin's args when it
// builds the plugin. A factory error fails Berth's configuration with its
// message.
func Register(name string, factory func(args Args) (Plugin, error)) {
	if factory == nil {
		panic("berth.Register: nil factory")
	}
	if g.factory != nil {
		panic("berth.Register: a module holds one plugin, and " + g.name + " is registered")
	}
	g.name, g.factory = name, factory
}

// LogLevel is the level of a line in Berth's log.
type LogLevel int32

// Log levels.
const (
	// LogError is an error.
	LogError LogLevel = 0
	// LogWarning is a warning.
	LogWarning LogLevel = 1
	// LogInfo is information.
	LogInfo LogLevel = 2
	// LogDebug is for debugging.
	LogDebug LogLevel = 3
)

// Log writes msg as one line of Berth's log, at level.
func Log(level LogLevel, msg string) { hostLog(int32(level), msg) }

// Logf writes a formatted line to Berth's log, at level.
func Logf(level LogLevel, format string, args ...any) {
	hostLog(int32(level), fmt.Sprintf(format, args...))
}
