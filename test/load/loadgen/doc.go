// Package loadgen is the load harness's open-loop HTTP load generator: requests leave at the
// rate a schedule sets whatever the responses (a slow server does not slow the load down, as with
// real users), to loopback addresses only, and every outcome lands in per-second windows whose
// latency histograms have a fixed size, so a run's memory is bounded by its duration alone.
package loadgen
