package testenv

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// qemuBinfmt are the binfmt_misc entries (the same magic and mask as
// Debian's qemu-user-binfmt) that let the kernel run a foreign ELF binary
// through qemu user emulation. With them a binary that re-executes itself
// (the hub starts its probe workers that way) keeps working; plain
// "qemu-aarch64 villagehub" would fail with "exec format error" on the
// re-exec.
var qemuBinfmt = map[string]struct{ magic, mask, interp string }{
	"arm64": {
		magic:  `\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00`,
		mask:   `\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff`,
		interp: "qemu-aarch64",
	},
	"arm": {
		magic:  `\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x28\x00`,
		mask:   `\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff`,
		interp: "qemu-arm",
	},
}

const binfmtDir = "/proc/sys/fs/binfmt_misc"

// EnableQemu makes the kernel run linux/<goarch> binaries under qemu user
// emulation (Debian's qemu-user), registering a binfmt_misc entry if there
// is none. It needs root, as CI and the developers' machines have; without
// it the test fails, saying why.
func EnableQemu(t testing.TB, goarch string) {
	t.Helper()
	e, ok := qemuBinfmt[goarch]
	if !ok {
		t.Fatalf("testenv: no qemu binfmt entry for %s", goarch)
	}
	interp, err := exec.LookPath(e.interp)
	if err != nil {
		t.Fatalf("testenv: %s not found (Debian package qemu-user; make deps installs it): %v", e.interp, err)
	}
	if _, err := os.Stat(filepath.Join(binfmtDir, "register")); errors.Is(err, os.ErrNotExist) {
		if out, err := exec.Command("mount", "-t", "binfmt_misc", "binfmt_misc", binfmtDir).CombinedOutput(); err != nil {
			t.Fatalf("testenv: mounting binfmt_misc (needs root): %v: %s", err, out)
		}
	}
	name := "villagehub-" + e.interp
	for _, existing := range []string{e.interp, "qemu-" + goarch, name} {
		if b, err := os.ReadFile(filepath.Join(binfmtDir, existing)); err == nil && strings.HasPrefix(string(b), "enabled") {
			return
		}
	}
	// Flag F: the kernel opens the interpreter now, so the entry works
	// from any mount namespace and needs no path lookup at exec time.
	line := ":" + name + ":M::" + e.magic + ":" + e.mask + ":" + interp + ":F"
	if err := os.WriteFile(filepath.Join(binfmtDir, "register"), []byte(line), 0); err != nil {
		t.Fatalf("testenv: registering %s with binfmt_misc (needs root): %v", e.interp, err)
	}
}
