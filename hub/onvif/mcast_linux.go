package onvif

import (
	"fmt"
	"net"
	"syscall"
)

// setMulticastInterface sends multicast out of the named interface.
func setMulticastInterface(conn *net.UDPConn, name string) error {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return fmt.Errorf("onvif: interface %q: %w", name, err)
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptIPMreqn(int(fd), syscall.IPPROTO_IP, syscall.IP_MULTICAST_IF, &syscall.IPMreqn{Ifindex: int32(ifi.Index)})
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("onvif: multicast on %q: %w", name, err)
	}
	return nil
}
