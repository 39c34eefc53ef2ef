package controller

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	vpav1 "k8s.io/autoscaler/vertical-pod-autoscaler/pkg/apis/autoscaling.k8s.io/v1"

	"github.com/lockstep-dev/lockstep/vpa-inplace/recommender"
)

// Model is the in-memory state the recommender and the updater share: each VPA's usage
// histories and resolved pod selector, and the pods' latest memory usage. It holds one entry
// per VPA the process handles and per running pod, and forgets them when they go.
type Model struct {
	mu   sync.Mutex
	cfg  recommender.Config
	vpas map[types.NamespacedName]*vpaState
	// memory is each pod's containers' working set from the last metrics read (bytes).
	memory map[types.UID]map[string]int64
	// selectors are the VPAs' resolved pod selectors, set by the updater (with or without the
	// recommender running) and dropped when the VPA is gone.
	selectors map[types.NamespacedName]labels.Selector
}

type vpaState struct {
	uid        types.UID
	containers map[string]*recommender.Container
	// ooms is the finish time of the last OOM kill recorded per pod and container.
	ooms map[oomKey]time.Time
}

// oomKey names one container of one pod.
type oomKey struct {
	pod       types.UID
	container string
}

// prune forgets what the VPA's state keeps per pod (OOM kills recorded, each container's
// newest sample and memory window) for pods not in live (by UID), so it follows pod churn.
func (s *vpaState) prune(live map[string]bool) {
	for k := range s.ooms {
		if !live[string(k.pod)] {
			delete(s.ooms, k)
		}
	}
	for _, c := range s.containers {
		c.Forget(func(pod string) bool { return live[pod] })
	}
}

// NewModel returns an empty model for the recommender configuration.
func NewModel(cfg recommender.Config) *Model {
	return &Model{cfg: cfg, vpas: map[types.NamespacedName]*vpaState{}, memory: map[types.UID]map[string]int64{}, selectors: map[types.NamespacedName]labels.Selector{}}
}

// state returns the VPA's entry, starting a fresh one when the VPA is new or was recreated.
// Callers hold mu.
func (m *Model) state(vpa *vpav1.VerticalPodAutoscaler) *vpaState {
	key := types.NamespacedName{Namespace: vpa.Namespace, Name: vpa.Name}
	s := m.vpas[key]
	if s == nil || s.uid != vpa.UID {
		s = &vpaState{uid: vpa.UID, containers: map[string]*recommender.Container{}, ooms: map[oomKey]time.Time{}}
		m.vpas[key] = s
	}
	return s
}

// container returns the history of one container of the VPA, creating it.
func (s *vpaState) container(name string, cfg recommender.Config, policy *vpav1.ContainerResourcePolicy) *recommender.Container {
	c := s.containers[name]
	if c == nil {
		c = recommender.NewContainer(cfg, recommender.MemoryInterval(policy))
		s.containers[name] = c
	}
	return c
}

// SetSelector records the VPA's resolved pod selector, for mapping pod events to VPAs; nil
// forgets it (the VPA is gone or no longer handled).
func (m *Model) SetSelector(key types.NamespacedName, sel labels.Selector) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if sel == nil {
		delete(m.selectors, key)
		return
	}
	m.selectors[key] = sel
}

// Selector returns the VPA's last resolved pod selector, nil when unknown.
func (m *Model) Selector(key types.NamespacedName) labels.Selector {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.selectors[key]
}

// Forget drops the VPAs not in keep.
func (m *Model) Forget(keep map[types.NamespacedName]bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.vpas {
		if !keep[k] {
			delete(m.vpas, k)
		}
	}
}

// SetMemory replaces the pods' memory usage with the latest read (nil when the read failed:
// every pod's usage is then unknown and no memory limit is lowered).
func (m *Model) SetMemory(usage map[types.UID]map[string]int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if usage == nil {
		usage = map[types.UID]map[string]int64{}
	}
	m.memory = usage
}

// Memory returns a pod's containers' memory usage (nil when unknown).
func (m *Model) Memory(uid types.UID) map[string]int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.memory[uid]
}

// Handles reports whether a VPA is this process's: its spec.recommenders names name, or it names
// none and unnamed is set.
func Handles(vpa *vpav1.VerticalPodAutoscaler, name string, unnamed bool) bool {
	if len(vpa.Spec.Recommenders) == 0 {
		return unnamed
	}
	for _, r := range vpa.Spec.Recommenders {
		if r != nil && r.Name == name {
			return true
		}
	}
	return false
}
