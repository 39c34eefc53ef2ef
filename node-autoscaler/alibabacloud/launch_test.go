package alibabacloud

import (
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

func TestClientToken(t *testing.T) {
	const uid = types.UID("0d6d3a4e-7f5c-4b1e-9a43-5c1f0e2b9d77")
	base := RunInput{InstanceType: "ecs.c7.large", VSwitchID: "vsw-h", ImageID: "img", SecurityGroupIDs: []string{"sg-a", "sg-b"},
		Tags: map[string]string{"a": "1", "b": "2"}, Name: "claim"}
	tok := ClientToken(uid, base)
	if len(tok) > 64 {
		t.Errorf("token %q is %d characters, ECS takes 64 at most", tok, len(tok))
	}
	same := base
	same.SecurityGroupIDs = []string{"sg-b", "sg-a"}
	same.ClientToken = "ignored"
	if ClientToken(uid, same) != tok {
		t.Error("the same parameters in another order gave another token")
	}
	for name, mut := range map[string]func(*RunInput){
		"another zone":          func(in *RunInput) { in.VSwitchID = "vsw-i" },
		"another instance type": func(in *RunInput) { in.InstanceType = "ecs.c7.2xlarge" },
		"spot":                  func(in *RunInput) { in.Spot = true },
		"another image":         func(in *RunInput) { in.ImageID = "img2" },
	} {
		other := base
		mut(&other)
		if ClientToken(uid, other) == tok {
			t.Errorf("%s: same token", name)
		}
	}
	if ClientToken("another-claim", base) == tok {
		t.Error("another NodeClaim: same token")
	}
}
