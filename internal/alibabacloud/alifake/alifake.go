// Package alifake is a local stand-in for Alibaba Cloud RPC-style APIs (CloudMonitor, ARMS),
// written from the public API documentation: it checks each request's signature (signature
// version 1.0, HMAC-SHA1 over the sorted, percent-encoded parameters) against the AccessKey
// pairs it knows, answers with JSON bodies shaped like the documented responses, and can
// throttle or refuse calls the way the real APIs do. Tests only.
package alifake

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // the documented signature algorithm is HMAC-SHA1
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// Handler answers one action: the response fields (RequestId is added), or an error.
type Handler func(params url.Values) (map[string]any, *Error)

// Error is an API error answer.
type Error struct {
	Status  int
	Code    string
	Message string
}

// Errors the real APIs answer with.
var (
	// Throttled is the answer to a caller over its flow-control limit.
	Throttled = &Error{Status: http.StatusTooManyRequests, Code: "Throttling.User", Message: "Request was denied due to user flow control."}
	// UnknownKey is the answer to an AccessKey ID the account does not have.
	UnknownKey = &Error{Status: http.StatusNotFound, Code: "InvalidAccessKeyId.NotFound", Message: "Specified access key is not found."}
	// BadSignature is the answer to a request signed with the wrong secret.
	BadSignature = &Error{Status: http.StatusBadRequest, Code: "SignatureDoesNotMatch", Message: "Specified signature is not matched with our calculation."}
	// Forbidden is the answer to a RAM identity without the permission.
	Forbidden = &Error{Status: http.StatusForbidden, Code: "Forbidden.RAM", Message: "User not authorized to operate on the specified resource, or this API doesn't support RAM."}
)

type key struct{ secret, token string }

// Server is the fake API endpoint.
type Server struct {
	mu       sync.Mutex
	keys     map[string]key
	handlers map[string]Handler
	throttle int
	refuse   *Error
	fail     map[string]failure       // by action
	gates    map[string]chan struct{} // by action: calls wait until it is closed
	calls    map[string]int
	requests int
}

// New returns a server that knows no keys and no actions yet.
func New() *Server {
	return &Server{keys: map[string]key{}, handlers: map[string]Handler{}, calls: map[string]int{},
		fail: map[string]failure{}, gates: map[string]chan struct{}{}}
}

// AddKey makes an AccessKey pair valid; token, when set, must come with it (STS credentials).
func (s *Server) AddKey(id, secret, token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[id] = key{secret: secret, token: token}
}

// RemoveKey revokes an AccessKey.
func (s *Server) RemoveKey(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.keys, id)
}

// Handle sets the handler of an action.
func (s *Server) Handle(action string, h Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers[action] = h
}

// Throttle makes the next n authenticated calls fail with Throttled.
func (s *Server) Throttle(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttle = n
}

// Refuse makes every authenticated call fail with e until it is called with nil.
func (s *Server) Refuse(e *Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = e
}

// failure is an error some calls of an action get.
type failure struct {
	match func(url.Values) bool
	err   *Error
}

// FailWhere makes the calls of action whose parameters match fail with e (Throttled, say),
// until it is called again with a nil e.
func (s *Server) FailWhere(action string, match func(url.Values) bool, e *Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e == nil {
		delete(s.fail, action)
		return
	}
	s.fail[action] = failure{match: match, err: e}
}

// Gate makes the calls of action wait, unanswered, until the returned function is called: an
// API that is slow right now.
func (s *Server) Gate(action string) (release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := make(chan struct{})
	s.gates[action] = g
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			delete(s.gates, action)
			s.mu.Unlock()
			close(g)
		})
	}
}

// Calls is how many authenticated calls of action were answered, good or bad.
func (s *Server) Calls(action string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[action]
}

// Requests is how many requests came in, authenticated or not.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		write(w, r, nil, &Error{Status: http.StatusBadRequest, Code: "InvalidParameter", Message: err.Error()})
		return
	}
	params := r.Form // query and form body together, as the signature covers both
	s.mu.Lock()
	s.requests++
	if e := s.authenticate(r.Method, params); e != nil {
		s.mu.Unlock()
		write(w, r, nil, e)
		return
	}
	action := params.Get("Action")
	s.calls[action]++
	h, refuse, gate := s.handlers[action], s.refuse, s.gates[action]
	if f, ok := s.fail[action]; ok && f.match(params) {
		refuse = f.err
	}
	throttled := s.throttle > 0
	if throttled {
		s.throttle--
	}
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
	}
	switch {
	case throttled:
		write(w, r, nil, Throttled)
	case refuse != nil:
		write(w, r, nil, refuse)
	case h == nil:
		write(w, r, nil, &Error{Status: http.StatusNotFound, Code: "InvalidAction.NotFound", Message: "Specified api is not found, please check your url and method."})
	default:
		body, e := h(params)
		write(w, r, body, e)
	}
}

// authenticate checks the AccessKey, the security token and the signature. Called locked.
func (s *Server) authenticate(method string, params url.Values) *Error {
	k, ok := s.keys[params.Get("AccessKeyId")]
	if !ok {
		return UnknownKey
	}
	if k.token != params.Get("SecurityToken") {
		return &Error{Status: http.StatusBadRequest, Code: "InvalidSecurityToken.Mismatch", Message: "Specified SecurityToken mismatch with the AccessKey."}
	}
	if params.Get("SignatureMethod") != "HMAC-SHA1" || params.Get("SignatureVersion") != "1.0" {
		return &Error{Status: http.StatusBadRequest, Code: "InvalidParameter", Message: "SignatureMethod HMAC-SHA1 and SignatureVersion 1.0 are required."}
	}
	if !hmac.Equal([]byte(Sign(method, params, k.secret)), []byte(params.Get("Signature"))) {
		return BadSignature
	}
	return nil
}

// Sign computes the documented signature of an RPC request: HMAC-SHA1, keyed with the
// secret and "&", of METHOD&%2F&<percent-encoded canonical query>, base64-encoded. The
// canonical query is every parameter but Signature, sorted by name, names and values
// percent-encoded (RFC 3986: space as %20, * as %2A, ~ kept).
func Sign(method string, params url.Values, secret string) string {
	names := make([]string, 0, len(params))
	for n := range params {
		if n != "Signature" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, encode(n)+"="+encode(params.Get(n)))
	}
	toSign := method + "&" + encode("/") + "&" + encode(strings.Join(parts, "&"))
	mac := hmac.New(sha1.New, []byte(secret+"&"))
	mac.Write([]byte(toSign))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func encode(s string) string {
	e := url.QueryEscape(s)
	return strings.NewReplacer("+", "%20", "*", "%2A", "%7E", "~").Replace(e)
}

var requestID atomic.Int64

func write(w http.ResponseWriter, r *http.Request, body map[string]any, e *Error) {
	id := fmt.Sprintf("6B1B8C1A-0000-4000-8000-%012d", requestID.Add(1))
	status := http.StatusOK
	if e != nil {
		status = e.Status
		body = map[string]any{"Code": e.Code, "Message": e.Message, "HostId": r.Host}
	}
	body["RequestId"] = id
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
