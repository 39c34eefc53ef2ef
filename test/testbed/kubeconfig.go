package testbed

import (
	"fmt"
	"path/filepath"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Identity is a user the test bed can issue a client certificate for.
type Identity struct {
	// User is the user name (certificate CN).
	User string
	// Groups are the user's groups (certificate O).
	Groups []string
}

// Well-known identities of the test bed's own components.
var (
	// Admin is a cluster administrator (member of system:masters).
	Admin                     = Identity{User: "lockstep-admin", Groups: []string{"system:masters"}}
	controllerManagerIdentity = Identity{User: "system:kube-controller-manager"}
	schedulerIdentity         = Identity{User: "system:kube-scheduler"}
)

// identityConfig signs a client certificate for id and returns a rest.Config using it.
func identityConfig(ca *Authority, host string, id Identity) (*rest.Config, error) {
	pair, err := ca.Sign(CertRequest{CommonName: id.User, Organization: id.Groups, Client: true})
	if err != nil {
		return nil, err
	}
	return identityConfigFromPair(ca, host, pair)
}

// identityConfigFromPair returns a rest.Config that authenticates with a signed client pair.
func identityConfigFromPair(ca *Authority, host string, pair *KeyPair) (*rest.Config, error) {
	return &rest.Config{
		Host: host,
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   ca.CertPEM,
			CertData: pair.CertPEM,
			KeyData:  pair.KeyPEM,
		},
		QPS:   200,
		Burst: 400,
	}, nil
}

// writeKubeconfig stores cfg as a self-contained kubeconfig file at <dir>/<name>.kubeconfig.
func writeKubeconfig(cfg *rest.Config, dir, name string) (string, error) {
	const context = "lockstep-testbed"
	kc := clientcmdapi.NewConfig()
	kc.Clusters[context] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos[context] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData}
	kc.Contexts[context] = &clientcmdapi.Context{Cluster: context, AuthInfo: context}
	kc.CurrentContext = context
	path := filepath.Join(dir, name+".kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return "", fmt.Errorf("writing kubeconfig %s: %w", path, err)
	}
	return path, nil
}
