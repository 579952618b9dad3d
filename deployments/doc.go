// Package deployments owns drover's record of what was built and released:
// the release ledger, config vars, builds and webhook deliveries, behind the
// Store interface. Implementations live in subpackages (sqlstore for SQLite
// and PostgreSQL); slugs and their builds live in deployments/slugs.
package deployments
