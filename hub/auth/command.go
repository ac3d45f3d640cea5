package auth

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/crypto/bcrypt"
)

const deviceUsage = `usage: villagehub device <command>

  add camera|qr <site> <id>   make a device's MQTT credentials; prints its password once
  add viewer|hub <name>       make a read-only (viewer) or full-rights (hub) account "_<name>"
  add frigate <name>          make the account "_frigate/<name>" of the Frigate whose
                              frigate: entry is named <name>: it may publish only
                              under that entry's topic_prefix
  passwd <username>           make a new password (the old one stops working)
  remove <username>           remove a user; its connected clients are cut off
  list                        list users (never passwords or hashes)

A device's username is <site>/<kind>/<id>: it may publish only under
<prefix>/<site>/<kind>/<id>/ and subscribe only to .../cmd/#.
A running hub picks up changes within a few seconds.
`

// DeviceCommand runs `villagehub device ...`; args are what follows
// "device". It returns the process exit code: 0 done, 1 failed, 2 usage.
func DeviceCommand(args []string, stdout, stderr io.Writer, credentialsPath string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, deviceUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	var err error
	switch args[0] {
	case "add":
		err = cmdAdd(args[1:], stdout, credentialsPath)
	case "passwd":
		err = cmdPasswd(args[1:], stdout, credentialsPath)
	case "remove", "rm":
		err = cmdRemove(args[1:], stdout, credentialsPath)
	case "list", "ls":
		err = cmdList(args[1:], stdout, credentialsPath)
	default:
		err = usageError(fmt.Sprintf("unknown command %q", args[0]))
	}
	if ue, ok := err.(usageError); ok {
		fmt.Fprintf(stderr, "villagehub device: %s\n\n%s", string(ue), deviceUsage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "villagehub device: %v\n", err)
		return 1
	}
	return 0
}

type usageError string

func (u usageError) Error() string { return string(u) }

// userFromArgs turns "camera <site> <id>", "viewer <name>" or a username
// into a username and role.
func userFromArgs(args []string) (string, Role, error) {
	switch {
	case len(args) == 3 && slices.Contains(deviceKinds, args[0]):
		u := DeviceUsername(args[0], args[1], args[2])
		return u, RoleDevice, parseUsername(u, RoleDevice)
	case len(args) == 2 && (args[0] == string(RoleViewer) || args[0] == string(RoleHub)):
		u := RoleUsername(args[1])
		return u, Role(args[0]), parseUsername(u, Role(args[0]))
	case len(args) == 2 && args[0] == string(RoleFrigate):
		u := FrigateUsername(args[1])
		return u, RoleFrigate, parseUsername(u, RoleFrigate)
	case len(args) == 3 || len(args) == 2:
		return "", "", usageError(fmt.Sprintf("unknown kind %q (camera, qr, viewer, hub or frigate)", args[0]))
	}
	return "", "", usageError("expected camera|qr <site> <id>, viewer|hub <name> or frigate <name>")
}

// edit runs f on the file's users under the writers' lock and writes the
// result back.
func edit(path string, f func([]entry) ([]entry, error)) error {
	unlock, err := lockFile(path)
	if err != nil {
		return err
	}
	defer unlock()
	es, err := readEntries(path)
	if err != nil {
		return err
	}
	es, err = f(es)
	if err != nil {
		return err
	}
	return writeEntries(path, es)
}

func hashPassword() (password, hash string, err error) {
	password, err = newPassword()
	if err != nil {
		return "", "", err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), BcryptCost)
	if err != nil {
		return "", "", fmt.Errorf("hashing password: %w", err)
	}
	return password, string(h), nil
}

func cmdAdd(args []string, stdout io.Writer, path string) error {
	user, role, err := userFromArgs(args)
	if err != nil {
		return err
	}
	password, hash, err := hashPassword()
	if err != nil {
		return err
	}
	err = edit(path, func(es []entry) ([]entry, error) {
		if slices.ContainsFunc(es, func(e entry) bool { return e.Username == user }) {
			return nil, fmt.Errorf("%q already exists (use `villagehub device passwd %s` for a new password)", user, user)
		}
		return append(es, entry{Username: user, Role: role, Bcrypt: hash, Created: time.Now().UTC().Truncate(time.Second)}), nil
	})
	if err != nil {
		return err
	}
	printSecret(stdout, "Added "+string(role), user, password, path)
	return nil
}

func cmdPasswd(args []string, stdout io.Writer, path string) error {
	user, err := oneUser(args)
	if err != nil {
		return err
	}
	password, hash, err := hashPassword()
	if err != nil {
		return err
	}
	var role Role
	err = edit(path, func(es []entry) ([]entry, error) {
		i := slices.IndexFunc(es, func(e entry) bool { return e.Username == user })
		if i < 0 {
			return nil, fmt.Errorf("no user %q in %s", user, path)
		}
		es[i].Bcrypt, role = hash, es[i].Role
		return es, nil
	})
	if err != nil {
		return err
	}
	printSecret(stdout, "New password for "+string(role), user, password, path)
	return nil
}

// oneUser takes a username, or the arguments that make one.
func oneUser(args []string) (string, error) {
	if len(args) == 1 {
		return args[0], nil
	}
	u, _, err := userFromArgs(args)
	return u, err
}

func printSecret(w io.Writer, what, user, password, path string) {
	fmt.Fprintf(w, "%s %s\n  username: %s\n  password: %s\n", what, user, user, password)
	fmt.Fprintf(w, "The password is shown only now; %s keeps a bcrypt hash of it.\n", path)
	fmt.Fprintf(w, "A running hub picks this up within a few seconds.\n")
	fmt.Fprintf(w, "For an external Mosquitto, set the same password there (it asks for it):\n")
	fmt.Fprintf(w, "  mosquitto_passwd /etc/mosquitto/villagehub/passwd '%s'\n", user)
}

func cmdRemove(args []string, stdout io.Writer, path string) error {
	user, err := oneUser(args)
	if err != nil {
		return err
	}
	err = edit(path, func(es []entry) ([]entry, error) {
		i := slices.IndexFunc(es, func(e entry) bool { return e.Username == user })
		if i < 0 {
			return nil, fmt.Errorf("no user %q in %s", user, path)
		}
		return slices.Delete(es, i, i+1), nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Removed %s; a running hub disconnects it within a few seconds.\n", user)
	return nil
}

func cmdList(args []string, stdout io.Writer, path string) error {
	if len(args) != 0 {
		return usageError("list takes no arguments")
	}
	es, err := readEntries(path)
	if err != nil {
		return err
	}
	slices.SortFunc(es, func(a, b entry) int { return strings.Compare(a.Username, b.Username) })
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USERNAME\tROLE\tCREATED")
	for _, e := range es {
		created := "-"
		if !e.Created.IsZero() {
			created = e.Created.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", e.Username, e.Role, created)
	}
	return tw.Flush()
}
