//go:build !linux

package onvif

import (
	"errors"
	"net"
)

func setMulticastInterface(*net.UDPConn, string) error {
	return errors.New("onvif: choosing the probe interface is supported on Linux only")
}
