//go:build !linux

package gateway

import (
	"errors"
	"os"
)

// canMap: elsewhere the journal writes its groups with write(2).
const canMap = false

func mapSegment(*os.File, int64) ([]byte, error) { return nil, errMapUnsupported }

func unmapSegment([]byte) error { return errors.ErrUnsupported }
