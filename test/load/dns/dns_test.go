package dns

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// resolver is Go's own stub resolver pointed at s, as Caddy's A-record upstreams use it; with
// force set it always uses that network, otherwise the one Go's resolver asks for (UDP, then
// TCP after a truncated answer).
func resolver(s *Server, force string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		if force != "" {
			network = force
		}
		var d net.Dialer
		return d.DialContext(ctx, network, s.Addr())
	}}
}

func start(t *testing.T) *Server {
	t.Helper()
	s, err := Listen("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func addrs(t *testing.T, ss ...string) []netip.Addr {
	t.Helper()
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func lookup(t *testing.T, r *net.Resolver, name string) ([]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ips, err := r.LookupIP(ctx, "ip", name)
	var out []string
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	slices.Sort(out)
	return out, err
}

func notFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

func TestGoResolverFollowsTheRecords(t *testing.T) {
	s := start(t)
	const name = "checkout.shop.svc.cluster.local"
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			r := resolver(s, network)
			if err := s.Set(name, addrs(t, "127.64.0.2", "127.64.0.3")); err != nil {
				t.Fatal(err)
			}
			got, err := lookup(t, r, name)
			if err != nil || !slices.Equal(got, []string{"127.64.0.2", "127.64.0.3"}) {
				t.Fatalf("lookup = %v, %v", got, err)
			}
			// A pod left and another came: the next lookup sees it (no cache in between).
			if err := s.Set("Checkout.Shop.svc.cluster.local.", addrs(t, "127.64.0.3", "127.64.0.9")); err != nil {
				t.Fatal(err)
			}
			if got, err := lookup(t, r, name); err != nil || !slices.Equal(got, []string{"127.64.0.3", "127.64.0.9"}) {
				t.Fatalf("after the change: lookup = %v, %v", got, err)
			}
			// The same answer for a caller in this process, with any case and final dot.
			if got := s.Lookup("CHECKOUT.shop.svc.cluster.local."); !slices.Equal(got, addrs(t, "127.64.0.3", "127.64.0.9")) {
				t.Fatalf("in-process lookup = %v", got)
			}
			// No ready pod: the name exists with no address, which a resolver reports as not found.
			if err := s.Set(name, nil); err != nil {
				t.Fatal(err)
			}
			if got, err := lookup(t, r, name); !notFound(err) {
				t.Fatalf("no pods: lookup = %v, %v; want not found", got, err)
			}
			s.Delete(name)
			if got, err := lookup(t, r, name); !notFound(err) {
				t.Fatalf("deleted: lookup = %v, %v; want not found", got, err)
			}
			if got, err := lookup(t, r, "other.shop.svc.cluster.local"); !notFound(err) {
				t.Fatalf("unknown name: lookup = %v, %v; want not found", got, err)
			}
			if got := s.Lookup("other.shop.svc.cluster.local"); got != nil {
				t.Fatalf("unknown name in-process: %v", got)
			}
		})
	}
	if s.Queries() == 0 {
		t.Error("no query counted")
	}
}

func TestLargeAnswersAreTruncatedOverUDPAndWholeOverTCP(t *testing.T) {
	s := start(t)
	const name = "big.shop.svc.cluster.local"
	var many []netip.Addr
	var want []string
	for i := range 200 {
		a := netip.AddrFrom4([4]byte{127, 64, byte(1 + i/250), byte(1 + i%250)})
		many = append(many, a)
		want = append(want, a.String())
	}
	slices.Sort(want)
	if err := s.Set(name, many); err != nil {
		t.Fatal(err)
	}
	// Go's resolver gets TC over UDP and asks again over TCP.
	got, err := lookup(t, resolver(s, ""), name)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("lookup = %d addresses, %v; want 200", len(got), err)
	}
	// The UDP answer itself is the truncated one.
	q := query(t, 7, name, dnsmessage.TypeA)
	c, err := net.Dial("udp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(q); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	var m dnsmessage.Message
	if err := m.Unpack(buf[:n]); err != nil {
		t.Fatal(err)
	}
	if !m.Truncated || len(m.Answers) != 0 || n > 512 {
		t.Errorf("UDP answer: truncated %v, %d answers, %d bytes; want truncated, none, ≤ 512", m.Truncated, len(m.Answers), n)
	}
}

func query(t *testing.T, id uint16, name string, typ dnsmessage.Type) []byte {
	t.Helper()
	m := dnsmessage.Message{Header: dnsmessage.Header{ID: id, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName(name + "."), Type: typ, Class: dnsmessage.ClassINET}}}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAnswer(t *testing.T) {
	known := func(name string) ([]netip.Addr, bool) {
		if name == "a.shop.svc.cluster.local." {
			return []netip.Addr{netip.MustParseAddr("127.64.0.2"), netip.MustParseAddr("::1")}, true
		}
		return nil, false
	}
	withOpcode := func(b []byte) []byte { b = slices.Clone(b); b[2] |= 2 << 3; return b }
	noQuestion, _ := (&dnsmessage.Message{Header: dnsmessage.Header{ID: 9}}).Pack()
	aResponse, _ := (&dnsmessage.Message{Header: dnsmessage.Header{ID: 9, Response: true}}).Pack()
	chaos, _ := (&dnsmessage.Message{Header: dnsmessage.Header{ID: 9}, Questions: []dnsmessage.Question{
		{Name: dnsmessage.MustNewName("a.shop.svc.cluster.local."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassCHAOS}}}).Pack()
	tests := map[string]struct {
		query   []byte
		dropped bool
		rcode   dnsmessage.RCode
		answers []string
	}{
		"A of a known name: its IPv4 addresses": {query: query(t, 1, "a.shop.svc.cluster.local", dnsmessage.TypeA), answers: []string{"127.64.0.2"}},
		"names are case-insensitive":            {query: query(t, 1, "A.Shop.svc.cluster.local", dnsmessage.TypeA), answers: []string{"127.64.0.2"}},
		"AAAA of a known name: no data":         {query: query(t, 1, "a.shop.svc.cluster.local", dnsmessage.TypeAAAA)},
		"unknown name: NXDOMAIN":                {query: query(t, 1, "b.shop.svc.cluster.local", dnsmessage.TypeA), rcode: dnsmessage.RCodeNameError},
		"another class: NXDOMAIN":               {query: chaos, rcode: dnsmessage.RCodeNameError},
		"not a query opcode: not implemented":   {query: withOpcode(query(t, 1, "a.shop.svc.cluster.local", dnsmessage.TypeA)), rcode: dnsmessage.RCodeNotImplemented},
		"no question: format error":             {query: noQuestion, rcode: dnsmessage.RCodeFormatError},
		"a response is not answered":            {query: aResponse, dropped: true},
		"garbage is not answered":               {query: []byte{1, 2, 3}, dropped: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out := Answer(tc.query, known, 512)
			if tc.dropped {
				if out != nil {
					t.Fatalf("answered %x", out)
				}
				return
			}
			var m dnsmessage.Message
			if err := m.Unpack(out); err != nil {
				t.Fatal(err)
			}
			if !m.Response || m.RCode != tc.rcode {
				t.Fatalf("response %v rcode %v, want rcode %v", m.Response, m.RCode, tc.rcode)
			}
			var got []string
			for _, a := range m.Answers {
				r := a.Body.(*dnsmessage.AResource)
				got = append(got, netip.AddrFrom4(r.A).String())
				if a.Header.TTL != ttl {
					t.Errorf("TTL %d", a.Header.TTL)
				}
			}
			if !slices.Equal(got, tc.answers) {
				t.Errorf("answers %v, want %v", got, tc.answers)
			}
		})
	}
}

func TestSetRefusesBadNamesAndTooMany(t *testing.T) {
	s := start(t)
	for _, bad := range []string{"", ".", "a..b", string(make([]byte, 64)) + ".x", "x." + string(make([]byte, 300))} {
		if err := s.Set(bad, nil); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
	for i := range MaxNames {
		if err := s.Set(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).String()+".x", nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Set("one-more.x", nil); err == nil {
		t.Errorf("name %d accepted", MaxNames+1)
	}
	if err := s.Set("10.0.0.0.x", addrs(t, "127.0.0.2")); err != nil {
		t.Errorf("replacing a name at the bound: %v", err)
	}
}

func TestListenRefusesNonLoopback(t *testing.T) {
	for _, host := range []string{"0.0.0.0", "10.0.0.1", "localhost"} {
		if s, err := Listen(host); err == nil {
			_ = s.Close()
			t.Errorf("Listen(%q) accepted", host)
		}
	}
}

func FuzzAnswer(f *testing.F) {
	f.Add(query(&testing.T{}, 1, "a.shop.svc.cluster.local", dnsmessage.TypeA))
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0})
	known := func(name string) ([]netip.Addr, bool) {
		return []netip.Addr{netip.MustParseAddr("127.0.0.2")}, name == "a.shop.svc.cluster.local."
	}
	f.Fuzz(func(t *testing.T, q []byte) {
		out := Answer(q, known, 512)
		if out == nil {
			return
		}
		var p dnsmessage.Parser
		h, err := p.Start(out)
		if err != nil {
			t.Fatalf("answer does not parse: %v", err)
		}
		var qp dnsmessage.Parser
		qh, _ := qp.Start(q)
		if !h.Response || h.ID != qh.ID || len(out) > 512 {
			t.Fatalf("answer: response %v id %d (query %d), %d bytes", h.Response, h.ID, qh.ID, len(out))
		}
	})
}
