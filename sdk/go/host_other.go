//go:build !wasip1

package berth

import (
	"fmt"
	"os"
)

// Outside WebAssembly (go test, go vet) there is no host: the exports are
// not built and berth.log goes to logHook, or to standard error.

// logHook, when set (by tests), receives what would go to berth.log.
var logHook func(level int32, msg string)

// hostLog writes msg to logHook, or to standard error.
func hostLog(level int32, msg string) {
	if logHook != nil {
		logHook(level, msg)
		return
	}
	fmt.Fprintf(os.Stderr, "berth.log[%d] %s\n", level, msg)
}
