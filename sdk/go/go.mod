module berth.dev/guest

go 1.24
