// Package contract holds the Nomad contract suite: the nomad region driver
// against a real Nomad agent. It runs when NOMAD_ADDR is set, e.g. against
// `nomad agent -dev`, and says that it skipped otherwise:
//
//	NOMAD_ADDR=http://127.0.0.1:4646 go test -v ./regions/nomad/contract
//
// Optional: NOMAD_REGION (default global), NOMAD_TOKEN, and
// DROVER_CONTRACT_SLUG_HOST, the address Nomad clients reach this test's
// slug server on (default 127.0.0.1). Build jobs run this test binary as
// their command; DROVER_CONTRACT_DROVER_BIN names a drover binary to run
// (its build-slug command) instead.
package contract
