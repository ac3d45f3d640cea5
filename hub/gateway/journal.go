package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// journal is the gateway's durable log of counted scans: one line per
// scan, appended before the phone gets its redirect, read by two
// consumers at their own pace, each with its own cursor: "influx" (into
// the InfluxDB writer's spool) and "village" (QoS 1 down to the village
// hub). A consumer advances its cursor only after its sink took the
// lines, so after a crash or kill -9 it sends the last lines again;
// both sinks are idempotent (InfluxDB points keyed by scan id, the
// village hub's ID check). Segments are deleted when every cursor has
// passed them.
//
// With journal_sync off (the default) on Linux the active segment is
// memory-mapped: an append copies its line into the mapping under a mutex
// and returns. The pages belong to the kernel's page cache from that
// moment, so the line survives a kill -9 of the gateway exactly as a
// write(2) would make it, without a system call per scan (that write was
// a tenth of the gateway's CPU at 40,000 scans/s). Segments are
// preallocated (fallocate) so that a full disk fails the segment's
// creation, not a copy into it (which would be a SIGBUS); a finished
// segment is truncated to its lines, and the unused tail of a segment
// left by a kill (zeros) is cut when the journal is opened.
//
// With journal_sync on, or where mapping is not available, appends are
// written in groups (leader/follower group commit): a request
// puts its line in a shared buffer; if no write is running it becomes the
// writer and writes everything buffered with one write(2) (and, with sync
// on, one fdatasync), while the requests arriving meanwhile fill the next
// group; each request returns once its group is written. Once write
// returns the line survives a kill -9 of the gateway; with sync on it
// also survives a power cut. No lock is held across a system call: on a
// busy machine one write that stalls (ext4 waits for a journal commit, a
// page under writeback) then delays one group, not every request in turn.
type journal struct {
	dir    string
	sync   bool
	async  bool // append returns before the write (see Config.JournalAsync)
	segMax int64

	// The writer's: only the request that is writing touches these (with
	// the segment mapped: whoever holds mu).
	f   *os.File
	seg uint64
	off int64
	m   []byte // the active segment's mapping (mapped journals, once mapped)

	mapped bool                                  // appends copy into the mapping (see above)
	mapFn  func(*os.File, int64) ([]byte, error) // mapSegment; tests replace it
	ready  chan spareSeg                         // the next segment being made ready; nil: none

	mu        sync.Mutex // guards the fields below
	cond      *sync.Cond
	buf       []byte
	spare     []byte
	open      uint64 // number of the group being filled
	written   uint64 // groups before this one are written (or failed)
	writing   bool
	errGroup  uint64
	err       error
	asyncErrs uint64 // async groups that failed (their appenders had returned)
	closed    bool

	dmu     sync.Mutex // guards active and cursors
	active  uint64
	cursors map[string]*cursor
	// size is how many bytes of the active segment hold lines. It is
	// stored by appends (under mu) without dmu: taking a second lock on
	// every append cost the request path a cache line passed between
	// CPUs. Readers load it under dmu, so that a roll, which changes
	// active and resets size under dmu, cannot come between the two.
	size  atomic.Int64
	notes []chan struct{} // the cursors' notify channels, fixed at open
}

type jpos struct {
	Seg uint64
	Off int64
}

type cursor struct {
	pos    jpos
	notify chan struct{}
	buf    []byte // read's buffer, reused: one goroutine reads a cursor
}

const defaultSegMax = 8 << 20

func segName(id uint64) string { return fmt.Sprintf("%012d.seg", id) }

// openJournal opens (or creates) the journal in dir with the named
// consumers.
func openJournal(dir string, doSync bool, consumers ...string) (*journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	j := &journal{dir: dir, sync: doSync, mapped: !doSync && canMap, mapFn: mapSegment, segMax: defaultSegMax, cursors: map[string]*cursor{}, open: 1, written: 1}
	j.cond = sync.NewCond(&j.mu)
	removeSpares(dir) // left by a kill: zeros
	segs, err := j.segments()
	if err != nil {
		return nil, err
	}
	if len(segs) == 0 {
		segs = []uint64{1}
	}
	j.seg = segs[len(segs)-1]
	if j.f, err = os.OpenFile(filepath.Join(dir, segName(j.seg)), os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600); err != nil {
		return nil, err
	}
	if j.off, err = trimPartial(j.f); err != nil {
		j.f.Close()
		return nil, err
	}
	j.active = j.seg
	j.size.Store(j.off)
	for _, name := range consumers {
		c := &cursor{pos: jpos{segs[0], 0}, notify: make(chan struct{}, 1)}
		if b, err := os.ReadFile(filepath.Join(dir, "cursor-"+name)); err == nil {
			var p jpos
			if _, err := fmt.Sscanf(string(b), "%d %d", &p.Seg, &p.Off); err == nil && p.Seg >= segs[0] &&
				(p.Seg < j.seg || (p.Seg == j.seg && p.Off <= j.off)) {
				c.pos = p
			}
		}
		j.cursors[name] = c
		j.notes = append(j.notes, c.notify)
	}
	return j, nil
}

// trimPartial drops a mapped segment's unused tail (zeros: no line holds
// a NUL byte) and a partly written last line (a kill during a write or a
// copy), and returns the file's size.
func trimPartial(f *os.File) (int64, error) {
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return 0, err
	}
	size := fi.Size()
	if end, err := firstNUL(f, size); err != nil {
		return 0, err
	} else if end < size {
		if err := f.Truncate(end); err != nil {
			return 0, err
		}
		if size = end; size == 0 {
			return 0, nil
		}
	}
	start := max(size-64<<10, 0)
	buf := make([]byte, size-start)
	if _, err := f.ReadAt(buf, start); err != nil {
		return 0, err
	}
	if buf[len(buf)-1] == '\n' {
		return size, nil
	}
	keep := start + int64(bytes.LastIndexByte(buf, '\n')+1)
	return keep, f.Truncate(keep)
}

// firstNUL is the offset of a file's first NUL byte, or size.
func firstNUL(f *os.File, size int64) (int64, error) {
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		if i := bytes.IndexByte(buf[:n], 0); i >= 0 {
			return off + int64(i), nil
		}
		off += int64(n)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		if n == 0 {
			break
		}
	}
	return size, nil
}

func (j *journal) segments() ([]uint64, error) {
	ents, err := os.ReadDir(j.dir)
	if err != nil {
		return nil, err
	}
	var out []uint64
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".seg"); ok {
			if id, err := strconv.ParseUint(n, 10, 64); err == nil {
				out = append(out, id)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

var errJournalClosed = errors.New("journal closed")

// errMapUnsupported: the segment's file cannot be mapped for writing; the
// journal writes its groups instead (see append).
var errMapUnsupported = errors.New("shared writable mappings not supported here")

// append writes one line (ending in '\n'); it returns once the line is
// in the kernel (with sync on: on disk).
func (j *journal) append(line []byte) error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return errJournalClosed
	}
	if j.mapped {
		if err := j.copyIn(line); !errors.Is(err, errMapUnsupported) {
			j.mu.Unlock()
			return err
		}
		j.mapped = false // this file system cannot map files: write instead
	}
	j.buf = append(j.buf, line...)
	mine := j.open
	if j.async && len(j.buf) < maxAsyncBuffer {
		if !j.writing {
			j.writing = true
			go j.drain()
		}
		j.mu.Unlock()
		return nil
	}
	for j.written <= mine {
		if j.writing {
			j.cond.Wait()
			continue
		}
		// Become the writer of everything buffered so far.
		j.writing = true
		j.flushGroup()
		j.writing = false
	}
	var err error
	if j.errGroup == mine {
		err = j.err
	}
	j.mu.Unlock()
	return err
}

// copyIn appends a line to the mapped segment (j.mu held), mapping a
// segment first when there is none or the active one is full.
func (j *journal) copyIn(line []byte) error {
	need := int64(len(line))
	if j.m == nil || j.off+need > int64(len(j.m)) {
		if j.m != nil || j.off >= j.segMax {
			if err := j.roll(); err != nil {
				return err
			}
		}
		if j.m != nil && need > int64(len(j.m)) {
			// A line longer than the spare segment: map a longer one.
			if err := j.unmap(); err != nil {
				return err
			}
		}
		if j.m == nil {
			m, err := j.mapFn(j.f, max(j.segMax, j.off+need))
			if err != nil {
				// The file may have been extended: cut it back to its
				// lines, so that writes (after a fallback) follow them
				// directly.
				if terr := j.f.Truncate(j.off); terr != nil {
					return terr
				}
				return fmt.Errorf("mapping journal segment %s: %w", segName(j.seg), err)
			}
			j.m = m
		}
		j.prepareSpare()
	}
	j.off += int64(copy(j.m[j.off:], line))
	j.published()
	return nil
}

// spareFile names the next segment while it is made ready: never a
// segment's name, so readers and open never take it for one, and open
// deletes every one it finds. Each spare gets a name of its own: a
// journal reopened on the same directory (after a kill, or in tests while
// the old one's spare is still being written) must never truncate a file
// another journal has mapped, which would be a SIGBUS there.
func spareFile(dir string) string {
	return filepath.Join(dir, fmt.Sprintf("spare-%d-%d.tmp", os.Getpid(), spareSeq.Add(1)))
}

var spareSeq atomic.Uint64

const spareGlob = "spare-*.tmp"

func removeSpares(dir string) {
	old, _ := filepath.Glob(filepath.Join(dir, spareGlob))
	for _, f := range old {
		os.Remove(f)
	}
}

// spareSeg is a segment made ready off the request path: its file full
// of written zeros, mapped, and every page touched once. A copy into a
// fresh page of a preallocated (fallocated) segment faults, and the fault
// (measured here: about 14 µs, with ext4 converting the page's blocks) was
// taken under the append lock, once every 27 scans, while the other CPU's
// scans queued behind it; into a page of the spare nothing faults.
type spareSeg struct {
	f   *os.File
	m   []byte
	err error
}

// prepareSpare starts making the next segment ready unless one is on its
// way (j.mu held).
func (j *journal) prepareSpare() {
	if j.ready != nil {
		return
	}
	ch := make(chan spareSeg, 1)
	j.ready = ch
	size, mapFn := j.segMax, j.mapFn
	path := spareFile(j.dir)
	go func() { ch <- makeSpare(path, size, mapFn) }()
}

func makeSpare(path string, size int64, mapFn func(*os.File, int64) ([]byte, error)) spareSeg {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return spareSeg{err: err}
	}
	zeros := make([]byte, min(size, 1<<20))
	for left := size; left > 0 && err == nil; left -= int64(len(zeros)) {
		_, err = f.Write(zeros[:min(left, int64(len(zeros)))])
	}
	var m []byte
	if err == nil {
		m, err = mapFn(f, size)
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		return spareSeg{err: err}
	}
	for i := 0; i < len(m); i += os.Getpagesize() {
		m[i] = 0 // the write fault, here rather than under the lock
	}
	return spareSeg{f: f, m: m}
}

// takeSpare returns the spare segment if it is ready (j.mu held).
func (j *journal) takeSpare() *spareSeg {
	if j.ready == nil || !j.mapped {
		return nil
	}
	select {
	case sp := <-j.ready:
		j.ready = nil
		if sp.err != nil {
			return nil // the next mapping starts another
		}
		return &sp
	default:
		return nil // not ready yet: roll the slow way, use it next time
	}
}

// dropSpare waits for a spare being made and deletes it (j.mu held).
func (j *journal) dropSpare() {
	if j.ready == nil {
		return
	}
	sp := <-j.ready
	j.ready = nil
	if sp.err == nil {
		sp.discard()
	}
}

// discard unmaps, closes and deletes a spare that will not be used.
func (sp *spareSeg) discard() {
	unmapSegment(sp.m)
	sp.f.Close()
	os.Remove(sp.f.Name())
}

// unmap ends the active segment's mapping and cuts the file to its lines.
func (j *journal) unmap() error {
	if j.m == nil {
		return nil
	}
	err := unmapSegment(j.m)
	j.m = nil
	if terr := j.f.Truncate(j.off); err == nil {
		err = terr
	}
	return err
}

// published records that the active segment's lines now end at j.off
// and wakes the consumers.
func (j *journal) published() {
	j.size.Store(j.off)
	for _, n := range j.notes {
		select {
		case n <- struct{}{}:
		default:
		}
	}
}

// flushGroup writes everything buffered as one group. Called with j.mu
// held, it releases the lock while writing (appends go on buffering) and
// wakes the waiters once the group's outcome is recorded.
func (j *journal) flushGroup() error {
	data, group := j.buf, j.open
	j.buf, j.spare = j.spare[:0], nil
	j.open++
	j.mu.Unlock()
	err := j.writeGroup(data)
	j.mu.Lock()
	j.spare = data[:0]
	if err != nil {
		j.errGroup, j.err = group, err
	}
	j.written = group + 1
	j.cond.Broadcast()
	return err
}

// maxAsyncBuffer bounds what async appends may leave unwritten: past it
// an append waits for the disk like a synchronous one.
const maxAsyncBuffer = 4 << 20

// drain writes groups until the buffer is empty (async appends).
func (j *journal) drain() {
	j.mu.Lock()
	defer j.mu.Unlock()
	for len(j.buf) > 0 {
		if j.flushGroup() != nil {
			j.asyncErrs++
		}
	}
	j.writing = false
	j.cond.Broadcast()
}

// writeGroup writes one group, rolling to a new segment first when the
// active one is full. Only the current writer calls it.
func (j *journal) writeGroup(data []byte) error {
	if j.off >= j.segMax {
		if err := j.roll(); err != nil {
			return err
		}
	}
	n, err := j.f.Write(data)
	j.off += int64(n)
	if err != nil {
		// A short write leaves part of a line: cut back to the last whole
		// line so later groups stay readable.
		if off, terr := trimPartial(j.f); terr == nil {
			j.off = off
		}
		return err
	}
	if j.sync {
		if err := fdatasync(j.f); err != nil {
			return err
		}
	}
	j.published()
	return nil
}

// roll starts a new segment (the writer, between groups). A finished
// segment holds only its lines (a mapped one is cut to them) before
// readers may see that it is no longer the active one. No fdatasync here:
// with journal_sync every group was synced already, and without it the
// kernel writes the segment out like any other page, whereas an
// fdatasync of a whole 8 MiB segment under the lock would hold every
// redirect until the disk answers.
func (j *journal) roll() error {
	if err := j.unmap(); err != nil {
		return err
	}
	next := filepath.Join(j.dir, segName(j.seg+1))
	var nf *os.File
	var nm []byte
	if sp := j.takeSpare(); sp != nil {
		if err := os.Rename(sp.f.Name(), next); err == nil {
			nf, nm = sp.f, sp.m
		} else {
			sp.discard()
		}
	}
	if nf == nil {
		var err error
		if nf, err = os.OpenFile(next, os.O_CREATE|os.O_RDWR|os.O_APPEND|os.O_TRUNC, 0o600); err != nil {
			return err
		}
	}
	j.f.Close()
	j.f, j.seg, j.off, j.m = nf, j.seg+1, 0, nm
	j.dmu.Lock()
	j.active = j.seg
	j.size.Store(0)
	j.dmu.Unlock()
	return nil
}

// read returns up to maxBytes of complete lines after the named
// consumer's cursor, and the position after them. No lines means nothing
// new. The lines are valid until the consumer's next read: its buffer is
// reused, as a fresh megabyte per batch cost page faults and collections.
func (j *journal) read(name string, maxBytes int) ([]byte, jpos, error) {
	j.dmu.Lock()
	cur := j.cursors[name]
	c := cur.pos
	j.dmu.Unlock()
	for {
		// The active segment ends where its lines end (a mapped one is
		// longer); a finished one at its size.
		j.dmu.Lock()
		active, size := j.active, j.size.Load()
		j.dmu.Unlock()
		fi, err := os.Stat(filepath.Join(j.dir, segName(c.Seg)))
		if errors.Is(err, os.ErrNotExist) && c.Seg < active {
			c = jpos{c.Seg + 1, 0}
			continue
		}
		if err != nil {
			return nil, c, err
		}
		end := fi.Size()
		if c.Seg == active {
			end = min(end, size)
		}
		if c.Off >= end {
			if c.Seg < active {
				// A segment is finished once it is not the active one: a
				// roll waits for the writes in flight.
				c = jpos{c.Seg + 1, 0}
				if err := j.advance(name, c); err != nil {
					return nil, c, err
				}
				continue
			}
			return nil, c, nil
		}
		n := min(end-c.Off, int64(maxBytes))
		f, err := os.Open(filepath.Join(j.dir, segName(c.Seg)))
		if err != nil {
			return nil, c, err
		}
		if int64(cap(cur.buf)) < n {
			cur.buf = make([]byte, n)
		}
		buf := cur.buf[:n]
		n2, err := f.ReadAt(buf, c.Off)
		f.Close()
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, c, err
		}
		buf = buf[:n2]
		k := bytes.LastIndexByte(buf, '\n')
		if k < 0 {
			if int64(n2) >= int64(maxBytes) {
				return nil, c, fmt.Errorf("journal %s: a line longer than %d bytes at %d", segName(c.Seg), maxBytes, c.Off)
			}
			return nil, c, nil // a line being written
		}
		return buf[:k+1], jpos{c.Seg, c.Off + int64(k+1)}, nil
	}
}

// advance moves a consumer's cursor (after its sink took the lines),
// persists it, and deletes segments every consumer has passed.
func (j *journal) advance(name string, p jpos) error {
	j.dmu.Lock()
	j.cursors[name].pos = p
	minSeg := p.Seg
	for _, c := range j.cursors {
		minSeg = min(minSeg, c.pos.Seg)
	}
	j.dmu.Unlock()
	if err := writeFileAtomic(filepath.Join(j.dir, "cursor-"+name), fmt.Appendf(nil, "%d %d\n", p.Seg, p.Off), j.sync); err != nil {
		return err
	}
	segs, err := j.segments()
	if err != nil {
		return err
	}
	j.dmu.Lock()
	active := j.active
	j.dmu.Unlock()
	for _, s := range segs {
		if s < minSeg && s < active {
			os.Remove(filepath.Join(j.dir, segName(s)))
		}
	}
	return nil
}

// notify is the channel that gets a value when lines may be waiting for
// the named consumer.
func (j *journal) notify(name string) <-chan struct{} { return j.cursors[name].notify }

// lag is how many bytes the named consumer has not taken yet (earlier
// segments counted as full).
func (j *journal) lag(name string) int64 {
	j.dmu.Lock()
	c, active, end := j.cursors[name].pos, j.active, j.size.Load()
	j.dmu.Unlock()
	if c.Seg == active {
		return max(end-c.Off, 0)
	}
	return int64(active-c.Seg-1)*j.segMax + max(j.segMax-c.Off, 0) + end
}

func (j *journal) close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	j.closed = true
	for j.writing || len(j.buf) > 0 && j.written < j.open {
		j.cond.Wait() // the writer finishes; waiting appenders write the rest
	}
	j.dropSpare()
	err := j.unmap()
	if serr := fdatasync(j.f); err == nil {
		err = serr
	}
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeFileAtomic replaces path with data: a temporary file, fsynced
// (when sync), renamed over it.
func writeFileAtomic(path string, data []byte, sync bool) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if err == nil && sync {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o600)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if sync {
		if d, err := os.Open(filepath.Dir(path)); err == nil {
			d.Sync()
			d.Close()
		}
	}
	return nil
}
