package probe

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// workerProc is one probe-worker process as the supervisor sees it. All
// fields except those set at start are owned by the supervisor's loop.
type workerProc struct {
	id   int
	solo bool // runs exactly one job (isolation and culprit hunting)
	cmd  *exec.Cmd
	in   *os.File // its stdin; we write jobs here

	pending  map[uint64]*pendingJob
	sent     int  // jobs sent over its lifetime
	draining bool // no new jobs; retire when pending is empty
	closing  bool // stdin closed: an exit now is expected if nothing is pending
	killed   string

	mu        sync.Mutex
	panicText string // first "panic:"/"fatal error:" line from its stderr
}

// workerEvent is what a worker's goroutines tell the supervisor's loop.
type workerEvent struct {
	w      *workerProc
	resp   *response // a result line
	exited bool      // the process has exited and its pipes are drained
	err    error     // exit status when exited
	cpu    time.Duration
	maxRSS int64 // KiB
}

// start launches the process and the goroutines that read its stdout and
// stderr; they end when the process exits, after sending `exited`.
func (s *Supervisor) startWorker(solo bool) (*workerProc, error) {
	s.nextWorkerID++
	w := &workerProc{id: s.nextWorkerID, solo: solo, pending: make(map[uint64]*pendingJob)}
	argv := s.cfg.WorkerCommand
	cmd := exec.Command(argv[0], argv[1:]...)
	// Our own pipe for stdin, so writes can carry a deadline and a stuck
	// worker cannot block the supervisor.
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("creating worker stdin pipe: %w", err)
	}
	cmd.Stdin = inR
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, fmt.Errorf("creating worker stdout pipe: %w", err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, fmt.Errorf("creating worker stderr pipe: %w", err)
	}
	if err := cmd.Start(); err != nil {
		inR.Close()
		inW.Close()
		return nil, fmt.Errorf("starting probe worker %q: %w", argv[0], err)
	}
	inR.Close() // the child has its copy
	w.cmd, w.in = cmd, inW
	s.metrics.workerStarts.Add(1)
	s.metrics.workers.Add(1)

	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		var pipes sync.WaitGroup
		pipes.Add(1)
		go func() {
			defer pipes.Done()
			sc := bufio.NewScanner(stderr)
			sc.Buffer(make([]byte, 0, 4096), maxLine)
			for sc.Scan() {
				line := s.scrub(sc.Text())
				if strings.HasPrefix(line, "panic:") || strings.HasPrefix(line, "fatal error:") {
					w.mu.Lock()
					if w.panicText == "" {
						w.panicText = line
					}
					w.mu.Unlock()
				}
				s.log.Debug("probe worker stderr", "worker", w.id, "line", line)
			}
		}()
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 0, 4096), maxLine)
		for sc.Scan() {
			var resp response
			if err := json.Unmarshal(sc.Bytes(), &resp); err != nil || resp.ID == 0 {
				// Something in the worker printed to stdout; skip it.
				s.log.Debug("probe worker wrote a non-protocol line", "worker", w.id, "line", s.scrub(sc.Text()))
				continue
			}
			s.events <- workerEvent{w: w, resp: &resp}
		}
		pipes.Wait()
		err := cmd.Wait()
		ev := workerEvent{w: w, exited: true, err: err}
		if ps := cmd.ProcessState; ps != nil {
			ev.cpu = ps.UserTime() + ps.SystemTime()
			ev.maxRSS = maxRSSKiB(ps)
		}
		s.events <- ev
	}()
	return w, nil
}

// send writes one job to the worker's stdin.
func (w *workerProc) send(j job) error {
	line, err := json.Marshal(j)
	if err != nil {
		return fmt.Errorf("encoding job: %w", err)
	}
	line = append(line, '\n')
	// A healthy worker drains its stdin at once; one that does not within
	// this long is stuck.
	_ = w.in.SetWriteDeadline(time.Now().Add(2 * time.Second))
	if _, err := w.in.Write(line); err != nil {
		return fmt.Errorf("writing job to worker %d: %w", w.id, err)
	}
	return nil
}

// retire closes stdin: the worker finishes what it holds and exits.
func (w *workerProc) retire() {
	if !w.closing {
		w.closing = true
		_ = w.in.Close()
	}
}

func (w *workerProc) kill(why string) {
	if w.killed == "" {
		w.killed = why
	}
	w.retire()
	_ = w.cmd.Process.Kill()
}

func (w *workerProc) panicLine() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.panicText
}
