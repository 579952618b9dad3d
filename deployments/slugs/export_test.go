package slugs

// BuilderPython is the Python a build with no .python-version would use
// ("3.11.2"), and whether it has pip; "" if the builder has none, so tests
// that need one can skip saying why.
func BuilderPython() (version string, pip bool) {
	p, err := choosePython("", "", pythonInterpreters())
	if err != nil {
		return "", false
	}
	return p.Version, p.Pip
}
