package testbed

// SweepStaleDirs exposes sweepStaleDirs to the external test package.
var SweepStaleDirs = sweepStaleDirs
