package frontproxy

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"testing"
	"time"

	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/authenticatorfactory"
	"k8s.io/apiserver/pkg/authentication/request/headerrequest"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/lockstep-dev/lockstep/test/testbed"
)

// fallback stands for the rest of the library's authenticator chain.
type fallback struct{ calls int }

func (f *fallback) AuthenticateRequest(*http.Request) (*authenticator.Response, bool, error) {
	f.calls++
	return nil, false, nil
}

func leaf(t *testing.T, ca *testbed.Authority, cn string) *x509.Certificate {
	t.Helper()
	pair, err := ca.Sign(testbed.CertRequest{CommonName: cn, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pair.CertPEM)
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func request(cert *x509.Certificate, userHeader string) *http.Request {
	r, _ := http.NewRequest(http.MethodGet, "https://adapter/apis/custom.metrics.k8s.io/v1beta2", nil)
	if cert != nil {
		r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}
	}
	if userHeader != "" {
		r.Header.Set("X-Remote-User", userHeader)
		r.Header.Add("X-Remote-Group", "system:serviceaccounts")
		r.Header.Set("X-Remote-Extra-Scopes", "hpa")
	}
	return r
}

// countingCA counts how often a chain is checked against the bundle.
type countingCA struct {
	dynamiccertificates.CAContentProvider
	checks int
}

func (c *countingCA) VerifyOptions() (x509.VerifyOptions, bool) {
	c.checks++
	return c.CAContentProvider.VerifyOptions()
}

// fixture is a front-proxy CA and another CA, and a request-header configuration on the first
// whose bundle counts the checks made against it.
type fixture struct {
	ca, other *testbed.Authority
	counting  *countingCA
	cfg       *authenticatorfactory.RequestHeaderConfig
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	ca, err := testbed.NewAuthority("front-proxy-ca")
	if err != nil {
		t.Fatal(err)
	}
	other, err := testbed.NewAuthority("another-ca")
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := dynamiccertificates.NewStaticCAContent("front-proxy", ca.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	counting := &countingCA{CAContentProvider: bundle}
	return fixture{ca: ca, other: other, counting: counting, cfg: &authenticatorfactory.RequestHeaderConfig{
		UsernameHeaders:     headerrequest.StaticStringSlice{"X-Remote-User"},
		UIDHeaders:          headerrequest.StaticStringSlice{},
		GroupHeaders:        headerrequest.StaticStringSlice{"X-Remote-Group"},
		ExtraHeaderPrefixes: headerrequest.StaticStringSlice{"X-Remote-Extra-"},
		CAContentProvider:   counting,
		AllowedClientNames:  headerrequest.StaticStringSlice{"front-proxy-client"},
	}}
}

// The cache answers as the library's request-header authenticator does, for every kind of
// request, and verifies a chain only once per TTL.
func TestMatchesTheLibrary(t *testing.T) {
	f := newFixture(t)
	ca, other, cfg, bundle := f.ca, f.other, f.cfg, f.counting.CAContentProvider
	library := headerrequest.NewDynamicVerifyOptionsSecure(bundle.VerifyOptions, cfg.AllowedClientNames, cfg.UsernameHeaders, cfg.UIDHeaders, cfg.GroupHeaders, cfg.ExtraHeaderPrefixes)
	clk := clocktesting.NewFakePassiveClock(time.Now())
	next := &fallback{}
	results := map[Result]int{}
	a := New(next, cfg, Options{Clock: clk, Size: 2, Observe: func(r Result) { results[r]++ }})

	good := leaf(t, ca, "front-proxy-client")
	tests := []struct {
		name string
		req  *http.Request
		want Result
	}{
		{"front proxy, first call", request(good, "system:serviceaccount:kube-system:horizontal-pod-autoscaler"), Verified},
		{"front proxy, again", request(good, "system:serviceaccount:kube-system:horizontal-pod-autoscaler"), Cached},
		{"front proxy, another user", request(good, "alice"), Cached},
		{"front proxy without a user header", request(good, ""), Passed},
		{"a certificate from another CA", request(leaf(t, other, "front-proxy-client"), "mallory"), Passed},
		{"a common name not allowed", request(leaf(t, ca, "someone-else"), "mallory"), Passed},
		{"no client certificate", request(nil, "mallory"), Passed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := results[tc.want]
			// Both authenticators consume the X-Remote headers: each gets its own copy.
			want, wantOK, _ := library.AuthenticateRequest(tc.req.Clone(tc.req.Context()))
			got, gotOK, _ := a.AuthenticateRequest(tc.req)
			if results[tc.want] != before+1 {
				t.Fatalf("outcome counts %v, want one more %s", results, tc.want)
			}
			if tc.want == Passed {
				if gotOK || wantOK {
					t.Fatalf("answered %v (the library %v) for a request it must pass on", userOf(got), userOf(want))
				}
				return
			}
			if !gotOK || !wantOK || !sameUser(got.User, want.User) {
				t.Fatalf("got %v (%v), the library %v (%v)", userOf(got), gotOK, userOf(want), wantOK)
			}
		})
	}
	if next.calls != 4 {
		t.Errorf("%d requests passed on, want 4", next.calls)
	}
}

// A chain is checked once per TTL, also when it fails (a direct caller's cluster
// certificate); the cache holds at most Size chains.
func TestRemembersAndBounds(t *testing.T) {
	f := newFixture(t)
	clk := clocktesting.NewFakePassiveClock(time.Now())
	next := &fallback{}
	results := map[Result]int{}
	a := New(next, f.cfg, Options{Clock: clk, Size: 2, Observe: func(r Result) { results[r]++ }})
	good := leaf(t, f.ca, "front-proxy-client")
	if _, ok, _ := a.AuthenticateRequest(request(good, "bob")); !ok || results[Verified] != 1 {
		t.Fatalf("first call: ok %v, outcomes %v", ok, results)
	}
	stranger := leaf(t, f.other, "kubernetes-admin")
	checks := f.counting.checks
	for range 3 {
		if _, ok, _ := a.AuthenticateRequest(request(stranger, "")); ok {
			t.Fatal("answered for a stranger's certificate")
		}
	}
	if f.counting.checks != checks+1 || next.calls != 3 {
		t.Errorf("a stranger's chain was checked %d times for 3 requests (want 1), %d passed on (want 3)", f.counting.checks-checks, next.calls)
	}
	// After the TTL the chain is verified again.
	clk.SetTime(clk.Now().Add(DefaultTTL + time.Second))
	if _, ok, _ := a.AuthenticateRequest(request(good, "bob")); !ok || results[Verified] != 2 {
		t.Fatalf("after the TTL: ok %v, outcomes %v; want a second verification", ok, results)
	}
	// Bounded: three more chains in a cache of two.
	for i := range 3 {
		a.AuthenticateRequest(request(leaf(t, f.ca, "front-proxy-client"), fmt.Sprintf("user-%d", i))) //nolint:errcheck // only the size matters here
	}
	if n := a.Len(); n > 2 {
		t.Fatalf("%d chains remembered, want at most 2", n)
	}
}

func sameUser(a, b user.Info) bool {
	return a.GetName() == b.GetName() && fmt.Sprint(a.GetGroups()) == fmt.Sprint(b.GetGroups()) && fmt.Sprint(a.GetExtra()) == fmt.Sprint(b.GetExtra())
}

func userOf(r *authenticator.Response) any {
	if r == nil {
		return nil
	}
	return r.User
}
