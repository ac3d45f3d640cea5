package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

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
