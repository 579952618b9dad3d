package devstack

// SetPickPorts replaces how Start finds free ports, for tests of a port
// taken between being found and being bound; the returned func restores it.
func SetPickPorts(f func(host string, n int) ([]int, error)) (restore func()) {
	old := pickPorts
	pickPorts = f
	return func() { pickPorts = old }
}

// FreePorts is the real port finder.
var FreePorts = freePorts

// CopyVisibility copies the visibility records of one SQLite file into
// another's.
var CopyVisibility = copyVisibility

// PrepareVisibility makes the visibility file as Start does.
var PrepareVisibility = prepareVisibility
