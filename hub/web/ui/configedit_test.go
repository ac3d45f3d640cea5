package ui

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"villagehub/hub/config"
)

const editBase = `# The village's hub.
hub_id: edit-test
sites:
  - { id: tan-ngu-2, name: "Thôn Tân Ngữ 2" }   # the main hamlet
qr_boards:
  - { id: market-07, site: tan-ngu-2, name: "Chợ Bản, sạp 7" }
`

func writeEditBase(t *testing.T) *configFile {
	t.Helper()
	p := filepath.Join(t.TempDir(), "v.yaml")
	if err := os.WriteFile(p, []byte(editBase), 0o600); err != nil {
		t.Fatal(err)
	}
	return &configFile{path: p}
}

// Edits keep comments and other settings, keep the file's mode, and the
// result loads as check-config loads it.
func TestConfigEditKeepsCommentsAndValidates(t *testing.T) {
	c := writeEditBase(t)
	err := c.edit(func(root *yaml.Node) error {
		if err := addDevice(root, newDevice{Kind: "camera", Site: "tan-ngu-2", ID: "gate", Name: "Cổng làng", URL: "rtsp://10.0.0.5:554/s"}); err != nil {
			return err
		}
		return renameDevice(root, "board", "tan-ngu-2", "market-07", "Chợ Bản, sạp 7 (mới)")
	})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(c.path)
	for _, want := range []string{"# The village's hub.", "# the main hamlet", "{id: gate, site: tan-ngu-2, name: Cổng làng, rtsp_url: 'rtsp://10.0.0.5:554/s'}"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("edited file lacks %q:\n%s", want, b)
		}
	}
	cfg, err := config.Load(c.path, func(string) string { return "" })
	if err != nil {
		t.Fatalf("edited file does not load: %v\n%s", err, b)
	}
	if len(cfg.Cameras) != 1 || cfg.Boards[0].Name != "Chợ Bản, sạp 7 (mới)" {
		t.Errorf("cameras %+v boards %+v", cfg.Cameras, cfg.Boards)
	}
	if st, _ := os.Stat(c.path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode().Perm())
	}
}

// A change that would make the file invalid (a device in a site that does
// not exist, a duplicate) is refused and the file is left as it was.
func TestConfigEditRefusesInvalid(t *testing.T) {
	c := writeEditBase(t)
	for _, d := range []newDevice{
		{Kind: "board", Site: "khong-co", ID: "x"},
		{Kind: "board", Site: "tan-ngu-2", ID: "market-07"},
		{Kind: "camera", Site: "tan-ngu-2", ID: "gate", URL: "http://not-rtsp"},
	} {
		if err := c.edit(func(root *yaml.Node) error { return addDevice(root, d) }); err == nil {
			t.Errorf("%+v accepted", d)
		}
	}
	if err := c.edit(func(root *yaml.Node) error { return renameDevice(root, "board", "tan-ngu-2", "nope", "x") }); err != errNotFound {
		t.Errorf("renaming an unknown board: %v", err)
	}
	if b, _ := os.ReadFile(c.path); string(b) != editBase {
		t.Errorf("the file changed:\n%s", b)
	}
}
