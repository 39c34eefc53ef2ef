// Package alibabacloud holds what Lockstep's Alibaba Cloud clients share: where credentials come
// from (a mounted Secret, RRSA, the SDK's default chain) and how API errors are read (throttling,
// secrets kept out of messages). The metrics adapter's CloudMonitor and ARMS sources and the
// node-autoscaler's ECS provider use it.
package alibabacloud

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"
)

// Credentials says where a component's Alibaba Cloud credentials come from. Set at most one
// field; with none, the SDK's default chain is used (the ALIBABA_CLOUD_ACCESS_KEY_ID and
// ALIBABA_CLOUD_ACCESS_KEY_SECRET environment variables, then the node's ECS RAM role).
// Credentials are never logged and never appear in error messages.
type Credentials struct {
	// SecretDir is a directory holding the files access-key-id, access-key-secret and,
	// for temporary credentials, security-token: a Secret mounted as a volume. The files
	// are read on every request, so a rotated Secret takes effect without a restart.
	SecretDir string `json:"secretDir,omitempty"`
	// RRSA exchanges the pod's service account token for temporary credentials of a RAM
	// role (ACK RAM Roles for Service Accounts).
	RRSA *RRSA `json:"rrsa,omitempty"`
}

// RRSA configures the OIDC token exchange. Empty fields are read from the environment
// variables ACK's pod identity webhook injects: ALIBABA_CLOUD_ROLE_ARN,
// ALIBABA_CLOUD_OIDC_PROVIDER_ARN and ALIBABA_CLOUD_OIDC_TOKEN_FILE.
type RRSA struct {
	RoleARN         string `json:"roleArn,omitempty"`
	OIDCProviderARN string `json:"oidcProviderArn,omitempty"`
	TokenFile       string `json:"tokenFile,omitempty"`
	// STSEndpoint overrides the STS host (default sts-vpc.<region>.aliyuncs.com).
	STSEndpoint string `json:"stsEndpoint,omitempty"`
}

// Names of the files in Credentials.SecretDir.
const (
	AccessKeyIDFile     = "access-key-id"
	AccessKeySecretFile = "access-key-secret" //nolint:gosec // a file name, not a credential
	SecurityTokenFile   = "security-token"
)

// Validate reports a configuration naming more than one source of credentials.
func (c Credentials) Validate(field string) error {
	if c.SecretDir != "" && c.RRSA != nil {
		return fmt.Errorf("%s: set secretDir or rrsa, not both", field)
	}
	return nil
}

// Provider builds the SDK credentials provider the configuration names; sessionName names the
// RRSA role session (the component). A Secret directory is read once here, so that a missing or
// empty file fails at start rather than at the first call.
func (c Credentials) Provider(region, sessionName string) (credentials.CredentialsProvider, error) {
	switch {
	case c.SecretDir != "":
		p := &fileProvider{dir: c.SecretDir}
		if _, err := p.GetCredentials(); err != nil {
			return nil, err
		}
		return p, nil
	case c.RRSA != nil:
		b := credentials.NewOIDCCredentialsProviderBuilder().
			WithRoleArn(c.RRSA.RoleARN).WithOIDCProviderARN(c.RRSA.OIDCProviderARN).WithOIDCTokenFilePath(c.RRSA.TokenFile).
			WithRoleSessionName(sessionName)
		if c.RRSA.STSEndpoint != "" {
			b = b.WithSTSEndpoint(c.RRSA.STSEndpoint)
		} else if region != "" {
			b = b.WithStsRegion(region).WithEnableVpc(true)
		}
		p, err := b.Build()
		if err != nil {
			return nil, fmt.Errorf("credentials.rrsa: %w", err)
		}
		return p, nil
	default:
		return credentials.NewDefaultCredentialsProvider(), nil
	}
}

// fileProvider reads an AccessKey pair, and a security token when present, from files.
type fileProvider struct{ dir string }

// GetCredentials implements credentials.CredentialsProvider.
func (p *fileProvider) GetCredentials() (*credentials.Credentials, error) {
	id, err := p.read(AccessKeyIDFile, true)
	if err != nil {
		return nil, err
	}
	secret, err := p.read(AccessKeySecretFile, true)
	if err != nil {
		return nil, err
	}
	token, err := p.read(SecurityTokenFile, false)
	if err != nil {
		return nil, err
	}
	return &credentials.Credentials{AccessKeyId: id, AccessKeySecret: secret, SecurityToken: token, ProviderName: p.GetProviderName()}, nil
}

// GetProviderName implements credentials.CredentialsProvider.
func (p *fileProvider) GetProviderName() string { return "lockstep_secret_dir" }

func (p *fileProvider) read(name string, required bool) (string, error) {
	path := filepath.Join(p.dir, name)
	b, err := os.ReadFile(path) //nolint:gosec // the operator names the directory in the configuration
	switch {
	case errors.Is(err, os.ErrNotExist) && !required:
		return "", nil
	case err != nil:
		return "", fmt.Errorf("credentials: reading %s: %w", path, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" && required {
		return "", fmt.Errorf("credentials: %s is empty", path)
	}
	return v, nil
}

// secretInURL matches the query string of a request URL, which holds the AccessKey ID, the
// signature and the security token of a signed RPC request.
var secretInURL = regexp.MustCompile(`\?[^\s"']*`)

// Redact removes signed query strings from an error's text. The SDK's client errors quote the
// whole request URL (a failed connection reads "Post \"https://host/?AccessKeyId=…\"").
func Redact(err error) error {
	if err == nil {
		return nil
	}
	return errors.New(secretInURL.ReplaceAllString(err.Error(), "?…"))
}

// FirstLine is the first line of an API message, with any signed query string removed.
func FirstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return secretInURL.ReplaceAllString(s, "?…")
}

// Throttled recognises flow control: error codes Throttling, Throttling.User, Throttling.Api and
// the like, or HTTP 429.
func Throttled(code string, status int) bool {
	return strings.HasPrefix(code, "Throttling") || status == http.StatusTooManyRequests
}
