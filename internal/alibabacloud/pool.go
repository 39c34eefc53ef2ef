package alibabacloud

import "net/http"

// Pool hands out SDK clients, one call at a time each. The SDK's client is not safe for
// concurrent calls (each call writes the HTTP client's timeout and its transport's dialer, as the
// race detector showed), so every concurrent call gets a client, and a transport, of its own.
type Pool[C any] struct{ free chan C }

// NewPool builds n clients with build, each on its own copy of transport.
func NewPool[C any](n int, transport http.RoundTripper, build func(http.RoundTripper) (C, error)) (*Pool[C], error) {
	p := &Pool[C]{free: make(chan C, n)}
	for range n {
		t := transport
		if ht, ok := transport.(*http.Transport); ok {
			t = ht.Clone()
		}
		c, err := build(t)
		if err != nil {
			return nil, err
		}
		p.free <- c
	}
	return p, nil
}

// With runs fn with a client nobody else is using.
func (p *Pool[C]) With(fn func(C)) {
	c := <-p.free
	defer func() { p.free <- c }()
	fn(c)
}
