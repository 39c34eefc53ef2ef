package spill

import (
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// moveReservations remembers the pods this mover released, so that its bounds on moves in
// flight hold exactly: right after a release the cache may still show the pod unreleased, and
// a count read from the cache alone would let the next reconcile release one too many.
type moveReservations struct {
	mu   sync.Mutex
	pods map[types.UID]reservation
}

// reservation is one pod released by this mover: its namespace and ReplicaSet.
type reservation struct {
	namespace string
	rs        types.UID
}

func (r *moveReservations) reserve(pod *corev1.Pod, rs types.UID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pods == nil {
		r.pods = map[types.UID]reservation{}
	}
	r.pods[pod.UID] = reservation{namespace: pod.Namespace, rs: rs}
}

// count returns the moves in flight (of all, and of rs in namespace) from the cache's spilled
// pods and the reservations, and forgets the reservations the cache shows settled.
func (r *moveReservations) count(spilled []corev1.Pod, namespace string, rs types.UID) (total, ofRS int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	total, ofRS, settled := CountMovesInFlight(spilled, r.pods, namespace, rs)
	for _, uid := range settled {
		delete(r.pods, uid)
	}
	return total, ofRS
}

// CountMovesInFlight counts the moves in flight: the spilled pods the cache shows released
// (MovingBackAnnotation) and not terminating, and the pods reserved (released by this mover)
// that the cache does not show released yet. Reservations whose pod the cache shows released,
// terminating or gone are settled: the cache speaks for them now. rs names the ReplicaSet
// whose own count ofRS is (in namespace). Pure.
func CountMovesInFlight(spilled []corev1.Pod, reserved map[types.UID]reservation, namespace string, rs types.UID) (total, ofRS int, settled []types.UID) {
	seen := make(map[types.UID]bool, len(spilled))
	for i := range spilled {
		p := &spilled[i]
		seen[p.UID] = true
		released := p.Annotations[MovingBackAnnotation] != ""
		res, isReserved := reserved[p.UID]
		switch {
		case p.DeletionTimestamp != nil:
			if isReserved {
				settled = append(settled, p.UID)
			}
			continue
		case released:
			if isReserved {
				settled = append(settled, p.UID)
			}
		case !isReserved:
			continue
		}
		total++
		owner := res.rs
		if ref := ownerRef(p, "ReplicaSet"); released && ref != nil {
			owner = ref.UID
		}
		if rs != "" && p.Namespace == namespace && owner == rs {
			ofRS++
		}
	}
	for uid := range reserved {
		if !seen[uid] {
			settled = append(settled, uid) // deleted: no longer in flight
		}
	}
	return total, ofRS, settled
}
