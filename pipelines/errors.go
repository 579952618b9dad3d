package pipelines

import "errors"

// Errors callers test for with errors.Is. The HTTP and CLI edges map them to
// status and exit codes; nothing in the domain knows about either.
var (
	// ErrNotFound is returned when an app, release or pipeline does not exist.
	ErrNotFound = errors.New("not found")
	// ErrInvalid is returned for input that can never succeed, however often
	// it is retried: a malformed Procfile, a config that does not validate.
	ErrInvalid = errors.New("invalid")
	// ErrConflict is returned when a write loses a race it cannot win.
	ErrConflict = errors.New("conflict")
	// ErrForbidden is a request the caller may not make, whoever it is
	// allowed to act for (approving its own release).
	ErrForbidden = errors.New("forbidden")
)
