package main

import (
	"io"

	"villagehub/hub/gateway"
)

// gatewayCommand: villagehub gateway --config gateway.yaml (the
// province's QR gateway role; docs/gateway.md).
func gatewayCommand(args []string, stdout, stderr io.Writer) int {
	return gateway.Command(args, stdout, stderr)
}
