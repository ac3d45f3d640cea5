package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"gopkg.in/yaml.v3"

	"villagehub/hub/config"
	"villagehub/hub/onvif"
)

const camerasUsage = `usage: villagehub cameras discover [flags]

Finds the ONVIF cameras on the LAN (WS-Discovery), asks each one its make,
model, firmware and RTSP stream URLs, and lists them. With --add, writes the
cameras found (and not yet in the file) into the config: rtsp_url without
credentials, username and password_file beside it, and an onvif: block so
the hub reads their motion events.

The password is read from --password-file or $VILLAGEHUB_ONVIF_PASSWORD,
never from the command line.

Flags:
`

// camerasCommand: villagehub cameras discover [...]
func camerasCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "discover" {
		fmt.Fprint(stderr, camerasUsage)
		return 2
	}
	fs := flag.NewFlagSet("cameras discover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for cameras to answer the probe")
	iface := fs.String("interface", "", "send the probe out of this network interface (default: the multicast route)")
	user := fs.String("username", "", "ONVIF user to read the cameras with (most cameras: admin)")
	pwFile := fs.String("password-file", "", "file holding that user's password (0600)")
	add := fs.Bool("add", false, "add the cameras found to the config file")
	cfgPath := fs.String("config", "", "config file to add the cameras to (with --add)")
	site := fs.String("site", "", "site of the cameras added (with --add)")
	fs.Usage = func() { fmt.Fprint(stderr, camerasUsage); fs.PrintDefaults() }
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *add && (*cfgPath == "" || *site == "") {
		fmt.Fprintln(stderr, "villagehub cameras discover: --add needs --config FILE and --site SITE")
		return 2
	}
	if *add && *user != "" && *pwFile == "" {
		// The config keeps passwords in files, not in the YAML.
		fmt.Fprintln(stderr, "villagehub cameras discover: --add with --username needs --password-file (the config refers to the file)")
		return 2
	}
	password := os.Getenv("VILLAGEHUB_ONVIF_PASSWORD")
	if *pwFile != "" {
		var err error
		if password, err = config.ReadSecret("", *pwFile); err != nil {
			fmt.Fprintln(stderr, "villagehub cameras discover:", err)
			return 1
		}
	}
	var cfg *config.Config
	if *add {
		var err error
		if cfg, err = config.Load(*cfgPath, func(string) string { return "" }); err != nil {
			fmt.Fprintln(stderr, "villagehub cameras discover:", err)
			return 1
		}
		known := false
		for _, s := range cfg.Sites {
			known = known || s.ID == *site
		}
		if !known {
			fmt.Fprintf(stderr, "villagehub cameras discover: site %q is not in %s (add it under sites: first)\n", *site, *cfgPath)
			return 1
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	devs, err := onvif.Discover(ctx, onvif.DiscoverOptions{
		Probe:    onvif.ProbeOptions{Timeout: *timeout, Interface: *iface},
		Username: *user, Password: password,
	})
	if err != nil {
		fmt.Fprintln(stderr, "villagehub cameras discover:", err)
		return 1
	}
	printDevices(stdout, devs)
	if !*add {
		return 0
	}
	added, err := addCameras(*cfgPath, cfg, *site, *user, *pwFile, devs)
	if err != nil {
		fmt.Fprintln(stderr, "villagehub cameras discover:", err)
		return 1
	}
	if len(added) == 0 {
		fmt.Fprintf(stdout, "no new camera to add to %s\n", *cfgPath)
		return 0
	}
	fmt.Fprintf(stdout, "added to %s (site %s): %s\nrestart the hub to start watching them\n", *cfgPath, *site, strings.Join(added, ", "))
	return 0
}

func printDevices(w io.Writer, devs []onvif.Device) {
	if len(devs) == 0 {
		fmt.Fprintln(w, "no ONVIF camera answered (cameras on another subnet do not hear the multicast probe)")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ONVIF\tMAKE\tMODEL\tFIRMWARE\tNAME\tMAIN STREAM\tSUB STREAM\tNOTE")
	for _, d := range devs {
		note := d.Error
		if d.Unauthorized {
			note = "wrong username or password (--username, --password-file)"
		}
		if off := d.ClockOffset.Round(time.Second); note == "" && (off > time.Minute || off < -time.Minute) {
			note = "camera clock off by " + off.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.XAddr, dash(d.Manufacturer), dash(d.Model), dash(d.Firmware), dash(d.Name), dash(d.MainURI), dash(d.SubURI), note)
	}
	_ = tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
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

// addCameras writes the devices that have a main stream and are not yet in
// cfg into the config file at path, keeping the file's comments and
// layout: the new entries are inserted as text at the end of the cameras
// list. It returns the IDs added.
func addCameras(path string, cfg *config.Config, site, user, pwFile string, devs []onvif.Device) ([]string, error) {
	if pwFile != "" {
		if abs, err := filepath.Abs(pwFile); err == nil {
			pwFile = abs
		}
	}
	ids := map[string]bool{}
	known := map[string]bool{}
	for _, c := range cfg.Cameras {
		ids[c.Site+"/"+c.ID] = true
		known[onvif.StripCredentials(c.RTSPURL)] = true
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
