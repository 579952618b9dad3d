// Package pipelines owns drover's domain: apps, pipelines and their stages,
// region specs, releases, formations, Procfiles, and the drover.yaml that
// describes them. It does no I/O beyond reading a file, so every other package
// can depend on it.
package pipelines
