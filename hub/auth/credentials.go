package auth

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"
)

// Role is what a user may do on the broker.
type Role string

const (
	// RoleDevice is a camera or QR board: it publishes under its own
	// topics and subscribes to its own command topics only.
	RoleDevice Role = "device"
	// RoleViewer reads everything under the prefix and publishes nothing
	// (Home Assistant, a Grafana MQTT data source, a technician's laptop).
	RoleViewer Role = "viewer"
	// RoleHub has every right: another hub or a bridge. The embedded
	// broker's own (inline) client needs no credentials.
	RoleHub Role = "hub"
	// RoleFrigate is one Frigate NVR (docs/frigate.md): it publishes and
	// subscribes only under the topic_prefix of the frigate: entry with
	// its name in the hub's config, its last will only on
	// <topic_prefix>/available.
	RoleFrigate Role = "frigate"
)

// Device kinds and the topic level that names them.
var deviceKinds = []string{"camera", "qr"}

// idPattern is the contract's rule for site and device IDs.
var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// BcryptCost is the work factor of hashes that `device add` writes. The
// passwords are 160 random bits, so the cost does not protect them against
// guessing; it is kept at bcrypt's default so that a hash typed in by hand
// for a weaker password is still expensive to crack, and because the hook
// remembers a verified password, so devices pay it once per hub start.
const BcryptCost = bcrypt.DefaultCost

// DeviceUsername is the username of a device: "<site>/<kind>/<id>", which
// is also its topics' path under the prefix. Mosquitto's ACL can then give
// every device its own topics with one `pattern write <prefix>/%u/+` line.
func DeviceUsername(kind, site, id string) string { return site + "/" + kind + "/" + id }

// RoleUsername is the username of a viewer or hub account: "_<name>". The
// underscore keeps it from ever being a site ID (IDs start with [a-z0-9]),
// so Mosquitto's %u patterns give it nothing a device could use.
func RoleUsername(name string) string { return "_" + name }

// FrigateUsername is the username of a Frigate's account:
// "_frigate/<name>", <name> being its frigate: entry's name. The "_" keeps
// it out of every site's tree, as for role accounts, and the "/" out of
// the viewer and hub names (which cannot hold one).
func FrigateUsername(name string) string { return frigateUserPrefix + name }

const frigateUserPrefix = "_frigate/"

// parseUsername checks that a username fits its role, returning the
// device's topic path ("<site>/<kind>/<id>") for devices.
func parseUsername(username string, role Role) error {
	switch role {
	case RoleDevice:
		parts := strings.Split(username, "/")
		if len(parts) != 3 {
			return fmt.Errorf("device username %q must be <site>/<kind>/<id>", username)
		}
		if !idPattern.MatchString(parts[0]) {
			return fmt.Errorf("site %q in %q must match %s", parts[0], username, idPattern)
		}
		if !slices.Contains(deviceKinds, parts[1]) {
			return fmt.Errorf("kind %q in %q must be one of %s", parts[1], username, strings.Join(deviceKinds, ", "))
		}
		if !idPattern.MatchString(parts[2]) {
			return fmt.Errorf("device ID %q in %q must match %s", parts[2], username, idPattern)
		}
	case RoleViewer, RoleHub:
		if !strings.HasPrefix(username, "_") || !idPattern.MatchString(username[1:]) {
			return fmt.Errorf("%s username %q must be _<name> with <name> matching %s", role, username, idPattern)
		}
	case RoleFrigate:
		name, ok := strings.CutPrefix(username, frigateUserPrefix)
		if !ok || !idPattern.MatchString(name) {
			return fmt.Errorf("frigate username %q must be %s<name> with <name> matching %s", username, frigateUserPrefix, idPattern)
		}
	default:
		return fmt.Errorf("unknown role %q (device, viewer, hub or frigate)", role)
	}
	return nil
}

// entry is one user in the credentials file.
type entry struct {
	Username string    `yaml:"username"`
	Role     Role      `yaml:"role"`
	Bcrypt   string    `yaml:"bcrypt"`
	Created  time.Time `yaml:"created,omitempty"`
	line     int
}

type fileFormat struct {
	Users []entry `yaml:"users"`
}

const fileHeader = `# MQTT credentials for villagehub's embedded broker, written by
# "villagehub device add|passwd|remove". Only bcrypt hashes are stored; a
# password is shown once, when it is made. Keep this file 0600.
`

// readEntries reads a credentials file. A missing file is an empty one.
func readEntries(path string) ([]entry, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading credentials: %w", err)
	}
	return parseEntries(path, b)
}

func parseEntries(path string, b []byte) ([]entry, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("credentials file %s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	var f fileFormat
	dec := doc.Content[0]
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("credentials file %s: %w", path, err)
	}
	// Lines for error messages.
	for i := 0; i+1 < len(dec.Content); i += 2 {
		if dec.Content[i].Value == "users" && dec.Content[i+1].Kind == yaml.SequenceNode {
			for j, n := range dec.Content[i+1].Content {
				if j < len(f.Users) {
					f.Users[j].line = n.Line
				}
			}
		}
	}
	seen := map[string]int{}
	var errs []error
	for i, e := range f.Users {
		where := fmt.Sprintf("%s:%d: users[%d]", path, e.line, i)
		if err := parseUsername(e.Username, e.Role); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
		}
		if _, err := bcrypt.Cost([]byte(e.Bcrypt)); err != nil {
			errs = append(errs, fmt.Errorf("%s (%s): bcrypt is not a bcrypt hash", where, e.Username))
		}
		if first, dup := seen[e.Username]; dup {
			errs = append(errs, fmt.Errorf("%s: %q is already listed at line %d", where, e.Username, first))
		}
		seen[e.Username] = e.line
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return f.Users, nil
}

// writeEntries replaces the credentials file atomically: a reader (the
// running hub) sees the old file or the new one, never half of one, and a
// crash leaves one of the two.
func writeEntries(path string, es []entry) error {
	var buf bytes.Buffer
	buf.WriteString(fileHeader)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(fileFormat{Users: es}); err != nil {
		return fmt.Errorf("encoding credentials: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, ".credentials-*")
	if err != nil {
		return fmt.Errorf("writing credentials: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	// CreateTemp makes the file 0600 already; say so for the reader.
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("writing credentials: %w", err)
	}
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("writing credentials: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing credentials: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing credentials: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replacing credentials: %w", err)
	}
	// The rename is durable once the directory is.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// lockFile serialises writers (two `villagehub device add` at once) with
// an advisory lock beside the credentials file.
func lockFile(path string) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	f, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("locking credentials: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking credentials: %w", err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// newPassword makes a password of 160 random bits in lowercase base32
// (32 characters from a-z and 2-7): easy to type into a device's web page,
// no characters a shell, YAML or a URL would mangle.
func newPassword() (string, error) {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("making a password: %w", err)
	}
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)), nil
}
