// Package nodeautoscaler runs Karpenter core (sigs.k8s.io/karpenter) with Lockstep's cloud
// providers (kwok for tests and demos) and Lockstep's serverless spill and move-back controllers
// (package spill): pending pods go to a serverless virtual node while Karpenter's nodes boot and
// come back onto those nodes once they are Ready.
package nodeautoscaler
