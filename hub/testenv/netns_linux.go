package testenv

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"testing"
)

const netnsEnv = "VILLAGEHUB_TEST_NETNS"

// InNetns runs the calling test again, alone, inside a new network
// namespace (unshare -n) whose only interface, loopback, is brought up
// with multicast and a route for 239.0.0.0/8. It returns true in that
// child, where the test body runs; in the parent it waits for the child,
// fails the test with the child's output if the child failed, and returns
// false. Multicast tests (WS-Discovery) so never touch the machine's own
// interfaces. A namespace that cannot be made fails the test (tests run as
// root here and in CI).
func InNetns(t *testing.T) bool {
	t.Helper()
	if os.Getenv(netnsEnv) == t.Name() {
		for _, args := range [][]string{{"link", "set", "lo", "up", "multicast", "on"}, {"route", "add", "239.0.0.0/8", "dev", "lo"}} {
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				t.Fatalf("ip %v: %v: %s", args, err, out)
			}
		}
		ifs, err := net.Interfaces()
		if err != nil {
			t.Fatal(err)
		}
		if len(ifs) != 1 || ifs[0].Name != "lo" {
			t.Fatalf("not in a fresh network namespace: interfaces %v", ifs)
		}
		return true
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Fatalf("unshare (util-linux) is needed for multicast tests: %v", err)
	}
	cmd := exec.Command(unshare, "--net", os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v", "-test.timeout=120s")
	cmd.Env = append(os.Environ(), netnsEnv+"="+t.Name())
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: "+t.Name())) {
		t.Fatalf("in a new network namespace: %v\n%s", err, out)
	}
	t.Logf("ran in its own network namespace:\n%s", out)
	return false
}
