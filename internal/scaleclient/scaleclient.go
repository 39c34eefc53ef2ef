// Package scaleclient builds the client-go client of the /scale subresource that Lockstep's
// controllers use to read and change any scalable kind.
package scaleclient

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/scale"
)

// New returns a scale client that resolves kinds through mapper and discovers each kind's
// scale subresource version from the API server.
func New(cfg *rest.Config, mapper meta.RESTMapper) (scale.ScalesGetter, error) {
	disco, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating discovery client: %w", err)
	}
	scales, err := scale.NewForConfig(cfg, mapper, dynamic.LegacyAPIPathResolverFunc, scale.NewDiscoveryScaleKindResolver(disco))
	if err != nil {
		return nil, fmt.Errorf("creating scale client: %w", err)
	}
	return scales, nil
}
