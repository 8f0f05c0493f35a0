// dra-oracle runs upstream's structured allocator (k8s.io/dynamic-resource-allocation,
// the release the test environment pins) on the cases Berth's differential
// test writes, one JSON object per line on stdin, and answers each with one
// JSON line on stdout: the allocation results, or the error and whether it
// only concerns the node. It is the oracle Berth's allocator is compared
// with; it is never part of Berth.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	v1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/dynamic-resource-allocation/cel"
	"k8s.io/dynamic-resource-allocation/structured"
)

type request struct {
	Node      v1.Node                      `json:"node"`
	Slices    []*resourceapi.ResourceSlice `json:"slices"`
	Classes   []*resourceapi.DeviceClass   `json:"classes"`
	Claims    []*resourceapi.ResourceClaim `json:"claims"`
	Allocated []*resourceapi.ResourceClaim `json:"allocated"`
}

type response struct {
	Results   []resourceapi.AllocationResult `json:"results"`
	Found     bool                           `json:"found"`
	Error     string                         `json:"error,omitempty"`
	NodeError bool                           `json:"nodeError,omitempty"`
	// The search took longer than the case's budget (a search upstream's
	// scheduler would end with its filterTimeout).
	Timeout bool `json:"timeout,omitempty"`
}

type classes map[string]*resourceapi.DeviceClass

func (c classes) List() ([]*resourceapi.DeviceClass, error) {
	out := make([]*resourceapi.DeviceClass, 0, len(c))
	for _, v := range c {
		out = append(out, v)
	}
	return out, nil
}

func (c classes) Get(name string) (*resourceapi.DeviceClass, error) {
	if v, ok := c[name]; ok {
		return v, nil
	}
	// As the informer's lister words it.
	return nil, apierrors.NewNotFound(resourceapi.Resource("deviceclass"), name)
}

// Kubernetes 1.37's default DRA features, as kube-scheduler passes them.
var features = structured.Features{
	AdminAccess:             true,
	PrioritizedList:         true,
	PartitionableDevices:    true,
	DeviceTaints:            true,
	DeviceBindingAndStatus:  true,
	ConsumableCapacity:      true,
	FractionalCapacityRange: true,
}

func allocatedState(claims []*resourceapi.ResourceClaim) structured.AllocatedState {
	s := structured.AllocatedState{
		AllocatedDevices:         sets.New[structured.DeviceID](),
		AllocatedSharedDeviceIDs: sets.New[structured.SharedDeviceID](),
		AggregatedCapacity:       structured.NewConsumedCapacityCollection(),
	}
	for _, c := range claims {
		if c.Status.Allocation == nil {
			continue
		}
		for _, r := range c.Status.Allocation.Devices.Results {
			if r.AdminAccess != nil && *r.AdminAccess {
				continue
			}
			id := structured.MakeDeviceID(r.Driver, r.Pool, r.Device)
			if r.ShareID != nil {
				s.AllocatedSharedDeviceIDs.Insert(structured.MakeSharedDeviceID(id, r.ShareID))
				if r.ConsumedCapacity != nil {
					s.AggregatedCapacity.Insert(structured.NewDeviceConsumedCapacity(id, r.ConsumedCapacity))
				}
				continue
			}
			s.AllocatedDevices.Insert(id)
		}
	}
	return s
}

func handle(ctx context.Context, cache *cel.Cache, req *request) response {
	cls := classes{}
	for _, c := range req.Classes {
		cls[c.Name] = c
	}
	a, err := structured.NewAllocator(ctx, features, allocatedState(req.Allocated), cls, req.Slices, cache)
	if err != nil {
		return response{Error: err.Error()}
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	results, err := a.Allocate(ctx, &req.Node, req.Claims)
	if err != nil && ctx.Err() != nil {
		return response{Timeout: true}
	}
	if err != nil {
		return response{Error: err.Error(), NodeError: errors.Is(err, structured.ErrFailedAllocationOnNode)}
	}
	return response{Results: results, Found: results != nil}
}

func main() {
	ctx := context.Background()
	cache := cel.NewCache(10, cel.Features{EnableConsumableCapacity: true})
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 64<<20), 64<<20)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var req request
		var resp response
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			resp = response{Error: fmt.Sprintf("dra-oracle: bad request: %v", err)}
		} else {
			resp = handle(ctx, cache, &req)
		}
		if err := out.Encode(resp); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
