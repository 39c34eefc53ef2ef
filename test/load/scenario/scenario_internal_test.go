package scenario

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/lockstep-dev/lockstep/test/load/demoapi"
	"github.com/lockstep-dev/lockstep/test/load/dns"
	"github.com/lockstep-dev/lockstep/test/load/loadgen"
	"github.com/lockstep-dev/lockstep/test/load/timeline"
	"github.com/lockstep-dev/lockstep/test/testbed"
)

func TestPhases(t *testing.T) {
	s := loadgen.Step(10, 10, 20*time.Second, 10*time.Second, 60*time.Second, 15*time.Second)
	from, to, ok := stepSpan(s)
	if !ok || from != 30*time.Second || to != 90*time.Second {
		t.Fatalf("step span %s–%s, %v", from, to, ok)
	}
	want := []timeline.Phase{{Name: "baseline", From: 0, To: 20}, {Name: "ramp", From: 20, To: 30}, {Name: "step", From: 30, To: 90}, {Name: "back", From: 90, To: 105}}
	if got := phases(s); !reflect.DeepEqual(got, want) {
		t.Fatalf("phases %+v", got)
	}
	if _, _, ok := stepSpan(s[:2]); ok {
		t.Fatal("a schedule without a step has a step span")
	}
}

func TestConfigValidate(t *testing.T) {
	good := func() Config {
		return Config{
			Rest: &rest.Config{},
			Plumbing: &Local{Env: &testbed.Env{}, Caddy: "caddy", Dir: "/tmp/x", PodCIDR: netip.MustParsePrefix("127.66.0.0/16"),
				Service: demoapi.Config{Work: time.Millisecond, CPU: 1, Concurrency: 1}},
			Schedule: loadgen.Step(10, 10, time.Second, time.Second, time.Second, time.Second),
			Sides:    []Side{{Name: "a", Namespace: "a"}, {Name: "b", Namespace: "b"}},
		}
	}
	if err := (&Config{}).validate(); err == nil {
		t.Fatal("an empty config is valid")
	}
	c := good()
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		mutate func(*Config)
		err    string
	}{
		"pods off loopback":         {func(c *Config) { c.Plumbing.(*Local).PodCIDR = netip.MustParsePrefix("10.0.0.0/8") }, "not on loopback"},
		"no step":                   {func(c *Config) { c.Schedule = c.Schedule[:1] }, `no "step" phase`},
		"bad service model":         {func(c *Config) { c.Plumbing.(*Local).Service.Work = 0 }, "service model"},
		"no sides":                  {func(c *Config) { c.Sides = nil }, "no sides"},
		"a shared namespace":        {func(c *Config) { c.Sides[1].Namespace = "a" }, "of its own"},
		"no caddy":                  {func(c *Config) { c.Plumbing.(*Local).Caddy = "" }, "Caddy binary"},
		"no name for a side":        {func(c *Config) { c.Sides[0].Name = "" }, "a name"},
		"no plumbing":               {func(c *Config) { c.Plumbing = nil }, "plumbing"},
		"no cluster":                {func(c *Config) { c.Rest = nil }, "a cluster"},
		"in-cluster without images": {func(c *Config) { c.Plumbing = &InCluster{Service: SalesService} }, "images are required"},
	} {
		t.Run(name, func(t *testing.T) {
			c := good()
			tc.mutate(&c)
			if err := c.validate(); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err %v, want %q", err, tc.err)
			}
		})
	}
}

// Requests go to the ingress pods DNS names now, in turn; with none, to a refused port.
func TestSpread(t *testing.T) {
	names, err := dns.Listen("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer names.Close()
	const ingress = "gateway.shop.svc.cluster.local"
	target := spread(names, ingress)
	if got := target(0); got != noIngress {
		t.Fatalf("with no ingress pod: %s", got)
	}
	if err := names.Set(ingress, []netip.Addr{netip.MustParseAddr("127.66.0.2"), netip.MustParseAddr("127.66.0.3")}); err != nil {
		t.Fatal(err)
	}
	got := []string{target(0), target(1), target(2)}
	want := []string{"http://127.66.0.2:8080/", "http://127.66.0.3:8080/", "http://127.66.0.2:8080/"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("targets %v, want %v", got, want)
	}
}
