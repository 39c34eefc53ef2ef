package alibaba

import (
	"github.com/aliyun/alibaba-cloud-sdk-go/sdk/auth/credentials"

	"github.com/lockstep-dev/lockstep/internal/alibabacloud"
)

// Credentials says where the adapter's Alibaba Cloud credentials come from (shared with the
// node-autoscaler: internal/alibabacloud).
type Credentials = alibabacloud.Credentials

// RRSA configures the OIDC token exchange of ACK's RAM Roles for Service Accounts.
type RRSA = alibabacloud.RRSA

// Names of the files in Credentials.SecretDir.
const (
	AccessKeyIDFile     = alibabacloud.AccessKeyIDFile
	AccessKeySecretFile = alibabacloud.AccessKeySecretFile
	SecurityTokenFile   = alibabacloud.SecurityTokenFile
)

// CredentialSource adapts an SDK credentials provider to the Prometheus source's basic auth
// for SLS MetricStore and ARMS Prometheus.
type CredentialSource struct {
	p credentials.CredentialsProvider
}

// NewCredentialSource returns the credentials the configuration names.
func NewCredentialSource(c Credentials, region string) (*CredentialSource, error) {
	p, err := c.Provider(region, "lockstep-metrics-adapter")
	if err != nil {
		return nil, err
	}
	return &CredentialSource{p: p}, nil
}

// Credentials returns the AccessKey pair and, for temporary credentials, the token.
func (s *CredentialSource) Credentials() (id, secret, token string, err error) {
	cc, err := s.p.GetCredentials()
	if err != nil {
		return "", "", "", alibabacloud.Redact(err)
	}
	return cc.AccessKeyId, cc.AccessKeySecret, cc.SecurityToken, nil
}

// provider is the SDK provider, nil when s is (validation without credentials).
func (s *CredentialSource) provider() credentials.CredentialsProvider {
	if s == nil {
		return nil
	}
	return s.p
}
