package ui

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"gopkg.in/yaml.v3"

	"villagehub/hub/config"
)

// configFile edits the hub's YAML config file for the admin area and the
// first-run page. The file stays the one source of truth: every change is
// written into it (comments and the order of keys kept, as yaml.v3's node
// tree keeps them), checked with the same parser check-config and reload
// use before it replaces the file, and then applied by reloading. So what
// the dashboard changed is what `villagehub check-config` sees, survives a
// restart, and can be edited by hand afterwards.
type configFile struct {
	path string
	mu   sync.Mutex
}

// errNotFound is an edit of a device the file does not list.
var errNotFound = errors.New("not in the config file")

// edit applies fn to the file's top-level mapping, validates the result
// and replaces the file atomically, keeping its permissions (it may hold
// secrets: RTSP passwords, password hashes).
func (c *configFile) edit(fn func(root *yaml.Node) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	data, err := os.ReadFile(c.path)
	if err != nil {
		return err
	}
	st, err := os.Stat(c.path)
	if err != nil {
		return err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("%s: %w", c.path, err)
	}
	if doc.Kind == 0 {
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode}}}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return fmt.Errorf("%s: the top level is not a mapping", c.path)
	}
	if err := fn(doc.Content[0]); err != nil {
		return err
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return err
	}
	enc.Close()
	// The same checks as check-config (decoding, then every value), so a
	// change that would leave the file invalid is refused, not written.
	next, err := config.Parse(c.path, buf.Bytes())
	if err != nil {
		return err
	}
	if err := next.Validate(); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(c.path), ".villagehub-*.yaml")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(st.Mode().Perm()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), c.path)
}

// load parses the file as check-config does (without the environment).
func (c *configFile) load() (*config.Config, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	data, err := os.ReadFile(c.path)
	if err != nil {
		return nil, err
	}
	return config.Parse(c.path, data)
}

func scalar(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v} }

// mapGet is the value of key in mapping m, or nil.
func mapGet(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// mapSet sets key in mapping m to v, appending it if absent.
func mapSet(m *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = v
			return
		}
	}
	m.Content = append(m.Content, scalar(key), v)
}

// child is the mapping or sequence at key in m, created if absent (or
// null, as "cameras:" with nothing under it is).
func child(m *yaml.Node, key string, kind yaml.Kind) (*yaml.Node, error) {
	n := mapGet(m, key)
	if n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
		n = &yaml.Node{Kind: kind}
		if kind == yaml.SequenceNode {
			n.Tag = "!!seq"
		} else {
			n.Tag = "!!map"
		}
		mapSet(m, key, n)
	}
	if n.Kind != kind {
		return nil, fmt.Errorf("%s is not a %s", key, map[yaml.Kind]string{yaml.SequenceNode: "list", yaml.MappingNode: "mapping"}[kind])
	}
	return n, nil
}

// deviceKey is the config list of a device kind.
func deviceKey(kind string) (string, error) {
	switch kind {
	case "camera":
		return "cameras", nil
	case "board":
		return "qr_boards", nil
	}
	return "", fmt.Errorf("kind must be camera or board, not %q", kind)
}

// newDevice is a device to add: the fields the form asks for.
type newDevice struct {
	Kind string `json:"kind"`
	Site string `json:"site"`
	ID   string `json:"id"`
	Name string `json:"name"`
	// URL is the camera's rtsp_url or the board's target_url.
	URL string `json:"url"`
}

// addDevice appends d to cameras or qr_boards, in the flow style the
// reference config uses for one device per line.
func addDevice(root *yaml.Node, d newDevice) error {
	key, err := deviceKey(d.Kind)
	if err != nil {
		return err
	}
	list, err := child(root, key, yaml.SequenceNode)
	if err != nil {
		return err
	}
	if findDevice(list, d.Site, d.ID) != nil {
		return fmt.Errorf("%s %s/%s is already in the config file", d.Kind, d.Site, d.ID)
	}
	item := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Style: yaml.FlowStyle}
	mapSet(item, "id", scalar(d.ID))
	mapSet(item, "site", scalar(d.Site))
	if d.Name != "" {
		mapSet(item, "name", scalar(d.Name))
	}
	if d.URL != "" {
		if d.Kind == "camera" {
			mapSet(item, "rtsp_url", scalar(d.URL))
		} else {
			mapSet(item, "target_url", scalar(d.URL))
		}
	}
	list.Content = append(list.Content, item)
	return nil
}

func findDevice(list *yaml.Node, site, id string) *yaml.Node {
	for _, it := range list.Content {
		if it.Kind != yaml.MappingNode {
			continue
		}
		if s, i := mapGet(it, "site"), mapGet(it, "id"); s != nil && i != nil && s.Value == site && i.Value == id {
			return it
		}
	}
	return nil
}

// renameDevice sets the name of a device the file lists.
func renameDevice(root *yaml.Node, kind, site, id, name string) error {
	key, err := deviceKey(kind)
	if err != nil {
		return err
	}
	list := mapGet(root, key)
	var it *yaml.Node
	if list != nil && list.Kind == yaml.SequenceNode {
		it = findDevice(list, site, id)
	}
	if it == nil {
		return errNotFound
	}
	mapSet(it, "name", scalar(name))
	return nil
}

// ensureSite adds site id with name unless the file lists it.
func ensureSite(root *yaml.Node, id, name string) error {
	list, err := child(root, "sites", yaml.SequenceNode)
	if err != nil {
		return err
	}
	for _, it := range list.Content {
		if n := mapGet(it, "id"); n != nil && n.Value == id {
			if name != "" {
				mapSet(it, "name", scalar(name))
			}
			return nil
		}
	}
	item := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Style: yaml.FlowStyle}
	mapSet(item, "id", scalar(id))
	if name != "" {
		mapSet(item, "name", scalar(name))
	}
	list.Content = append(list.Content, item)
	return nil
}

// addAdmin appends an administrator to http.auth.users.
func addAdmin(root *yaml.Node, name, hash string) error {
	h, err := child(root, "http", yaml.MappingNode)
	if err != nil {
		return err
	}
	a, err := child(h, "auth", yaml.MappingNode)
	if err != nil {
		return err
	}
	users, err := child(a, "users", yaml.SequenceNode)
	if err != nil {
		return err
	}
	u := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	mapSet(u, "name", scalar(name))
	mapSet(u, "password_hash", scalar(hash))
	mapSet(u, "role", scalar("admin"))
	users.Content = append(users.Content, u)
	return nil
}

// setPublicURL sets http.public_url.
func setPublicURL(root *yaml.Node, u string) error {
	h, err := child(root, "http", yaml.MappingNode)
	if err != nil {
		return err
	}
	mapSet(h, "public_url", scalar(u))
	return nil
}

// configFileRoot is the top-level mapping of the config file.
type configFileRoot = yaml.Node
