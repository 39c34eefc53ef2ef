package controller

import (
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/lockstep-dev/lockstep/cronhpa/apis/v1beta1"
)

// memo remembers the job records this controller last computed for each object, until the
// informer cache shows them. The cache lags behind our own status writes, and a write may fail
// with a conflict after the target was already scaled. Without the memo, a reconcile in that
// gap would see the scheduled time still due and run it again; or, reading the object from
// before its first status write, it would see no record at all and start new incarnations of
// the jobs, whose progress no later reconcile could tell apart from the first write's.
//
// Only this controller writes the job records, so what it last computed is never behind the
// cache. The memo holds one record per job of the objects whose records changed since the cache
// last showed them, so it is bounded by the number of jobs. Its zero value is ready to use.
type memo struct {
	mu      sync.Mutex
	records map[types.NamespacedName]memoEntry
}

type memoEntry struct {
	uid   types.UID
	byJob map[string]v1beta1.Condition
}

// remember stores the records a reconcile computed for an object's jobs.
func (m *memo) remember(key types.NamespacedName, uid types.UID, records []v1beta1.Condition) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.records == nil {
		m.records = map[types.NamespacedName]memoEntry{}
	}
	byJob := make(map[string]v1beta1.Condition, len(records))
	for _, r := range records {
		byJob[r.Name] = *r.DeepCopy()
	}
	m.records[key] = memoEntry{uid: uid, byJob: byJob}
}

// overlay returns status (the job records as read from the cache) with every record that is
// behind the one remembered for its job replaced, and remembered records of jobs the cache
// does not show yet added. Remembered records the cache has caught up with are forgotten.
func (m *memo) overlay(key types.NamespacedName, uid types.UID, status []v1beta1.Condition) []v1beta1.Condition {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.records[key]
	if !ok {
		return status
	}
	if e.uid != uid { // deleted and created again under the same name
		delete(m.records, key)
		return status
	}
	byJob := e.byJob
	out := make([]v1beta1.Condition, 0, len(status)+len(byJob))
	seen := make(map[string]bool, len(status))
	for _, cached := range status {
		seen[cached.Name] = true
		mine, ok := byJob[cached.Name]
		switch {
		case !ok:
			out = append(out, cached)
		case newer(mine, cached):
			out = append(out, *mine.DeepCopy())
		default:
			out = append(out, cached)
			delete(byJob, cached.Name)
		}
	}
	for name, mine := range byJob {
		if !seen[name] {
			out = append(out, *mine.DeepCopy())
		}
	}
	if len(byJob) == 0 {
		delete(m.records, key)
	}
	return out
}

// newer says whether a remembered record is ahead of the cached one. In the same incarnation
// of the job (JobID) that is more progress. A different incarnation in the cache is one the
// memo has moved on from (the cache shows an older write, or none), unless it started strictly
// later: SubmittedTime keeps whole seconds, so two incarnations can tie, and then the memo,
// which holds the latest computation, wins.
func newer(mine, cached v1beta1.Condition) bool {
	if mine.JobID != cached.JobID {
		return unixOf(mine.SubmittedTime) >= unixOf(cached.SubmittedTime)
	}
	return ahead(mine, cached)
}

// forget drops everything remembered for an object (it was deleted).
func (m *memo) forget(key types.NamespacedName) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.records, key)
}

// len is the number of objects with remembered records.
func (m *memo) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.records)
}

// ahead says whether record a records more progress than b: a later handled time, or for the
// same handled time a later failing time or more failed attempts at it. Times compare in whole
// seconds, the precision status keeps.
func ahead(a, b v1beta1.Condition) bool {
	if c := cmpTime(unixOf(a.LastScheduleTime), unixOf(b.LastScheduleTime)); c != 0 {
		return c > 0
	}
	ra, rb := retryProgress(a.Retry), retryProgress(b.Retry)
	if ra[0] != rb[0] {
		return ra[0] > rb[0]
	}
	return ra[1] > rb[1]
}

func unixOf(t *metav1.Time) int64 {
	if t == nil {
		return 0
	}
	return t.Unix()
}

func retryProgress(r *v1beta1.JobRetry) [2]int64 {
	if r == nil {
		return [2]int64{0, 0}
	}
	return [2]int64{r.ScheduleTime.Unix(), int64(r.Attempts)}
}

func cmpTime(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
