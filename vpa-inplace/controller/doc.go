// Package controller runs vpa-inplace against the cluster: the Recommender reads pod usage from
// metrics.k8s.io into per-VPA histories (Model) and writes status.recommendation, conditions and
// checkpoints; the Updater reconciles each VPA, asks resizer.Decide about each pod and applies
// the decisions with one pods/resize patch per pod, within the workload's and the global bounds.
package controller
