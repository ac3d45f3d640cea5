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
// Appends share fdatasync calls (group commit): a redirect waits for at
// most the sync in progress plus one more.
type journal struct {
	dir    string
	sync   bool
	segMax int64

	syncMu sync.Mutex // held by a sync and by a segment roll; taken before mu
	mu     sync.Mutex // guards f, seg, off
	f      *os.File
	seg    uint64
	off    int64

	dmu     sync.Mutex // guards durable and cursors
	durable jpos
	cursors map[string]*cursor
}

type jpos struct {
	Seg uint64
	Off int64
}

func (a jpos) less(b jpos) bool { return a.Seg < b.Seg || (a.Seg == b.Seg && a.Off < b.Off) }

type cursor struct {
	pos    jpos
	notify chan struct{}
}

const defaultSegMax = 8 << 20

func segName(id uint64) string { return fmt.Sprintf("%012d.seg", id) }

// openJournal opens (or creates) the journal in dir with the named
// consumers.
func openJournal(dir string, sync bool, consumers ...string) (*journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	j := &journal{dir: dir, sync: sync, segMax: defaultSegMax, cursors: map[string]*cursor{}}
	segs, err := j.segments()
	if err != nil {
		return nil, err
	}
	if len(segs) == 0 {
		segs = []uint64{1}
	}
	j.seg = segs[len(segs)-1]
	if j.f, err = os.OpenFile(filepath.Join(dir, segName(j.seg)), os.O_CREATE|os.O_RDWR, 0o600); err != nil {
		return nil, err
	}
	if j.off, err = trimPartial(j.f); err != nil {
		j.f.Close()
		return nil, err
	}
	j.durable = jpos{j.seg, j.off}
	for _, name := range consumers {
		c := &cursor{pos: jpos{segs[0], 0}, notify: make(chan struct{}, 1)}
		if b, err := os.ReadFile(filepath.Join(dir, "cursor-"+name)); err == nil {
			var p jpos
			if _, err := fmt.Sscanf(string(b), "%d %d", &p.Seg, &p.Off); err == nil && !j.durable.less(p) && p.Seg >= segs[0] {
				c.pos = p
			}
		}
		j.cursors[name] = c
	}
	return j, nil
}

// trimPartial drops a partly written last line (a kill during a write)
// and returns the file's size.
func trimPartial(f *os.File) (int64, error) {
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil || size == 0 {
		return size, err
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
	if err := f.Truncate(keep); err != nil {
		return 0, err
	}
	_, err = f.Seek(keep, io.SeekStart)
	return keep, err
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

// append writes one line (ending in '\n') and returns once it is durable.
func (j *journal) append(line []byte) error {
	j.mu.Lock()
	if j.off >= j.segMax {
		j.mu.Unlock()
		if err := j.roll(); err != nil {
			return err
		}
		j.mu.Lock()
	}
	if j.f == nil {
		j.mu.Unlock()
		return errors.New("journal closed")
	}
	n, err := j.f.Write(line)
	j.off += int64(n)
	p := jpos{j.seg, j.off}
	j.mu.Unlock()
	if err != nil {
		return err
	}
	if !j.sync {
		j.setDurable(p)
		return nil
	}
	return j.syncTo(p)
}

// syncTo makes everything up to p durable, sharing one fdatasync among
// the appenders waiting at that moment.
func (j *journal) syncTo(p jpos) error {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	j.dmu.Lock()
	done := !j.durable.less(p)
	j.dmu.Unlock()
	if done {
		return nil
	}
	j.mu.Lock()
	cur, f := jpos{j.seg, j.off}, j.f
	j.mu.Unlock()
	if f == nil {
		return errors.New("journal closed")
	}
	if err := fdatasync(f); err != nil {
		return err
	}
	j.setDurable(cur)
	return nil
}

func (j *journal) setDurable(p jpos) {
	j.dmu.Lock()
	if j.durable.less(p) {
		j.durable = p
	}
	for _, c := range j.cursors {
		select {
		case c.notify <- struct{}{}:
		default:
		}
	}
	j.dmu.Unlock()
}

// roll starts a new segment once the current one is full.
func (j *journal) roll() error {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.off < j.segMax || j.f == nil {
		return nil // another appender rolled first
	}
	if err := fdatasync(j.f); err != nil {
		return err
	}
	end := jpos{j.seg, j.off}
	nf, err := os.OpenFile(filepath.Join(j.dir, segName(j.seg+1)), os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	j.f.Close()
	j.f, j.seg, j.off = nf, j.seg+1, 0
	j.dmu.Lock()
	if j.durable.less(end) {
		j.durable = end
	}
	j.dmu.Unlock()
	return nil
}

// read returns up to maxBytes of complete, durable lines after the named
// consumer's cursor, and the position after them. No lines means nothing
// new.
func (j *journal) read(name string, maxBytes int) ([]byte, jpos, error) {
	j.dmu.Lock()
	c, d := j.cursors[name].pos, j.durable
	j.dmu.Unlock()
	for {
		if !c.less(d) {
			return nil, c, nil
		}
		end := d.Off
		if c.Seg < d.Seg {
			fi, err := os.Stat(filepath.Join(j.dir, segName(c.Seg)))
			if errors.Is(err, os.ErrNotExist) {
				c = jpos{c.Seg + 1, 0}
				continue
			}
			if err != nil {
				return nil, c, err
			}
			end = fi.Size()
		}
		if c.Off >= end {
			if c.Seg < d.Seg {
				c = jpos{c.Seg + 1, 0} // this segment is done
				j.advance(name, c)
				continue
			}
			return nil, c, nil
		}
		n := min(end-c.Off, int64(maxBytes))
		f, err := os.Open(filepath.Join(j.dir, segName(c.Seg)))
		if err != nil {
			return nil, c, err
		}
		buf := make([]byte, n)
		_, err = f.ReadAt(buf, c.Off)
		f.Close()
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, c, err
		}
		k := bytes.LastIndexByte(buf, '\n')
		if k < 0 {
			return nil, c, fmt.Errorf("journal %s: a line longer than %d bytes at %d", segName(c.Seg), maxBytes, c.Off)
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
	j.mu.Lock()
	active := j.seg
	j.mu.Unlock()
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

// lag is how many bytes the named consumer has not taken yet (segments
// counted as full).
func (j *journal) lag(name string) int64 {
	j.dmu.Lock()
	defer j.dmu.Unlock()
	c, d := j.cursors[name].pos, j.durable
	if c.Seg == d.Seg {
		return d.Off - c.Off
	}
	return int64(d.Seg-c.Seg-1)*j.segMax + (j.segMax - c.Off) + d.Off
}

func (j *journal) close() error {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := fdatasync(j.f)
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	j.f = nil
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
