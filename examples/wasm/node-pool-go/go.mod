module example.berth.dev/nodepool

go 1.24

require berth.dev/guest v0.0.0

replace berth.dev/guest => ../../../sdk/go
