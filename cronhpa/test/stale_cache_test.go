package test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/lockstep-dev/lockstep/cronhpa/apis/v1beta1"
	"github.com/lockstep-dev/lockstep/cronhpa/controller"
	"github.com/lockstep-dev/lockstep/internal/scaleclient"
	"github.com/lockstep-dev/lockstep/test/framework"
)

// staleReads serves CronHorizontalPodAutoscaler reads from a frozen copy while frozen, as an
// informer cache does when our own status write has not reached it yet; every other read and
// every write goes to the API server.
type staleReads struct {
	client.Client
	mu     sync.Mutex
	frozen *v1beta1.CronHorizontalPodAutoscaler
}

func (s *staleReads) freeze(obj *v1beta1.CronHorizontalPodAutoscaler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frozen = obj.DeepCopy()
}

func (s *staleReads) thaw() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frozen = nil
}

func (s *staleReads) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	s.mu.Lock()
	frozen := s.frozen
	s.mu.Unlock()
	if out, ok := obj.(*v1beta1.CronHorizontalPodAutoscaler); ok && frozen != nil && client.ObjectKeyFromObject(frozen) == key {
		frozen.DeepCopyInto(out)
		return nil
	}
	return s.Client.Get(ctx, key, obj, opts...)
}

// A reconcile that reads the object from before our own last status write must neither start
// a new incarnation of the jobs nor let a later reconcile run the same scheduled time again.
//
// The sequence is the one a loaded CI run met: the first reconcile writes the job records; a
// wake-up at the scheduled time reads a cache that still shows no records, scales, and has its
// status write refused (stale resourceVersion); the next reconcile reads the first write's
// records, with the time not yet handled.
func TestStaleCacheDoesNotRunATimeTwice(t *testing.T) {
	c := setup(t)
	ns := framework.Namespace(t, framework.Clientset(t))
	ctx := context.Background()
	deployment(t, c, ns, "shop", 1)

	// The package's controller would reconcile the object too; this test drives its own.
	stopController(t)
	t.Cleanup(func() { startController(t) })

	start := time.Now().UTC().Truncate(time.Second).Add(time.Second)
	due := start.Add(10 * time.Second)
	obj := cronHPA(ns, "sale", "shop", v1beta1.Job{Name: "up", Schedule: "@date " + due.Format("2006-01-02 15:04:05"), TargetSize: 4})
	withoutWebhook(t, c, func() {
		if err := c.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	})
	key := types.NamespacedName{Namespace: ns, Name: "sale"}
	var created v1beta1.CronHorizontalPodAutoscaler
	if err := c.Get(ctx, key, &created); err != nil {
		t.Fatal(err)
	}

	clk := clocktesting.NewFakeClock(start)
	reads := &staleReads{Client: c}
	r := standaloneReconciler(t, reads, clk)
	reconcile := func(step string) ctrl.Result {
		t.Helper()
		res, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: key})
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		return res
	}

	// 1. Before the date: the job gets its record, nothing runs.
	reconcile("first reconcile")
	first := liveRecord(t, c, key, "up")
	if first.JobID == "" || first.LastScheduleTime != nil {
		t.Fatalf("first record: %+v", first)
	}

	// 2. At the date, from a cache that still shows the object as created.
	clk.SetTime(due.Add(100 * time.Millisecond))
	reads.freeze(&created)
	if res := reconcile("stale reconcile"); res.RequeueAfter == 0 {
		t.Fatalf("the stale reconcile's status write should have conflicted and requeued, got %+v", res)
	}
	waitReplicas(t, c, ns, "shop", 4, 5*time.Second)
	if got := liveRecord(t, c, key, "up"); got.JobID != first.JobID || got.LastScheduleTime != nil {
		t.Fatalf("a refused write changed the record: %+v", got)
	}

	// Someone puts the replicas back: a second run of the same time would scale them again.
	setReplicas(t, c, ns, "shop", 1)

	// 3. The cache catches up with the first write only.
	reads.thaw()
	clk.Step(time.Second)
	reconcile("reconcile after the cache caught up")
	keepsReplicas(t, c, ns, "shop", 1, 2*time.Second)
	got := liveRecord(t, c, key, "up")
	if got.JobID != first.JobID {
		t.Errorf("job incarnation changed from %s to %s", first.JobID, got.JobID)
	}
	if got.State != v1beta1.Succeed || got.LastScheduleTime == nil || !got.LastScheduleTime.Time.Equal(due) ||
		!strings.Contains(got.Message, "current replicas:1, desired replicas:4") {
		t.Errorf("record after the run: %+v", got)
	}

	// 4. Later reconciles, with the cache current, change nothing.
	clk.Step(time.Second)
	reconcile("settled reconcile")
	keepsReplicas(t, c, ns, "shop", 1, time.Second)
	if again := liveRecord(t, c, key, "up"); !again.LastScheduleTime.Equal(got.LastScheduleTime) || again.JobID != got.JobID {
		t.Errorf("record changed again: %+v", again)
	}
}

// standaloneReconciler builds a reconciler outside any manager, on the given reader/writer
// and clock.
func standaloneReconciler(t *testing.T, c client.Client, clk *clocktesting.FakeClock) *controller.Reconciler {
	t.Helper()
	cfg := framework.Env(t).Config
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper, err := apiutil.NewDynamicRESTMapper(cfg, httpClient)
	if err != nil {
		t.Fatal(err)
	}
	scales, err := scaleclient.New(cfg, mapper)
	if err != nil {
		t.Fatal(err)
	}
	return &controller.Reconciler{
		Client:          c,
		Scaler:          &controller.Scaler{Client: c, Mapper: mapper, Scales: scales},
		Clock:           clk,
		Recorder:        events.NewFakeRecorder(100),
		Metrics:         controller.NewMetrics(prometheus.NewRegistry(), c),
		DefaultLocation: time.UTC,
		DefaultDeadline: time.Minute,
		Alarm:           controller.NewAlarm(clk),
	}
}

// liveRecord reads a job's record from the API server.
func liveRecord(t *testing.T, c client.Client, key types.NamespacedName, job string) v1beta1.Condition {
	t.Helper()
	var obj v1beta1.CronHorizontalPodAutoscaler
	if err := c.Get(context.Background(), key, &obj); err != nil {
		t.Fatal(err)
	}
	if !meta.IsStatusConditionTrue(obj.Status.ObjectConditions, v1beta1.ConditionReady) {
		t.Fatalf("object not Ready: %+v", obj.Status.ObjectConditions)
	}
	for _, r := range obj.Status.Conditions {
		if r.Name == job {
			return r
		}
	}
	t.Fatalf("no record of job %s: %+v", job, obj.Status.Conditions)
	return v1beta1.Condition{}
}
