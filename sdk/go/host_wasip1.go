//go:build wasip1

package berth

import (
	"fmt"
	"unsafe"
)

// The module's exports and its one host import, for GOOS=wasip1 builds
// with -buildmode=c-shared. Go's _initialize (runtime start-up and package
// init functions, where the guest calls Register) must run before any of
// them.

//go:wasmimport berth log
func berthLog(level int32, ptr unsafe.Pointer, n int32)

// hostLog writes msg to Berth's log through the berth.log import.
func hostLog(level int32, msg string) {
	berthLog(level, unsafe.Pointer(unsafe.StringData(msg)), int32(len(msg)))
}

// input is where Berth writes the next call's input: the global keeps it
// alive, and Go's collector does not move it.
var input []byte

// berthABIVersion is the ABI version this SDK implements.
//
//go:wasmexport berth_abi_version
func berthABIVersion() int32 { return ABIVersion }

// berthBuffer is the address of at least size writable bytes for the next
// call's input.
//
//go:wasmexport berth_buffer
func berthBuffer(size uint32) uint32 {
	if uint64(cap(input)) < uint64(size) || cap(input) == 0 {
		n := uint64(size) + uint64(size)/4
		if n < 4096 {
			n = 4096
		}
		input = nil // the old buffer may go before the new one is made
		input = make([]byte, n)
	}
	input = input[:cap(input)]
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(input))))
}

// berthCall runs op on the first n bytes of the input buffer and returns
// the output's address << 32 | its length, or 0 for no output.
//
//go:wasmexport berth_call
func berthCall(op uint32, n uint32) uint64 {
	if uint64(n) > uint64(len(input)) {
		msg := fmt.Sprintf("berth: berth_call input of %d bytes is beyond the %d-byte buffer", n, len(input))
		hostLog(int32(LogError), "panic: "+msg)
		panic(msg)
	}
	out := dispatch(op, input[:n])
	if len(out) == 0 {
		return 0
	}
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(out))))<<32 | uint64(len(out))
}
