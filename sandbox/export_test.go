package sandbox

// SetEtcRoot makes sandboxes read the host's /etc from dir, for tests of
// a /etc that changes; it returns the undo.
func SetEtcRoot(dir string) (undo func()) {
	old := etcRoot
	etcRoot = dir
	return func() { etcRoot = old }
}

// EtcFiles are the names of /etc a sandbox sees.
func EtcFiles() []string { return etcFiles }
