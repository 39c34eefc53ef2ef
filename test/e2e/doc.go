//go:build e2e

// Package e2e holds end-to-end scenarios, one per file, that run the Lockstep binaries against
// the test bed. They build only with the e2e tag: `make e2e`.
package e2e
