package spill

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func TestCountMovesInFlight(t *testing.T) {
	now := metav1.Now()
	pod := func(uid string, released, terminating bool, rs types.UID) corev1.Pod {
		p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid), Namespace: "shop", Annotations: map[string]string{},
			OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", UID: rs}}}}
		if released {
			p.Annotations[MovingBackAnnotation] = "2026-12-08T00:00:00Z"
		}
		if terminating {
			p.DeletionTimestamp = &now
		}
		return p
	}
	res := func(rs types.UID) reservation { return reservation{namespace: "shop", rs: rs} }
	cases := map[string]struct {
		spilled     []corev1.Pod
		reserved    map[types.UID]reservation
		total, ofRS int
		settled     []types.UID
	}{
		"the cache shows every release": {
			spilled: []corev1.Pod{pod("a", true, false, "web"), pod("b", true, false, "api"), pod("c", false, false, "web")},
			total:   2, ofRS: 1,
		},
		"a release the cache does not show yet counts": {
			spilled:  []corev1.Pod{pod("a", true, false, "web"), pod("b", false, false, "web")},
			reserved: map[types.UID]reservation{"b": res("web")},
			total:    2, ofRS: 2,
		},
		"the cache caught up: counted once, reservation settled": {
			spilled:  []corev1.Pod{pod("a", true, false, "web")},
			reserved: map[types.UID]reservation{"a": res("web")},
			total:    1, ofRS: 1, settled: []types.UID{"a"},
		},
		"terminating or gone: not in flight, settled": {
			spilled:  []corev1.Pod{pod("a", true, true, "web")},
			reserved: map[types.UID]reservation{"a": res("web"), "gone": res("web")},
			total:    0, ofRS: 0, settled: []types.UID{"a", "gone"},
		},
		"another workload's reservation counts in the total only": {
			spilled:  []corev1.Pod{pod("b", false, false, "api")},
			reserved: map[types.UID]reservation{"b": res("api")},
			total:    1, ofRS: 0,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			total, ofRS, settled := CountMovesInFlight(tc.spilled, tc.reserved, "shop", "web")
			slices.Sort(settled)
			if total != tc.total || ofRS != tc.ofRS || !slices.Equal(settled, tc.settled) {
				t.Errorf("= %d in flight, %d of web, settled %v; want %d, %d, %v", total, ofRS, settled, tc.total, tc.ofRS, tc.settled)
			}
		})
	}
}

// The mover's own count: a burst of releases the cache has not seen yet stays within the
// bounds, and reservations go once the cache shows the pods gone.
func TestReservationsHoldTheBoundsUntilTheCacheCatchesUp(t *testing.T) {
	var r moveReservations
	stale := []corev1.Pod{}
	for _, uid := range []string{"a", "b", "c"} {
		p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid), Namespace: "shop",
			OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", UID: "web"}}}}
		stale = append(stale, p)
	}
	cfg := DefaultConfig()
	released := 0
	for i := range stale {
		total, ofRS := r.count(stale, "shop", "web")
		if total >= cfg.MaxMovesInFlight || ofRS >= cfg.MaxMovesPerWorkload {
			continue
		}
		r.reserve(&stale[i], "web")
		released++
	}
	if released != cfg.MaxMovesPerWorkload {
		t.Errorf("%d pods released against a cache that shows none released, bound %d", released, cfg.MaxMovesPerWorkload)
	}
	if total, _ := r.count(nil, "shop", "web"); total != 0 || len(r.pods) != 0 {
		t.Errorf("after the pods went: %d in flight, %d reservations kept", total, len(r.pods))
	}
}
