package alibaba

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"

	"github.com/lockstep-dev/lockstep/internal/alibabacloud"
	"github.com/lockstep-dev/lockstep/metrics-adapter/series"
	"github.com/lockstep-dev/lockstep/metrics-adapter/source/remote"
)

// Endpoint says where a service's API is.
type Endpoint struct {
	// Endpoint is the API host, like metrics.cn-hangzhou.aliyuncs.com or a VPC endpoint;
	// empty means the SDK's endpoint for the region.
	Endpoint string `json:"endpoint,omitempty"`
	// Scheme is https (the default) or http (a local proxy or test fake).
	Scheme string `json:"scheme,omitempty"`
}

func (e Endpoint) validate(field string) error {
	switch strings.ToLower(e.Scheme) {
	case "", "https", "http":
		return nil
	default:
		return fmt.Errorf("%s.scheme %q: https or http", field, e.Scheme)
	}
}

// Common is the configuration every Alibaba Cloud source has.
type Common struct {
	Endpoint
	// Refresh is how often wanted values are fetched again (default 30s).
	Refresh remote.Duration `json:"refresh,omitempty"`
	// StaleAfter refuses older values (the default depends on the source).
	StaleAfter remote.Duration `json:"staleAfter,omitempty"`
	// Timeout bounds one API call (default 10s).
	Timeout remote.Duration `json:"timeout,omitempty"`
}

func (c Common) refresh() time.Duration { return orDefault(c.Refresh.Duration, 30*time.Second) }

func (c Common) timeout() time.Duration { return orDefault(c.Timeout.Duration, 10*time.Second) }

// sdkConfig is the SDK client configuration: no SDK retries (the refresher retries on its own
// schedule, with backoff after throttling) and a bounded request time.
func (c Common) sdkConfig(transport http.RoundTripper) *sdk.Config {
	scheme := strings.ToUpper(c.Scheme)
	if scheme == "" {
		scheme = "HTTPS"
	}
	cfg := sdk.NewConfig().WithScheme(scheme).WithAutoRetry(false).WithTimeout(c.timeout())
	cfg.Transport = transport
	return cfg
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// concurrency is how many calls a source makes at once.
const concurrency = 4

// newCache is a source's wanted-value cache: a few calls at a time, observed as name.
func newCache[S any](c Common, name string, fetch remote.Fetch[S], deps Deps) *remote.Cache[S] {
	var evicted func()
	if deps.Evicted != nil {
		evicted = deps.Evicted(strings.ToLower(name))
	}
	return remote.New(remote.Options{Name: name, Refresh: c.refresh(), Timeout: c.timeout(), Concurrency: concurrency,
		Observe: deps.observe(strings.ToLower(name)), MaxWanted: deps.MaxQueries, Evicted: evicted}, fetch, deps.Clock)
}

// base is what the sources share: the objects they serve and the cache they answer from.
type base[S any] struct {
	objects []series.Object
	cache   *remote.Cache[S]
}

// Objects implements provider.Source.
func (b *base[S]) Objects(kind series.ObjectKind) []series.Object {
	var out []series.Object
	for _, o := range b.objects {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

// Run keeps the wanted values fresh until ctx ends.
func (b *base[S]) Run(ctx context.Context) { b.cache.Run(ctx) }

// Refresh fetches every wanted value once.
func (b *base[S]) Refresh(ctx context.Context) { b.cache.Refresh(ctx) }

// apiError turns an SDK error into the source's error: the API's error code and message with
// nothing secret in them, wrapped in remote.ErrThrottled when the API throttled the call.
func apiError(action string, err error) error {
	var se *sdkerrors.ServerError
	if errors.As(err, &se) {
		msg := fmt.Sprintf("%s: %s (HTTP %d): %s", action, se.ErrorCode(), se.HttpStatus(), alibabacloud.FirstLine(se.Message()))
		if alibabacloud.Throttled(se.ErrorCode(), se.HttpStatus()) {
			return fmt.Errorf("%w: %s", remote.ErrThrottled, msg)
		}
		return errors.New(msg)
	}
	return fmt.Errorf("%s: %w", action, alibabacloud.Redact(err))
}

// failure turns an unsuccessful answer that came with HTTP 200 (Success false) into an error.
func failure(action, code, message string) error {
	msg := fmt.Sprintf("%s: %s: %s", action, code, alibabacloud.FirstLine(message))
	if alibabacloud.Throttled(code, 0) {
		return fmt.Errorf("%w: %s", remote.ErrThrottled, msg)
	}
	return errors.New(msg)
}
