package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"villagehub/hub/auth"
	"villagehub/hub/config"
	"villagehub/hub/tlscert"
	"villagehub/hub/web"
)

// hashPassword reads a password from standard input (one line) and prints
// its bcrypt hash for http.auth.users[].password_hash.
func hashPassword(stdin io.Reader, stdout, stderr io.Writer) int {
	if f, ok := stdin.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprint(stderr, "password (shown as you type; or pipe it in): ")
		}
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && err != io.EOF {
		fmt.Fprintln(stderr, "villagehub hash-password:", err)
		return 1
	}
	h, err := web.HashPassword(strings.TrimRight(line, "\r\n"))
	if err != nil {
		fmt.Fprintln(stderr, "villagehub hash-password:", err)
		return 1
	}
	fmt.Fprintln(stdout, h)
	return 0
}

// newToken prints a new API token and the line to put in the config.
func newToken(stdout io.Writer) int {
	tok, sha := web.NewToken()
	fmt.Fprintf(stdout, "token (give it to the client, shown only now): %s\nfor the config, under http.auth.tokens:\n  - { name: CHANGE-ME, token_sha256: %s, role: viewer }\n", tok, sha)
	return 0
}

// configFlag takes a leading "--config FILE" (or -config) off args and
// loads that config (or the defaults and environment without one).
func configFlag(args []string) (*config.Config, []string, error) {
	return configFlagWith(args, config.Load)
}

func configFlagWith(args []string, load func(string, func(string) string) (*config.Config, error)) (*config.Config, []string, error) {
	path := ""
	if len(args) >= 2 && (args[0] == "--config" || args[0] == "-config") {
		path, args = args[1], args[2:]
	} else if len(args) >= 1 && strings.HasPrefix(args[0], "--config=") {
		path, args = strings.TrimPrefix(args[0], "--config="), args[1:]
	}
	cfg, err := load(path, os.Getenv)
	return cfg, args, err
}

// deviceCommand: villagehub device [--config FILE] add|passwd|remove|list ...
func deviceCommand(args []string, stdout, stderr io.Writer) int {
	cfg, rest, err := configFlag(args)
	if err != nil {
		fmt.Fprintln(stderr, "villagehub device:", err)
		return 1
	}
	return auth.DeviceCommand(rest, stdout, stderr, cfg.Broker.CredentialsPath(cfg.DataDir))
}

// userCommand: villagehub user [--config FILE] add|passwd|remove|list ...
// on the dashboard users file (http.auth.users_file).
func userCommand(args []string, stdout, stderr io.Writer) int {
	cfg, rest, err := configFlag(args)
	if err != nil {
		fmt.Fprintln(stderr, "villagehub user:", err)
		return 1
	}
	return web.UserCommand(rest, os.Stdin, stdout, stderr, cfg.UsersPath())
}

// certCommand: villagehub cert [--config FILE] [flags] NAME...
func certCommand(args []string, stdout, stderr io.Writer) int {
	// The config may name the certificate and key this is about to make.
	cfg, rest, err := configFlagWith(args, config.LoadMissingFilesOK)
	if err != nil {
		fmt.Fprintln(stderr, "villagehub cert:", err)
		return 1
	}
	return tlscert.CertCommand(rest, stdout, stderr, filepath.Join(cfg.DataDir, "tls"))
}
