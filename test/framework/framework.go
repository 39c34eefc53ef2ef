package framework

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/lockstep-dev/lockstep/test/testbed"
)

// UnitOnlyEnv names the environment variable that, set to 1, runs a package's tests without
// starting a test bed; tests that need one are skipped. `make unit` sets it; `make test` clears it.
// Without it, a test that needs the bed and finds none fails: a suite cannot pass by not testing.
const UnitOnlyEnv = "LOCKSTEP_UNIT_ONLY"

var shared *testbed.Env

// Main starts one test bed for the whole test package, runs the tests, stops the bed and exits.
// Call it from TestMain. If the binaries are missing it fails with the command that builds them.
func Main(m *testing.M, opts testbed.Options) {
	os.Exit(run(m, opts))
}

func run(m *testing.M, opts testbed.Options) int {
	if UnitOnly() {
		return m.Run()
	}
	start := time.Now()
	env, err := testbed.Start(context.Background(), opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting test bed: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "test bed started in %s (logs: %s)\n", time.Since(start).Round(10*time.Millisecond), env.LogDir)
	shared = env
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "tests failed; component logs were in %s\n", env.LogDir)
		if os.Getenv("LOCKSTEP_KEEP_LOGS") == "1" {
			env.KeepDir()
		}
	}
	if err := env.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stopping test bed: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Env returns the package's test bed. In unit-only runs (UnitOnlyEnv=1) it skips the test;
// otherwise a missing bed (TestMain does not call framework.Main) fails it.
func Env(t testing.TB) *testbed.Env {
	t.Helper()
	if shared != nil {
		return shared
	}
	if UnitOnly() {
		t.Skipf("needs the test bed (%s=1 asks for unit tests only)", UnitOnlyEnv)
	}
	t.Fatalf("needs the test bed, but none was started: the package's TestMain must call framework.Main (or set %s=1 for unit tests only)", UnitOnlyEnv)
	return nil
}

// UnitOnly reports whether unit-only mode was asked for explicitly.
func UnitOnly() bool { return os.Getenv(UnitOnlyEnv) == "1" }

// Clientset returns an admin clientset for the package's test bed.
func Clientset(t testing.TB) *kubernetes.Clientset {
	t.Helper()
	cs, err := Env(t).Clientset()
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// Namespace creates a namespace with a generated name for one test and deletes it afterwards.
func Namespace(t testing.TB, cs kubernetes.Interface) string {
	t.Helper()
	ns, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "test-"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	t.Cleanup(func() {
		_ = cs.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	if Env(t).Options().ControllerManager {
		// Pods are refused until the service account controller has created "default".
		Eventually(t, 30*time.Second, func(ctx context.Context) error {
			_, err := cs.CoreV1().ServiceAccounts(ns.Name).Get(ctx, "default", metav1.GetOptions{})
			return err
		})
	}
	return ns.Name
}

// Eventually polls check every interval until it returns nil or timeout passes, then fails the
// test with the last error check returned.
func Eventually(t testing.TB, timeout time.Duration, check func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	const interval = 100 * time.Millisecond
	for {
		err := check(ctx)
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("condition not met within %s: %v", timeout, err)
		case <-time.After(interval):
		}
	}
}

// Consistently checks that check keeps returning nil for the whole duration, polling every
// 100 ms, and fails the test at the first error: the way to assert that nothing happens.
func Consistently(t testing.TB, duration time.Duration, check func(ctx context.Context) error) {
	t.Helper()
	start := time.Now()
	end := start.Add(duration)
	// The checks' context outlives the period, so no check is cut short by its end (a client's
	// rate limiter refuses a wait that would pass a deadline before the deadline has passed).
	ctx, cancel := context.WithDeadline(context.Background(), end.Add(consistentlyGrace))
	defer cancel()
	const interval = 100 * time.Millisecond
	for {
		if err := check(ctx); err != nil && time.Now().Before(end) {
			t.Fatalf("condition broken after %s of %s: %v", time.Since(start).Round(time.Millisecond), duration, err)
		}
		if !time.Now().Before(end) {
			return
		}
		time.Sleep(min(interval, time.Until(end)))
	}
}

// consistentlyGrace is how long a check begun near the end of Consistently's period may take.
const consistentlyGrace = 10 * time.Second
