// Package dns is the load harness's cluster DNS: it answers A queries for Service names with the
// addresses of their ready pods, as cluster DNS does for a headless Service. The ingress proxy
// (Caddy's A-record upstreams, refreshed every second) follows pods through it, so pods coming
// and going never reload the proxy's configuration, which would restart its metrics.
//
// It serves UDP and TCP on one loopback port and knows only the names it is given: any other
// name is NXDOMAIN, and it never forwards a query.
package dns

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// MaxNames bounds how many names a server holds; Set refuses more.
const MaxNames = 10_000

// ttl is the answers' time to live in seconds: 1, so a resolver that caches asks again soon.
const ttl = 1

// Server answers A queries for the names set on it.
type Server struct {
	mu      sync.RWMutex
	records map[string][]netip.Addr // by canonical name: lower case with a final dot

	udp  net.PacketConn
	tcp  net.Listener
	wg   sync.WaitGroup
	quit chan struct{}
	once sync.Once

	queries atomic.Int64
}

// Listen serves on host (a loopback IP address) at a free port, the same for UDP and TCP.
func Listen(host string) (*Server, error) {
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("dns: %q is not a loopback IP address", host)
	}
	var lastErr error
	for range 20 {
		udp, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, fmt.Errorf("dns: listening on UDP: %w", err)
		}
		tcp, err := net.Listen("tcp", udp.LocalAddr().String())
		if err != nil { // the port is taken for TCP: try another
			lastErr = err
			_ = udp.Close()
			continue
		}
		s := &Server{records: map[string][]netip.Addr{}, udp: udp, tcp: tcp, quit: make(chan struct{})}
		s.wg.Add(2)
		go s.serveUDP()
		go s.serveTCP()
		return s, nil
	}
	return nil, fmt.Errorf("dns: no port free for both UDP and TCP on %s: %w", host, lastErr)
}

// Addr is the host:port to give resolvers.
func (s *Server) Addr() string { return s.udp.LocalAddr().String() }

// Queries counts the queries answered.
func (s *Server) Queries() int64 { return s.queries.Load() }

// Set makes name resolve to addrs (none: the name exists with no addresses, as a Service with
// no ready pod).
func (s *Server) Set(name string, addrs []netip.Addr) error {
	key, err := canonical(name)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.records[key]; !ok && len(s.records) >= MaxNames {
		return fmt.Errorf("dns: already %d names", MaxNames)
	}
	s.records[key] = append([]netip.Addr(nil), addrs...)
	return nil
}

// Delete removes name: it becomes NXDOMAIN.
func (s *Server) Delete(name string) {
	if key, err := canonical(name); err == nil {
		s.mu.Lock()
		delete(s.records, key)
		s.mu.Unlock()
	}
}

// Lookup returns the addresses name resolves to now, as a client in the same process would
// get them from a query (none for an unknown name).
func (s *Server) Lookup(name string) []netip.Addr {
	key, err := canonical(name)
	if err != nil {
		return nil
	}
	addrs, _ := s.lookup(key)
	return append([]netip.Addr(nil), addrs...)
}

func (s *Server) lookup(name string) ([]netip.Addr, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	addrs, ok := s.records[strings.ToLower(name)]
	return addrs, ok
}

// Close stops serving and waits for the servers to return.
func (s *Server) Close() error {
	s.once.Do(func() {
		close(s.quit)
		_ = s.udp.Close()
		_ = s.tcp.Close()
	})
	s.wg.Wait()
	return nil
}

func (s *Server) serveUDP() {
	defer s.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := s.udp.ReadFrom(buf)
		if err != nil {
			if s.closed() {
				return
			}
			continue
		}
		resp := Answer(buf[:n], s.lookup, udpLimit(buf[:n]))
		if resp == nil {
			continue
		}
		s.queries.Add(1)
		_, _ = s.udp.WriteTo(resp, from)
	}
}

func (s *Server) serveTCP() {
	defer s.wg.Done()
	var conns sync.WaitGroup
	defer conns.Wait()
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			if s.closed() {
				return
			}
			continue
		}
		conns.Add(1)
		go func() {
			defer conns.Done()
			s.serveConn(c)
		}()
	}
}

// serveConn answers length-prefixed queries on one TCP connection until it is idle for 10 s.
func (s *Server) serveConn(c net.Conn) {
	defer c.Close()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-s.quit:
			_ = c.Close()
		case <-stop:
		}
	}()
	for {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		var size [2]byte
		if _, err := io.ReadFull(c, size[:]); err != nil {
			return
		}
		msg := make([]byte, binary.BigEndian.Uint16(size[:]))
		if _, err := io.ReadFull(c, msg); err != nil {
			return
		}
		resp := Answer(msg, s.lookup, 65535)
		if resp == nil || len(resp) > 65535 { // Answer keeps to the limit; TCP's length is 16 bits
			return
		}
		s.queries.Add(1)
		out := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(resp)), uint16(len(resp))) //nolint:gosec // at most 65535, checked above
		if _, err := c.Write(append(out, resp...)); err != nil {
			return
		}
	}
}

func (s *Server) closed() bool {
	select {
	case <-s.quit:
		return true
	default:
		return false
	}
}

// canonical returns name in lower case with a final dot, or an error for a name that is not a
// valid DNS name.
func canonical(name string) (string, error) {
	key := strings.ToLower(name)
	if !strings.HasSuffix(key, ".") {
		key += "."
	}
	if _, err := dnsmessage.NewName(key); err != nil || len(key) < 2 {
		return "", fmt.Errorf("dns: %q is not a DNS name", name)
	}
	for _, label := range strings.Split(strings.TrimSuffix(key, "."), ".") {
		if label == "" || len(label) > 63 {
			return "", fmt.Errorf("dns: %q is not a DNS name", name)
		}
	}
	return key, nil
}

// udpLimit is the largest UDP answer the query's sender accepts: 512 bytes, or the size in its
// EDNS(0) record.
func udpLimit(query []byte) int {
	var p dnsmessage.Parser
	if _, err := p.Start(query); err != nil {
		return 512
	}
	if err := p.SkipAllQuestions(); err != nil {
		return 512
	}
	if err := p.SkipAllAnswers(); err != nil {
		return 512
	}
	if err := p.SkipAllAuthorities(); err != nil {
		return 512
	}
	for {
		h, err := p.AdditionalHeader()
		if err != nil {
			return 512
		}
		if h.Type == dnsmessage.TypeOPT {
			return max(512, int(h.Class))
		}
		if err := p.SkipAdditional(); err != nil {
			return 512
		}
	}
}

// Answer returns the response to the DNS message query, looking names up with lookup (by
// canonical name), or nil when query is not a query whose header can be read (it gets no
// answer, as a server drops garbage). An answer longer than limit bytes is sent truncated (TC),
// so the resolver asks again over TCP.
func Answer(query []byte, lookup func(name string) ([]netip.Addr, bool), limit int) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil || h.Response {
		return nil
	}
	resp := dnsmessage.Header{ID: h.ID, Response: true, OpCode: h.OpCode, RecursionDesired: h.RecursionDesired}
	if h.OpCode != 0 {
		resp.RCode = dnsmessage.RCodeNotImplemented
		return build(resp, nil, nil)
	}
	q, err := p.Question()
	if err != nil { // no question, or one that cannot be read
		resp.RCode = dnsmessage.RCodeFormatError
		return build(resp, nil, nil)
	}
	resp.Authoritative = true
	addrs, ok := lookup(strings.ToLower(q.Name.String()))
	if !ok || q.Class != dnsmessage.ClassINET {
		resp.RCode = dnsmessage.RCodeNameError
		return build(resp, &q, nil)
	}
	if q.Type != dnsmessage.TypeA && q.Type != dnsmessage.TypeALL {
		return build(resp, &q, nil) // the name exists with no records of this type
	}
	var v4 []netip.Addr
	for _, a := range addrs {
		if a.Is4() {
			v4 = append(v4, a)
		}
	}
	out := build(resp, &q, v4)
	if len(out) > limit {
		resp.Truncated = true
		return build(resp, &q, nil)
	}
	return out
}

// build writes a response: the question (if any) and one A record per address.
func build(h dnsmessage.Header, q *dnsmessage.Question, addrs []netip.Addr) []byte {
	b := dnsmessage.NewBuilder(make([]byte, 0, 512), h)
	b.EnableCompression()
	if q != nil {
		if err := b.StartQuestions(); err != nil {
			return nil
		}
		if err := b.Question(*q); err != nil {
			return nil
		}
	}
	if err := b.StartAnswers(); err != nil {
		return nil
	}
	for _, a := range addrs {
		rh := dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: ttl}
		if err := b.AResource(rh, dnsmessage.AResource{A: a.As4()}); err != nil {
			return nil
		}
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}
