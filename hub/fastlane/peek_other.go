//go:build !unix

package fastlane

import (
	"errors"
	"net"
	"time"
)

var errNoPeek = errors.New("fastlane: cannot peek on this system")

// peek is not available here: every connection goes to net/http.
func peek(net.Conn, []byte, time.Duration, func([]byte) bool) (int, error) { return 0, errNoPeek }
