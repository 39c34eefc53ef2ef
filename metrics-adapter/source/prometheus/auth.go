package prometheus

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/lockstep-dev/lockstep/metrics-adapter/source/remote"
)

// Auth says how to authenticate to the HTTP API. Set at most one field. Secrets are read
// from files (a mounted Secret) on every request, so a rotated Secret takes effect without a
// restart, and they never appear in logs or errors.
type Auth struct {
	// BasicAuth sends a user name and password read from files.
	BasicAuth *BasicAuth `json:"basicAuth,omitempty"`
	// AuthorizationFile holds the whole value of the Authorization header, like
	// "Bearer <token>", or the token of an ARMS Prometheus (V1) instance.
	AuthorizationFile string `json:"authorizationFile,omitempty"`
	// AlibabaCloud sends the adapter's Alibaba Cloud credentials (the alibabaCloud section)
	// as basic auth, as SLS MetricStore and ARMS Prometheus (V2) expect: the AccessKey ID as
	// user and the AccessKey secret as password, with "$<security token>" appended when the
	// credentials are temporary (RRSA, STS).
	AlibabaCloud bool `json:"alibabaCloud,omitempty"`
}

// BasicAuth names the files that hold the user name and password.
type BasicAuth struct {
	UsernameFile string `json:"usernameFile"`
	PasswordFile string `json:"passwordFile"`
}

// CredentialSource gives Alibaba Cloud credentials: an AccessKey pair and, for temporary
// credentials, a security token.
type CredentialSource interface {
	Credentials() (id, secret, token string, err error)
}

// roundTripper wraps next with the authentication and with the mapping of HTTP 429 to
// remote.ErrThrottled and of 401 to a plain authentication error.
func (a *Auth) roundTripper(next http.RoundTripper, cloud CredentialSource) (http.RoundTripper, error) {
	if next == nil {
		next = http.DefaultTransport
	}
	t := &transport{next: next}
	if a == nil {
		return t, nil
	}
	set := 0
	if a.BasicAuth != nil {
		set++
		if a.BasicAuth.UsernameFile == "" || a.BasicAuth.PasswordFile == "" {
			return nil, errors.New("prometheus: auth.basicAuth: usernameFile and passwordFile are required")
		}
		b := *a.BasicAuth
		t.auth = func(r *http.Request) error {
			user, err := readSecret(b.UsernameFile)
			if err != nil {
				return err
			}
			pass, err := readSecret(b.PasswordFile)
			if err != nil {
				return err
			}
			r.SetBasicAuth(user, pass)
			return nil
		}
	}
	if a.AuthorizationFile != "" {
		set++
		file := a.AuthorizationFile
		t.auth = func(r *http.Request) error {
			v, err := readSecret(file)
			if err != nil {
				return err
			}
			r.Header.Set("Authorization", v)
			return nil
		}
	}
	if a.AlibabaCloud {
		set++
		t.auth = func(r *http.Request) error {
			if cloud == nil {
				return errors.New("auth.alibabaCloud is set but the alibabaCloud section configures no credentials")
			}
			id, secret, token, err := cloud.Credentials()
			if err != nil {
				return fmt.Errorf("alibaba cloud credentials: %w", err)
			}
			if token != "" {
				secret += "$" + token
			}
			r.SetBasicAuth(id, secret)
			return nil
		}
	}
	if set > 1 {
		return nil, errors.New("prometheus: auth: set one of basicAuth, authorizationFile and alibabaCloud")
	}
	return t, nil
}

// readSecret reads a secret file, without its trailing newline. Errors name the file, never
// its content.
func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path) //nolint:gosec // the operator names the file in the configuration
	if err != nil {
		return "", fmt.Errorf("reading a credential file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

type transport struct {
	next http.RoundTripper
	auth func(*http.Request) error
}

func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.auth != nil {
		r = r.Clone(r.Context())
		if err := t.auth(r); err != nil {
			if r.Body != nil {
				_ = r.Body.Close()
			}
			return nil, err
		}
	}
	resp, err := t.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests:
		drain(resp)
		return nil, fmt.Errorf("%w: HTTP 429", remote.ErrThrottled)
	case http.StatusUnauthorized:
		drain(resp)
		return nil, errors.New("authentication failed (HTTP 401): check the configured credentials")
	}
	return resp, nil
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	_ = resp.Body.Close()
}
