// Package nodeautoscaler will grow node pools for pending pods through a capacity provider
// (Alibaba Cloud ESS, a generic provider, kwok for tests) and spill pods onto serverless
// virtual nodes while real nodes boot, moving them back once the nodes are Ready.
package nodeautoscaler
