// Package frontproxy remembers verified front-proxy client certificates. Every call the
// aggregator proxies to the adapter carries the kube-apiserver's front-proxy client certificate
// and the user in X-Remote-* headers; the library authenticator verifies the certificate chain
// against the request-header CA on every request (about a fifth of the adapter's CPU in the
// API benchmark), although the aggregator presents the same certificate on every call. This
// authenticator verifies a chain once, remembers it for a short time (bounded, keyed by the
// chain and the CA bundle), and reads the headers directly while it is remembered; a chain that
// fails the check is remembered too and passed on without checking it again. Anything it
// does not recognise goes to the library's authenticator unchanged.
package frontproxy

import (
	"crypto/sha256"
	"crypto/x509"
	"net/http"
	"slices"
	"sync"
	"time"

	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/authenticatorfactory"
	"k8s.io/apiserver/pkg/authentication/request/headerrequest"
	"k8s.io/utils/clock"
)

// Defaults: how long a verified chain is remembered (never past its certificates' expiry) and
// how many chains at most.
const (
	DefaultTTL  = time.Minute
	DefaultSize = 64
)

// Result names the outcome of one request for Observe.
type Result string

// The outcomes of a request.
const (
	// Cached: the chain was remembered and the headers named the user.
	Cached Result = "cached"
	// Verified: the chain was verified now (and is remembered) and the headers named the user.
	Verified Result = "verified"
	// Passed: the request went to the library's authenticator (no client certificate, a chain
	// that does not verify against the request-header CA, or no user in the headers).
	Passed Result = "passed"
)

// Authenticator answers requests from the front proxy whose certificate chain it verified
// recently, and passes every other request to next.
type Authenticator struct {
	next    authenticator.Request
	headers authenticator.Request
	cfg     *authenticatorfactory.RequestHeaderConfig
	clock   clock.PassiveClock
	ttl     time.Duration
	size    int
	observe func(Result)

	mu sync.Mutex
	// checked holds, per chain, until when its check stands and whether it passed: a chain
	// that is not the front proxy's (a client certificate from the cluster CA) is not checked
	// against the request-header CA again on every request either.
	checked map[[sha256.Size]byte]check
}

type check struct {
	until time.Time
	ok    bool
}

// Options tune New; zero values take the defaults.
type Options struct {
	Clock clock.PassiveClock
	TTL   time.Duration
	Size  int
	// Observe, when set, is told the outcome of every request.
	Observe func(Result)
}

// New wraps next, the authenticator the library built from cfg (the request-header
// configuration of the delegated authentication options).
func New(next authenticator.Request, cfg *authenticatorfactory.RequestHeaderConfig, o Options) *Authenticator {
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.Size <= 0 {
		o.Size = DefaultSize
	}
	return &Authenticator{
		next:    next,
		headers: headerrequest.NewDynamic(cfg.UsernameHeaders, cfg.UIDHeaders, cfg.GroupHeaders, cfg.ExtraHeaderPrefixes),
		cfg:     cfg,
		clock:   o.Clock,
		ttl:     o.TTL,
		size:    o.Size,
		observe: o.Observe,
		checked: map[[sha256.Size]byte]check{},
	}
}

// AuthenticateRequest implements authenticator.Request.
func (a *Authenticator) AuthenticateRequest(req *http.Request) (*authenticator.Response, bool, error) {
	if req.TLS == nil || len(req.TLS.PeerCertificates) == 0 || a.cfg.CAContentProvider == nil {
		return a.pass(req)
	}
	chain := req.TLS.PeerCertificates
	key := a.key(chain)
	now := a.clock.Now()
	result := Cached
	c, known := a.remembered(key, now)
	if !known {
		c = a.verify(chain, now)
		a.remember(key, now, c)
		result = Verified
	}
	if !c.ok {
		return a.pass(req)
	}
	// The same check the library makes after verifying the chain: the headers name the user.
	resp, ok, err := a.headers.AuthenticateRequest(req)
	if !ok || err != nil {
		return a.pass(req)
	}
	a.observed(result)
	return resp, true, nil
}

func (a *Authenticator) pass(req *http.Request) (*authenticator.Response, bool, error) {
	a.observed(Passed)
	return a.next.AuthenticateRequest(req) //nolint:wrapcheck // the library's answer passes as it is
}

func (a *Authenticator) observed(r Result) {
	if a.observe != nil {
		a.observe(r)
	}
}

// key identifies a chain under the current CA bundle: a rotated CA never matches an entry made
// under the old one.
func (a *Authenticator) key(chain []*x509.Certificate) [sha256.Size]byte {
	h := sha256.New()
	_, _ = h.Write(a.cfg.CAContentProvider.CurrentCABundleContent())
	for _, c := range chain {
		_, _ = h.Write([]byte{0})
		_, _ = h.Write(c.Raw)
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// verify checks the chain as the library's request-header verifier does: against the
// request-header CA for client authentication, and the leaf's common name against the allowed
// names (any, when none are configured). The result may be remembered until its until.
func (a *Authenticator) verify(chain []*x509.Certificate, now time.Time) check {
	until := now.Add(a.ttl)
	for _, c := range chain {
		if c.NotAfter.Before(until) {
			until = c.NotAfter
		}
	}
	opts, ok := a.cfg.CAContentProvider.VerifyOptions()
	if !ok {
		return check{until: until}
	}
	opts.CurrentTime = now
	if opts.Intermediates == nil && len(chain) > 1 {
		opts.Intermediates = x509.NewCertPool()
		for _, c := range chain[1:] {
			opts.Intermediates.AddCert(c)
		}
	}
	if _, err := chain[0].Verify(opts); err != nil {
		return check{until: until}
	}
	if a.cfg.AllowedClientNames != nil {
		if allowed := a.cfg.AllowedClientNames.Value(); len(allowed) > 0 && !slices.Contains(allowed, chain[0].Subject.CommonName) {
			return check{until: until}
		}
	}
	return check{until: until, ok: true}
}

func (a *Authenticator) remembered(key [sha256.Size]byte, now time.Time) (check, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.checked[key]
	return c, ok && now.Before(c.until)
}

// remember stores a verified chain; when the cache is full, expired entries go first, then
// everything (the next requests verify again).
func (a *Authenticator) remember(key [sha256.Size]byte, now time.Time, c check) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.checked) >= a.size {
		for k, old := range a.checked {
			if !now.Before(old.until) {
				delete(a.checked, k)
			}
		}
		if len(a.checked) >= a.size {
			clear(a.checked)
		}
	}
	a.checked[key] = c
}

// Len is the number of chains remembered.
func (a *Authenticator) Len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.checked)
}
