package scenario

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// A sampling round fails — and the run with it — when the nodes cannot be listed, or when a new
// node of the side cannot be pointed at metrics-server (its pods' usage would be missing from
// the CPU HPAs); a round that could do both succeeds.
func TestSideClusterFailsTheRound(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "pool-node-1", Labels: map[string]string{SideLabel: "baseline"},
		Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"}}}
	cfg := Config{Nodes: &Nodes{}}
	nodes := &corev1.NodeList{Items: []corev1.Node{*node}}
	cases := map[string]struct {
		nodesErr error
		patchErr error
		want     string
	}{
		"nodes listed, node pointed":    {},
		"the nodes' listing failed":     {nodesErr: errors.New("etcd timeout"), want: "listing nodes: etcd timeout"},
		"the node could not be patched": {patchErr: errors.New("throttled"), want: "pointing metrics-server at node pool-node-1: throttled"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cs := fake.NewClientset(node)
			cs.PrependReactor("patch", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
				return tc.patchErr != nil, nil, tc.patchErr
			})
			_, err := sideCluster(context.Background(), cfg, cs, "sale-baseline", "baseline", nodes, tc.nodesErr)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("round failed: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("round error %v, want %q", err, tc.want)
			}
		})
	}
}
