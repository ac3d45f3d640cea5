package probe

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sync"
)

// TuneWorkerRuntime sets a probe worker process's Go runtime; GOGC in the
// environment still wins (docs/performance.md).
//
// GC target 25 %: a worker holds under 2 MB between probes, but a sample
// reads megabytes of RTP in a burst, and at the runtime's default (100)
// its heap grew to twice the live size and stayed there: with 25 a
// village's worker is ~1.8 MB smaller (16.0 -> 14.2 MB PSS, 16 cameras)
// for a few ms more GC a minute. Handing freed memory back to the OS on a
// timer (debug.FreeOSMemory every 30 s) gained 0.3 MB more and was left
// out; every 5 s it gained ~1 MB but doubled the worker's CPU. One P
// (GOMAXPROCS=1) was tried twice for a sample's wake-ups and made no
// difference beyond the noise (docs/rtsp-probe.md, "Cost").
func TuneWorkerRuntime() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(25)
	}
}

// response is one line a worker writes back.
type response struct {
	ID uint64      `json:"id"`
	M  measurement `json:"m"`
}

// maxLine bounds one protocol line (a job is a few hundred bytes).
const maxLine = 1 << 20

// ServeWorker is the body of `villagehub probe-worker`: it reads jobs as
// JSON lines from r, probes them concurrently, and writes one JSON line per
// result to w (in completion order, each line in a single Write).
//
// It returns nil when r reaches EOF and every probe (and vdk's cleanup) has
// finished: that is how the supervisor retires a worker gracefully. When
// ctx ends, probes are cancelled and it returns ctx.Err() without waiting
// for r; a Read blocked on r is the caller's to unblock (closing r), which
// process exit does for the real worker.
//
// The worker process must not write anything else to w. vdk logs through
// the standard log package, which goes to stderr.
func ServeWorker(ctx context.Context, r io.Reader, w io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		probes     sync.WaitGroup // probes in flight
		background sync.WaitGroup // vdk Dials abandoned at their deadline
		wmu        sync.Mutex
		werr       error
	)
	bw := bufio.NewWriter(w)
	write := func(resp response) {
		line, err := json.Marshal(resp)
		if err != nil {
			return // measurement holds only plain fields; cannot happen
		}
		line = append(line, '\n')
		wmu.Lock()
		defer wmu.Unlock()
		if werr != nil {
			return
		}
		if _, err := bw.Write(line); err != nil {
			werr = err
		} else if err := bw.Flush(); err != nil {
			werr = err
		}
		if werr != nil {
			cancel() // the supervisor is gone; stop probing
		}
	}

	jobs := make(chan job)
	readErr := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 0, 4096), maxLine)
		for sc.Scan() {
			var j job
			if err := json.Unmarshal(sc.Bytes(), &j); err != nil {
				// Never echo the line: it carries credentials.
				readErr <- fmt.Errorf("probe worker: decoding a job: %w", errWithoutInput(err))
				return
			}
			select {
			case jobs <- j:
			case <-ctx.Done():
				readErr <- ctx.Err()
				return
			}
		}
		readErr <- sc.Err()
	}()

	wait := func() {
		probes.Wait()
		background.Wait()
	}
	for {
		select {
		case j := <-jobs:
			probes.Add(1)
			go func() {
				defer probes.Done()
				m := runProbe(ctx, j, &background)
				write(response{ID: j.ID, M: m})
			}()
		case err := <-readErr:
			wait()
			if err != nil {
				return err
			}
			wmu.Lock()
			defer wmu.Unlock()
			if werr != nil {
				return fmt.Errorf("probe worker: writing results: %w", werr)
			}
			return nil
		case <-ctx.Done():
			wait()
			wmu.Lock()
			defer wmu.Unlock()
			if werr != nil {
				return fmt.Errorf("probe worker: writing results: %w", werr)
			}
			return ctx.Err()
		}
	}
}

// errWithoutInput keeps the kind of a JSON error but none of the input.
func errWithoutInput(err error) error {
	switch err.(type) {
	case *json.SyntaxError:
		return fmt.Errorf("malformed JSON")
	case *json.UnmarshalTypeError:
		return fmt.Errorf("field of the wrong type")
	}
	return fmt.Errorf("invalid job")
}
