package scenario

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/lockstep-dev/lockstep/test/scenarios/sales"
)

func TestNodeObjects(t *testing.T) {
	objs := nodeObjects(Nodes{BootDelay: 20 * time.Second, InstanceType: "c-8x-amd64-linux"},
		[]Side{{Name: "lockstep", Policy: sales.Lockstep}, {Name: "baseline", Policy: sales.Baseline}})
	if len(objs) != 5 {
		t.Fatalf("%d objects, want a class and a pool per side and one virtual node", len(objs))
	}
	for _, o := range objs {
		switch o.GetKind() {
		case "Node":
			labels := o.GetLabels()
			if o.GetName() != VirtualNodePrefix+"lockstep" || labels[SideLabel] != "lockstep" || labels["type"] != "virtual-kubelet" {
				t.Errorf("virtual node %s, labels %v: want only Lockstep's", o.GetName(), labels)
			}
		case "KWOKNodeClass":
			if d, _, _ := unstructured.NestedString(o.Object, "spec", "nodeRegistrationDelay"); d != "20s" {
				t.Errorf("node class %s: delay %q", o.GetName(), d)
			}
		case "NodePool":
			labels, _, _ := unstructured.NestedStringMap(o.Object, "spec", "template", "metadata", "labels")
			ref, _, _ := unstructured.NestedString(o.Object, "spec", "template", "spec", "nodeClassRef", "name")
			if labels[SideLabel] != o.GetName() || ref != o.GetName() {
				t.Errorf("node pool %s: labels %v, class %s", o.GetName(), labels, ref)
			}
		default:
			t.Errorf("unexpected %s", o.GetKind())
		}
	}
}

func TestPlaceOnSide(t *testing.T) {
	objs, err := sales.Objects(sales.Baseline, "b", sales.Times{})
	if err != nil {
		t.Fatal(err)
	}
	for _, side := range []Side{{Name: "lockstep", Policy: sales.Lockstep}, {Name: "baseline", Policy: sales.Baseline}} {
		for _, o := range objs {
			o := o.DeepCopy()
			if err := placeOnSide(o, side); err != nil {
				t.Fatal(err)
			}
			selector, _, _ := unstructured.NestedStringMap(o.Object, "spec", "template", "spec", "nodeSelector")
			annotations, _, _ := unstructured.NestedStringMap(o.Object, "spec", "template", "metadata", "annotations")
			switch {
			case o.GetKind() != "Deployment":
				if selector != nil {
					t.Errorf("%s %s got a node selector", o.GetKind(), o.GetName())
				}
			case selector[SideLabel] != side.Name:
				t.Errorf("side %s, deployment %s: node selector %v", side.Name, o.GetName(), selector)
			case (annotations[spillAnnotation] == "false") != (side.Policy == sales.Baseline):
				t.Errorf("side %s, deployment %s: annotations %v (only the baseline opts out of spill)", side.Name, o.GetName(), annotations)
			case o.GetName() == "checkout" && annotations["prometheus.io/scrape"] != "true":
				t.Errorf("side %s: checkout lost its scrape annotation: %v", side.Name, annotations)
			}
		}
	}
}

func TestSideNodes(t *testing.T) {
	node := func(name, side string) corev1.Node {
		return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{SideLabel: side}}}
	}
	got := sideNodes([]corev1.Node{node("a", "lockstep"), node("b", "baseline"), node(VirtualNodePrefix+"lockstep", "lockstep"), node("bed-0", "")}, "lockstep")
	if len(got) != 2 || got[0].Name != "a" || got[1].Name != VirtualNodePrefix+"lockstep" {
		t.Fatalf("lockstep's nodes: %v", got)
	}
}
