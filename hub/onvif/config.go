package onvif

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"villagehub/hub/config"
)

// AddOptions say where and how AddCameras writes cameras.
type AddOptions struct {
	// Site is the site of the cameras added; it must be in the config.
	Site string
	// Username and PasswordFile are written beside each rtsp_url (the
	// password itself never goes into the YAML). Empty: none.
	Username, PasswordFile string
}

var notID = regexp.MustCompile(`[^a-z0-9]+`)

// cameraID makes a camera ID from the camera's address: stable across
// runs, unique per camera, valid as a metric label.
func cameraID(xaddr string) string {
	host := xaddr
	if u, err := url.Parse(xaddr); err == nil && u.Host != "" {
		host = u.Host
	}
	id := "cam-" + strings.Trim(notID.ReplaceAllString(strings.ToLower(host), "-"), "-")
	if len(id) > 64 {
		id = id[:64]
	}
	return strings.TrimRight(id, "-_")
}

// AddCameras writes the devices that have a main stream and are not yet in
// the config file at path (same RTSP or ONVIF URL) into it, each with its
// rtsp_url (no credentials), username, password_file and onvif.url,
// keeping the file's comments and layout: the entries are inserted as text
// after the last camera. The edited file is validated before it replaces
// the old one (same permissions). It returns the IDs added. Used by
// `villagehub cameras discover --add`; the admin page can use it too.
func AddCameras(path string, opts AddOptions, devs []Device) ([]string, error) {
	cfg, err := config.Load(path, func(string) string { return "" })
	if err != nil {
		return nil, err
	}
	site, user, pwFile := opts.Site, opts.Username, opts.PasswordFile
	siteKnown := false
	for _, s := range cfg.Sites {
		siteKnown = siteKnown || s.ID == site
	}
	if !siteKnown {
		return nil, fmt.Errorf("site %q is not in %s (add it under sites: first)", site, path)
	}
	if user != "" && pwFile == "" {
		return nil, errors.New("a username needs a password file (the config refers to the file)")
	}
	if pwFile != "" {
		if abs, err := filepath.Abs(pwFile); err == nil {
			pwFile = abs
		}
	}
	ids := map[string]bool{}
	known := map[string]bool{}
	for _, c := range cfg.Cameras {
		ids[c.Site+"/"+c.ID] = true
		known[StripCredentials(c.RTSPURL)] = true
		if c.ONVIF != nil {
			known[c.ONVIF.URL] = true
		}
	}
	var items []string
	var added []string
	for _, d := range devs {
		if d.MainURI == "" || known[d.MainURI] || known[d.XAddr] {
			continue
		}
		id := cameraID(d.XAddr)
		for n := 2; ids[site+"/"+id]; n++ {
			id = cameraID(d.XAddr) + "-" + strconv.Itoa(n)
		}
		ids[site+"/"+id] = true
		name := d.Name
		if name == "" {
			name = strings.TrimSpace(d.Manufacturer + " " + d.Model)
		}
		var b strings.Builder
		fmt.Fprintf(&b, "- id: %s\n  site: %s\n", id, site)
		if name != "" {
			fmt.Fprintf(&b, "  name: %s\n", strconv.Quote(name))
		}
		fmt.Fprintf(&b, "  rtsp_url: %s\n", strconv.Quote(d.MainURI))
		if user != "" {
			fmt.Fprintf(&b, "  username: %s\n", strconv.Quote(user))
			fmt.Fprintf(&b, "  password_file: %s\n", strconv.Quote(pwFile))
		}
		fmt.Fprintf(&b, "  onvif: { url: %s }\n", strconv.Quote(d.XAddr))
		items = append(items, b.String())
		added = append(added, id)
	}
	if len(items) == 0 {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out, err := insertCameras(data, items)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	// The result must be a valid config before it replaces the file.
	if _, err := config.Parse(path, out); err != nil {
		return nil, fmt.Errorf("the edited config would not be valid (file unchanged): %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".villagehub-*.yaml")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(out); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Chmod(fi.Mode().Perm()); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	return added, os.Rename(tmp.Name(), path)
}

// insertCameras adds the YAML items (each "- id: ...\n  key: ...\n") to
// the top-level cameras list of data: after its last item when it is a
// block list, as a new list at the end when there is none.
func insertCameras(data []byte, items []string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	indent := func(prefix string) string {
		var b strings.Builder
		for _, it := range items {
			for _, line := range strings.SplitAfter(strings.TrimSuffix(it, "\n"), "\n") {
				b.WriteString(prefix + line)
			}
			b.WriteString("\n")
		}
		return b.String()
	}
	var root *yaml.Node
	if len(doc.Content) > 0 {
		root = doc.Content[0]
	}
	var key, list *yaml.Node
	nextLine := 0 // line of the top-level key after cameras, 0 if none
	if root != nil && root.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(root.Content); i += 2 {
			if list != nil && nextLine == 0 {
				nextLine = root.Content[i].Line
			}
			if root.Content[i].Value == "cameras" {
				key, list = root.Content[i], root.Content[i+1]
			}
		}
	}
	text := string(data)
	if list == nil || (list.Kind == yaml.ScalarNode && list.Tag == "!!null") {
		if key != nil {
			return nil, errors.New("has an empty cameras: key; remove it or add one camera by hand first")
		}
		if !strings.HasSuffix(text, "\n") && text != "" {
			text += "\n"
		}
		return []byte(text + "cameras:\n" + indent("  ")), nil
	}
	if list.Kind != yaml.SequenceNode || list.Style&yaml.FlowStyle != 0 || len(list.Content) == 0 {
		return nil, errors.New("cameras: is written as a [ ... ] flow list; write it as a block list (one \"- id:\" per camera) to let --add extend it")
	}
	// Items of a block list start at the dash, two columns before the
	// item's first key.
	prefix := strings.Repeat(" ", max(list.Content[0].Column-3, 0))
	lines := strings.SplitAfter(text, "\n")
	insertAt := len(lines)
	if nextLine > 0 {
		insertAt = nextLine - 1
		// Keep the comments and blank lines that head the next key with it.
		for insertAt > 0 {
			l := strings.TrimSpace(lines[insertAt-1])
			if l != "" && !strings.HasPrefix(l, "#") {
				break
			}
			insertAt--
		}
	}
	var b bytes.Buffer
	for _, l := range lines[:insertAt] {
		b.WriteString(l)
	}
	if b.Len() > 0 && !bytes.HasSuffix(b.Bytes(), []byte("\n")) {
		b.WriteString("\n")
	}
	b.WriteString(indent(prefix))
	for _, l := range lines[insertAt:] {
		b.WriteString(l)
	}
	return b.Bytes(), nil
}
