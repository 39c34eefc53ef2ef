package nodeautoscaler

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

func TestValidateArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string // "" when the arguments are good
	}{
		{name: "defaults", args: nil},
		{name: "everything set", args: []string{"--cloud-provider=kwok", "--spill-budget=5s", "--virtual-node-selector=type=virtual-kubelet,zone=a",
			"--virtual-node-taint=virtual-kubelet.io/provider:NoSchedule", "--hold-priority=-5", "--move-back=false", "--feature-gates=StaticCapacity=true"}},
		{name: "unknown provider", args: []string{"--cloud-provider=gce"}, want: `--cloud-provider "gce"`},
		{name: "unknown flag", args: []string{"--spill-bugdet=5s"}, want: "spill-bugdet"},
		{name: "bad selector", args: []string{"--virtual-node-selector=type in (a"}, want: "--virtual-node-selector"},
		{name: "empty selector", args: []string{"--virtual-node-selector="}, want: "virtual node selector must select something"},
		{name: "taint without effect", args: []string{"--virtual-node-taint=virtual-kubelet.io/provider"}, want: "key[=value]:effect"},
		{name: "taint with a bad effect", args: []string{"--virtual-node-taint=k=v:Never"}, want: "effect"},
		{name: "negative budget", args: []string{"--spill-budget=-1s"}, want: "budget"},
		{name: "non-negative hold priority", args: []string{"--hold-priority=0"}, want: "negative"},
		{name: "hold priority out of range", args: []string{"--hold-priority=-2000000000"}, want: "range"},
		{name: "alibabacloud", args: []string{"--cloud-provider=alibabacloud", "--alibabacloud-region=cn-hangzhou", "--cluster-name=shop", "--alibabacloud-rrsa"}},
		{name: "alibabacloud without a region", args: []string{"--cloud-provider=alibabacloud", "--cluster-name=shop"}, want: "--alibabacloud-region"},
		{name: "alibabacloud without a cluster name", args: []string{"--cloud-provider=alibabacloud", "--alibabacloud-region=cn-hangzhou"}, want: "--cluster-name"},
		{name: "alibabacloud with two credential sources", args: []string{"--cloud-provider=alibabacloud", "--alibabacloud-region=cn-hangzhou", "--cluster-name=shop",
			"--alibabacloud-rrsa", "--alibabacloud-credentials-dir=/etc/creds"}, want: "not both"},
		{name: "alibabacloud with a bad scheme", args: []string{"--cloud-provider=alibabacloud", "--alibabacloud-region=cn-hangzhou", "--cluster-name=shop",
			"--alibabacloud-scheme=ftp"}, want: "https or http"},
		{name: "Karpenter's own flag checked too", args: []string{"--log-level=loud"}, want: "LOG_LEVEL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateArgs(tc.args)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("ValidateArgs(%q) = %v", tc.args, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ValidateArgs(%q) = %v, want an error mentioning %q", tc.args, err, tc.want)
			}
		})
	}
}

func TestOptionsParsed(t *testing.T) {
	if err := ValidateArgs([]string{"--spill-budget=7s", "--virtual-node-taint=eci.io/virtual=true:NoExecute", "--hold-priority=-7"}); err != nil {
		t.Fatal(err)
	}
	var o *Options
	for _, inj := range injectables() {
		if got, ok := inj.(*Options); ok {
			o = got
		}
	}
	if o == nil {
		t.Fatal("Lockstep's options are not registered with Karpenter's")
	}
	c := o.SpillConfig
	want := corev1.Taint{Key: "eci.io/virtual", Value: "true", Effect: corev1.TaintEffectNoExecute}
	if c.Budget != 7*time.Second || c.VirtualNodeTaint != want || c.HoldPriority != -7 {
		t.Errorf("parsed budget %s taint %+v priority %d", c.Budget, c.VirtualNodeTaint, c.HoldPriority)
	}
}
