// Package spill is Lockstep's serverless spill and move-back for Karpenter-provisioned clusters.
//
// A pending pod whose expected wait for a node (the launch in flight that could run it, or a new
// launch, timed with its NodePool's observed boot time) exceeds its budget is made to tolerate the
// serverless virtual node's taint, so the real scheduler places it there at once. The spilled pod
// is labelled, gets an event and a low pod-deletion-cost, and a low-priority placeholder pod that
// holds its room on real capacity (annotated karpenter.sh/do-not-disrupt for a bounded time) so
// Karpenter neither forgets the launch nor consolidates the new node away.
//
// Once the placeholder runs on a Ready node, the spilled pod is moved back: it is released from its
// ReplicaSet (which at once creates a replacement; the replacement preempts the placeholder), and
// evicted through the eviction API only when the ReplicaSet is whole again, so the pods serving a
// workload never drop below their count. Moves are bounded in total and per workload.
//
// Decisions are pure functions (Decide, DecideMove); the controllers gather, decide and act.
package spill
