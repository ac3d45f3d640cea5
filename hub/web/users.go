package web

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"
)

// The users file holds dashboard users made by `villagehub user add` (and
// by the first-run page), beside those in http.auth.users: bcrypt hashes
// only, mode 0600, written atomically under an advisory lock, read again
// by the running hub when it changes. A fresh hub has no users; until one
// exists only the hub's own machine (loopback) may administer it.

// DefaultUsersFile is the users file in the data directory.
const DefaultUsersFile = "http-users.yaml"

type userEntry struct {
	Name         string    `yaml:"name"`
	Role         string    `yaml:"role"`
	PasswordHash string    `yaml:"password_hash"`
	Created      time.Time `yaml:"created"`
}

type usersFormat struct {
	Users []userEntry `yaml:"users"`
}

var userNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ReadUsers reads a users file; a missing file is no users.
func ReadUsers(path string) ([]User, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var f usersFormat
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := make([]User, 0, len(f.Users))
	for i, e := range f.Users {
		r, err := ParseRole(e.Role)
		if err != nil || r == RoleNone || !strings.HasPrefix(e.PasswordHash, "$2") || !userNameRE.MatchString(e.Name) {
			return nil, fmt.Errorf("%s: user %d (%q): needs a name, role viewer or admin, and a bcrypt password_hash", path, i+1, e.Name)
		}
		out = append(out, User{Name: e.Name, PasswordHash: e.PasswordHash, Role: r})
	}
	return out, nil
}

// changeUsers applies fn to the users file under its lock and writes it
// back atomically (0600).
func changeUsers(path string, fn func([]userEntry) ([]userEntry, error)) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	lf, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(int(lf.Fd()), syscall.LOCK_UN) //nolint:errcheck
	var f usersFormat
	if b, err := os.ReadFile(path); err == nil {
		if err := yaml.Unmarshal(b, &f); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if f.Users, err = fn(f.Users); err != nil {
		return err
	}
	var buf bytes.Buffer
	buf.WriteString("# villagehub dashboard users (villagehub user add|passwd|remove|list). Hashes only.\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(f); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".http-users-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(buf.Bytes()); err != nil {
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
	return os.Rename(tmp.Name(), path)
}

// AddUser adds (or, with replace, re-passwords) a user in the users file.
func AddUser(path, name string, role Role, password string, replace bool) error {
	if !userNameRE.MatchString(name) {
		return fmt.Errorf("user name %q: use 1-64 letters, digits, '.', '_' or '-'", name)
	}
	if role != RoleViewer && role != RoleAdmin && !(replace && role == RoleNone) {
		return errors.New("role must be viewer or admin")
	}
	hash, err := HashPassword(password)
	if err != nil {
		return err
	}
	return changeUsers(path, func(us []userEntry) ([]userEntry, error) {
		for i := range us {
			if us[i].Name == name {
				if !replace {
					return nil, fmt.Errorf("user %q exists (use passwd to change the password)", name)
				}
				us[i].PasswordHash = hash
				if role != RoleNone {
					us[i].Role = role.String()
				}
				return us, nil
			}
		}
		if replace {
			return nil, fmt.Errorf("no user %q", name)
		}
		return append(us, userEntry{Name: name, Role: role.String(), PasswordHash: hash, Created: time.Now().UTC().Truncate(time.Second)}), nil
	})
}

// errUsersExist: the first admin can be made only while there is no user.
var errUsersExist = errors.New("a user exists already: log in as an administrator")

// UserCommand is `villagehub user add|passwd|remove|list` on the users
// file at path. add and passwd read the password from stdin (one line),
// or make one and print it once with --generate.
func UserCommand(args []string, stdin io.Reader, stdout, stderr io.Writer, path string) int {
	usage := func() int {
		fmt.Fprintln(stderr, "usage: villagehub user [--config FILE] add NAME [--role admin|viewer] [--generate]\n       villagehub user passwd NAME [--generate] | remove NAME | list")
		return 2
	}
	if len(args) == 0 {
		return usage()
	}
	cmd, rest := args[0], args[1:]
	fail := func(err error) int { fmt.Fprintln(stderr, "villagehub user "+cmd+":", err); return 1 }
	switch cmd {
	case "list":
		us, err := ReadUsers(path)
		if err != nil {
			return fail(err)
		}
		for _, u := range us {
			fmt.Fprintf(stdout, "%s\t%s\n", u.Name, u.Role)
		}
		return 0
	case "remove":
		if len(rest) != 1 {
			return usage()
		}
		err := changeUsers(path, func(us []userEntry) ([]userEntry, error) {
			for i := range us {
				if us[i].Name == rest[0] {
					return append(us[:i], us[i+1:]...), nil
				}
			}
			return nil, fmt.Errorf("no user %q", rest[0])
		})
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "removed %s (its sessions end when the hub notices, within seconds)\n", rest[0])
		return 0
	case "add", "passwd":
	default:
		return usage()
	}
	if len(rest) < 1 || strings.HasPrefix(rest[0], "-") {
		return usage()
	}
	name := rest[0]
	fs := flag.NewFlagSet("villagehub user "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	roleS := fs.String("role", "", "admin or viewer (add: default admin)")
	gen := fs.Bool("generate", false, "make a random password and print it once")
	if err := fs.Parse(rest[1:]); err != nil {
		return 2
	}
	role := RoleNone
	if *roleS != "" {
		r, err := ParseRole(*roleS)
		if err != nil || r == RoleNone {
			return fail(errors.New("--role must be admin or viewer"))
		}
		role = r
	} else if cmd == "add" {
		role = RoleAdmin
	}
	var pw string
	if *gen {
		b := make([]byte, 15)
		_, _ = rand.Read(b)
		pw = strings.ToLower(base32.StdEncoding.EncodeToString(b))
	} else {
		if f, ok := stdin.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				fmt.Fprint(stderr, "password for "+name+" (at least 8 characters, shown as you type; or pipe it in): ")
			}
		}
		line, err := readLine(stdin)
		if err != nil {
			return fail(err)
		}
		pw = line
	}
	if err := AddUser(path, name, role, pw, cmd == "passwd"); err != nil {
		return fail(err)
	}
	if *gen {
		fmt.Fprintf(stdout, "user: %s\nrole: %s\npassword: %s\n(shown only now)\n", name, role, pw)
	} else {
		fmt.Fprintf(stdout, "%s %s (%s) in %s\n", map[string]string{"add": "added", "passwd": "new password for"}[cmd], name, role, path)
	}
	return 0
}

func readLine(r io.Reader) (string, error) {
	var b []byte
	one := make([]byte, 1)
	for len(b) < 4096 {
		n, err := r.Read(one)
		if n == 1 {
			if one[0] == '\n' {
				break
			}
			b = append(b, one[0])
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", err
		}
	}
	return strings.TrimRight(string(b), "\r"), nil
}

// usersFromFile keeps the users file's users, read again when the file
// changes (checked at most once a second, on use).
type usersFromFile struct {
	path    string
	checked time.Time
	stat    os.FileInfo
	users   []User
	err     error
}

// current is the file's users; callers hold access.mu.
func (u *usersFromFile) current(now time.Time) []User {
	if u.path == "" || now.Sub(u.checked) < time.Second {
		return u.users
	}
	u.checked = now
	st, err := os.Stat(u.path)
	if err != nil {
		st = nil
	}
	if (st == nil) == (u.stat == nil) && (st == nil || (os.SameFile(st, u.stat) && st.ModTime().Equal(u.stat.ModTime()) && st.Size() == u.stat.Size())) {
		return u.users
	}
	us, err := ReadUsers(u.path)
	u.stat, u.err = st, err
	if err == nil {
		u.users = us
	}
	return u.users
}

// NeedsFirstUser reports whether no dashboard user exists yet (the
// first-run page offers to make an administrator then).
func (s *Server) NeedsFirstUser() bool { return !s.access.hasUsers() }

// CreateFirstAdmin makes the first administrator in the users file; it
// fails once any user exists, so the first-run page cannot be used to add
// a second one.
func (s *Server) CreateFirstAdmin(name, password string) error {
	if s.access.cfg.UsersFile == "" {
		return errors.New("no users file configured")
	}
	if s.access.hasUsers() {
		return errUsersExist
	}
	hash, err := HashPassword(password)
	if err != nil {
		return err
	}
	if !userNameRE.MatchString(name) {
		return fmt.Errorf("user name %q: use 1-64 letters, digits, '.', '_' or '-'", name)
	}
	err = changeUsers(s.access.cfg.UsersFile, func(us []userEntry) ([]userEntry, error) {
		if len(us) > 0 {
			return nil, errUsersExist
		}
		return []userEntry{{Name: name, Role: RoleAdmin.String(), PasswordHash: hash, Created: time.Now().UTC().Truncate(time.Second)}}, nil
	})
	if err == nil {
		s.access.mu.Lock()
		s.access.file.checked = time.Time{}
		s.access.mu.Unlock()
	}
	return err
}
