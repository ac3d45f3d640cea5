//go:build !unix

package probe

import "os"

func maxRSSKiB(*os.ProcessState) int64 { return 0 }
