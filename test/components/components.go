// Package components runs Lockstep's components on a test bed as the demo and the load
// scenarios use them: cronhpa (controller and webhook) in this process, node-autoscaler and
// vpa-inplace from bin/, and the CRDs they need. The metrics adapter runs through
// test/framework.
package components

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/lockstep-dev/lockstep/cronhpa"
	"github.com/lockstep-dev/lockstep/cronhpa/apis/v1beta1"
	cronwebhook "github.com/lockstep-dev/lockstep/cronhpa/webhook"
	"github.com/lockstep-dev/lockstep/test/framework"
	"github.com/lockstep-dev/lockstep/test/testbed"
)

// InstallCRDs installs the generated CRDs from repo's config/crd: the CronHPA's, the VPA's, and
// Karpenter's with its kwok provider's.
func InstallCRDs(ctx context.Context, env *testbed.Env, repo string) error {
	var files []string
	for _, dir := range []string{".", "vpa", "karpenter", "karpenter-kwok"} {
		found, err := filepath.Glob(filepath.Join(repo, "config", "crd", dir, "*.yaml"))
		if err != nil {
			return fmt.Errorf("listing config/crd/%s: %w", dir, err)
		}
		if len(found) == 0 {
			return fmt.Errorf("no CRDs in %s: run from the repository root or set its path", filepath.Join(repo, "config", "crd", dir))
		}
		files = append(files, found...)
	}
	return framework.InstallCRDs(ctx, env.Config, files...)
}

// StartCronHPA runs the cronhpa controller and its validating webhook in this process until ctx
// ends, logging to cronhpa.log in the bed's log directory. The CRDs must be installed.
func StartCronHPA(ctx context.Context, env *testbed.Env) error {
	cs, err := env.Clientset()
	if err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(env.LogDir, "cronhpa.log"))
	if err != nil {
		return fmt.Errorf("creating cronhpa log: %w", err)
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(logFile)))
	serving, err := framework.PrepareWebhook(env, "cronhpa")
	if err != nil {
		return err
	}
	mgr, err := cronhpa.New(env.Config, cronhpa.Options{
		MetricsAddr: "0", ProbeAddr: "0",
		WebhookHost: "127.0.0.1", WebhookPort: serving.Port, WebhookCertDir: serving.CertDir,
		Registry: prometheus.NewRegistry(),
	})
	if err != nil {
		return err
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "cronhpa controller stopped:", err)
		}
	}()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		return errors.New("cronhpa cache did not sync")
	}
	return framework.RegisterValidatingWebhook(ctx, cs, env, "lockstep-cronhpa", serving, cronwebhook.Path,
		v1beta1.GroupVersion.Group, v1beta1.GroupVersion.Version, "cronhorizontalpodautoscalers")
}

// StartNodeAutoscaler runs repo's bin/node-autoscaler (Karpenter with the kwok provider, spill
// and move-back) against the bed with extra flags; the bed stops it.
func StartNodeAutoscaler(env *testbed.Env, repo string, flags ...string) error {
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	_, err = runBinary(env, repo, "node-autoscaler", "node-autoscaler", append([]string{"--kubeconfig=" + env.Kubeconfig,
		"--cloud-provider=kwok", "--disable-leader-election",
		"--metrics-port=" + strconv.Itoa(ports[0]), "--health-probe-port=" + strconv.Itoa(ports[1])}, flags...))
	return err
}

// StartVPAInplace runs repo's bin/vpa-inplace (recommender and in-place updater) against the bed
// with extra flags; the bed stops it. The VPA CRDs must be installed.
func StartVPAInplace(env *testbed.Env, repo string, flags ...string) error {
	_, err := RunVPAInplace(env, repo, "vpa-inplace", append([]string{"--leader-elect=false"}, flags...)...)
	return err
}

// RunVPAInplace runs repo's bin/vpa-inplace as the bed's process logName (its log file's name)
// with the kubeconfig, no metrics or probe ports, and flags; it returns the process, for a test
// that stops or kills it (a leader change). The bed stops it otherwise.
func RunVPAInplace(env *testbed.Env, repo, logName string, flags ...string) (*testbed.Process, error) {
	return runBinary(env, repo, "vpa-inplace", logName, append([]string{"--kubeconfig=" + env.Kubeconfig,
		"--metrics-bind-address=0", "--health-probe-bind-address=0"}, flags...))
}

// runBinary runs repo's bin/<name> as a process of the bed, logging to logName.
func runBinary(env *testbed.Env, repo, name, logName string, args []string) (*testbed.Process, error) {
	bin, err := filepath.Abs(filepath.Join(repo, "bin", name))
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s not built: run `make build`", bin)
	}
	return env.Run(logName, bin, args...)
}

func freePorts(n int) ([]int, error) {
	ports := make([]int, n)
	for i := range ports {
		p, err := testbed.FreePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	return ports, nil
}
