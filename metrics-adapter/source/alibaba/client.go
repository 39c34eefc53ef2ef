package alibaba

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk"
	sdkerrors "github.com/aliyun/alibaba-cloud-sdk-go/sdk/errors"

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

// sdkConfig is the SDK client configuration: no SDK retries (the refresher retries on its own
// schedule, with backoff after throttling) and a bounded request time.
func (e Endpoint) sdkConfig(timeout time.Duration, transport http.RoundTripper) *sdk.Config {
	scheme := strings.ToUpper(e.Scheme)
	if scheme == "" {
		scheme = "HTTPS"
	}
	c := sdk.NewConfig().WithScheme(scheme).WithAutoRetry(false).WithTimeout(timeout)
	c.Transport = transport
	return c
}

// secretInURL matches the query string of a request URL, which holds the AccessKey ID, the
// signature and the security token of a signed RPC request.
var secretInURL = regexp.MustCompile(`\?[^\s"']*`)

// redact removes signed query strings from an error's text. The SDK's client errors quote
// the whole request URL (a failed connection reads "Post \"https://host/?AccessKeyId=…\"").
func redact(err error) error {
	if err == nil {
		return nil
	}
	return errors.New(secretInURL.ReplaceAllString(err.Error(), "?…"))
}

// apiError turns an SDK error into the source's error: the API's error code and message with
// nothing secret in them, wrapped in remote.ErrThrottled when the API throttled the call.
func apiError(action string, err error) error {
	var se *sdkerrors.ServerError
	if errors.As(err, &se) {
		msg := fmt.Sprintf("%s: %s (HTTP %d): %s", action, se.ErrorCode(), se.HttpStatus(), firstLine(se.Message()))
		if throttled(se.ErrorCode(), se.HttpStatus()) {
			return fmt.Errorf("%w: %s", remote.ErrThrottled, msg)
		}
		return errors.New(msg)
	}
	return fmt.Errorf("%s: %w", action, redact(err))
}

// failure turns an unsuccessful answer that came with HTTP 200 (Success false) into an error.
func failure(action, code, message string) error {
	msg := fmt.Sprintf("%s: %s: %s", action, code, firstLine(message))
	if throttled(code, 0) {
		return fmt.Errorf("%w: %s", remote.ErrThrottled, msg)
	}
	return errors.New(msg)
}

// throttled recognises flow control: error codes Throttling, Throttling.User, Throttling.Api
// and the like, or HTTP 429.
func throttled(code string, status int) bool {
	return strings.HasPrefix(code, "Throttling") || status == http.StatusTooManyRequests
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return secretInURL.ReplaceAllString(s, "?…")
}
