package influx

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// The spool is a log of segment files, <dir>/<20-digit id>.seg, each a run
// of records:
//
//	length  uint32  payload bytes
//	points  uint32  lines in the payload
//	crc     uint32  CRC-32C of points and payload
//	payload         line protocol, one point per line, each ending in '\n'
//
// A record is one Append (or one BatchSize slice of it). Appenders write
// their record with one write(2) and then share one fdatasync (group
// commit); a record whose CRC does not match at open is a torn tail from a
// crash and is cut off, since its Append never returned.
//
// <dir>/checkpoint holds the position of the first record InfluxDB has not
// confirmed. It is rewritten in place after each confirmed batch but not
// fsynced: after a power loss it may point to an earlier record, and
// re-sending confirmed points is harmless because each point's timestamp is
// fixed in the spool, so InfluxDB overwrites a point with itself.
// Fully confirmed segments are deleted.

const (
	recHeaderLen   = 12
	segSuffix      = ".seg"
	checkpointName = "checkpoint"
	checkpointLen  = 20
	// Segment size bounds: small spools still get ~16 segments so space
	// comes back in steps; large ones keep file counts low.
	minSegBytes = 64 << 10
	maxSegBytes = 64 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrSpoolFull is returned by Append when the spool's files reached
// SpoolMaxBytes (or the disk is full). Nothing was spooled; the caller should
// stop acknowledging input and retry later.
var ErrSpoolFull = errors.New("influx spool full")

// pos is a position in the spool: a byte offset in a segment.
type pos struct {
	seg uint64
	off int64
}

func (a pos) less(b pos) bool { return a.seg < b.seg || (a.seg == b.seg && a.off < b.off) }

type segment struct {
	id   uint64
	size int64
}

type spool struct {
	dir      string
	segMax   int64
	maxBytes int64
	log      *slog.Logger

	// mu guards the write side and the segment list.
	mu            sync.Mutex
	segs          []segment // oldest first; the last one is the active segment
	active        *os.File
	written       pos
	writtenPoints int64 // points written since open, counting recovered ones
	broken        error // set after an fsync or write failure: nothing can be trusted
	confirmed     pos

	// syncBusy is a token held by whoever fsyncs or rolls the active
	// segment, so that a roll never closes a file under an fsync.
	syncMu   sync.Mutex
	syncCond *sync.Cond
	syncBusy bool
	synced   pos
	syncErr  error

	syncedPoints    atomic.Int64 // points durable on disk since open
	confirmedPoints atomic.Int64 // points confirmed by InfluxDB since open
	diskBytes       atomic.Int64 // bytes of all segment files

	// notify is signalled after durable data was added.
	notify chan struct{}

	// Reader state, used only by the forwarding goroutine.
	rd         *segReader
	rdBuf      *bufio.Reader
	read       pos
	readPoints int64
	ckpt       *os.File
}

// openSpool opens (or creates) the spool in dir, cutting off a torn tail and
// calling visit for every unconfirmed line, oldest first.
func openSpool(dir string, maxBytes int64, log *slog.Logger, visit func(line []byte)) (*spool, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("creating spool directory: %w", err)
	}
	s := &spool{
		dir:      dir,
		segMax:   min(max(maxBytes/16, minSegBytes), maxSegBytes),
		maxBytes: maxBytes,
		log:      log,
		notify:   make(chan struct{}, 1),
	}
	s.syncCond = sync.NewCond(&s.syncMu)
	var err error
	s.ckpt, err = os.OpenFile(filepath.Join(dir, checkpointName), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("opening spool checkpoint: %w", err)
	}
	if err := s.recover(visit); err != nil {
		s.ckpt.Close()
		return nil, err
	}
	return s, nil
}

func (s *spool) segPath(id uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%020d%s", id, segSuffix))
}

func (s *spool) recover(visit func([]byte)) error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("listing spool directory: %w", err)
	}
	var ids []uint64
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), segSuffix)
		if !ok {
			continue
		}
		id, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			continue
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)

	ck, ckOK := s.readCheckpoint()
	if len(ids) == 0 {
		id := uint64(1)
		if ckOK {
			id = ck.seg + 1
		}
		f, err := s.createSegment(id)
		if err != nil {
			return err
		}
		s.segs = []segment{{id: id}}
		s.active = f
		s.written = pos{seg: id}
		s.confirmed = s.written
		s.synced = s.written
		s.read = s.written
		return nil
	}
	// A checkpoint naming a deleted segment (or none at all) means every
	// remaining segment may hold unconfirmed records.
	switch {
	case !ckOK || ck.seg < ids[0]:
		ck = pos{seg: ids[0]}
	case ck.seg > ids[len(ids)-1]:
		s.log.Warn("influx spool checkpoint is past the last segment; replaying all segments", "dir", s.dir)
		ck = pos{seg: ids[0]}
	case !slices.Contains(ids, ck.seg):
		// Segment ids have no gaps unless someone deleted files by hand:
		// resume at the next one that exists.
		i, _ := slices.BinarySearch(ids, ck.seg)
		ck = pos{seg: ids[i]}
	}
	for _, id := range ids {
		if id >= ck.seg {
			break
		}
		if err := os.Remove(s.segPath(id)); err != nil {
			return fmt.Errorf("removing confirmed spool segment: %w", err)
		}
		ids = ids[1:]
	}
	for i, id := range ids {
		start := int64(0)
		if id == ck.seg {
			start = ck.off
		}
		size, points, err := s.scanSegment(id, start, visit)
		if err != nil {
			return err
		}
		if id == ck.seg && ck.off > size {
			ck.off = size
		}
		s.segs = append(s.segs, segment{id: id, size: size})
		s.diskBytes.Add(size)
		s.writtenPoints += points
		if i == len(ids)-1 {
			f, err := os.OpenFile(s.segPath(id), os.O_WRONLY|os.O_APPEND, 0o640)
			if err != nil {
				return fmt.Errorf("opening spool segment: %w", err)
			}
			s.active = f
			s.written = pos{seg: id, off: size}
		}
	}
	s.syncedPoints.Store(s.writtenPoints)
	s.confirmed = ck
	s.synced = s.written
	s.read = ck
	return nil
}

// scanSegment checks the records of one segment from start on, fsyncs it
// (a killed process leaves written but unsynced data in the page cache) and
// cuts off anything after the last whole record.
func (s *spool) scanSegment(id uint64, start int64, visit func([]byte)) (size, points int64, err error) {
	f, err := os.OpenFile(s.segPath(id), os.O_RDWR, 0o640)
	if err != nil {
		return 0, 0, fmt.Errorf("opening spool segment: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, 0, fmt.Errorf("reading spool segment size: %w", err)
	}
	if start > st.Size() {
		start = st.Size()
	}
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return 0, 0, fmt.Errorf("seeking in spool segment: %w", err)
	}
	r := bufio.NewReaderSize(f, 1<<20)
	off := start
	var payload []byte
	for off < st.Size() {
		n, p, rerr := readRecord(r, payload[:0], st.Size()-off)
		if rerr != nil {
			s.log.Warn("influx spool: cutting off an incomplete record (a crash during an Append that never returned)",
				"segment", filepath.Base(s.segPath(id)), "offset", off, "bytes", st.Size()-off, "reason", rerr)
			if err := f.Truncate(off); err != nil {
				return 0, 0, fmt.Errorf("truncating torn spool segment: %w", err)
			}
			break
		}
		payload = p
		if visit != nil {
			forEachLine(p, visit)
		}
		points += int64(n)
		off += recHeaderLen + int64(len(p))
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return 0, 0, fmt.Errorf("syncing spool segment: %w", err)
	}
	return off, points, nil
}

// readRecord reads one record of at most limit bytes into dst.
func readRecord(r *bufio.Reader, dst []byte, limit int64) (points int, payload []byte, err error) {
	if limit < recHeaderLen {
		return 0, dst, io.ErrUnexpectedEOF
	}
	var h [recHeaderLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, dst, err
	}
	n := int64(binary.LittleEndian.Uint32(h[0:]))
	points = int(binary.LittleEndian.Uint32(h[4:]))
	sum := binary.LittleEndian.Uint32(h[8:])
	if n > limit-recHeaderLen || points == 0 {
		return 0, dst, errors.New("bad record length")
	}
	start := len(dst)
	dst = slices.Grow(dst, int(n))[:start+int(n)]
	if _, err := io.ReadFull(r, dst[start:]); err != nil {
		return 0, dst[:start], err
	}
	crc := crc32.Update(0, castagnoli, h[4:8])
	crc = crc32.Update(crc, castagnoli, dst[start:])
	if crc != sum {
		return 0, dst[:start], errors.New("record checksum mismatch")
	}
	return points, dst, nil
}

// sealRecord fills in the header reserved at rec[0:recHeaderLen].
func sealRecord(rec []byte, points int) {
	binary.LittleEndian.PutUint32(rec[0:], uint32(len(rec)-recHeaderLen))
	binary.LittleEndian.PutUint32(rec[4:], uint32(points))
	crc := crc32.Update(0, castagnoli, rec[4:8])
	crc = crc32.Update(crc, castagnoli, rec[recHeaderLen:])
	binary.LittleEndian.PutUint32(rec[8:], crc)
}

func forEachLine(p []byte, fn func([]byte)) {
	for len(p) > 0 {
		i := 0
		for i < len(p) && p[i] != '\n' {
			i++
		}
		fn(p[:i])
		if i < len(p) {
			i++
		}
		p = p[i:]
	}
}

func (s *spool) createSegment(id uint64) (*os.File, error) {
	f, err := os.OpenFile(s.segPath(id), os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return nil, fmt.Errorf("creating spool segment: %w", err)
	}
	// The new name must survive a power loss as well as its contents.
	if d, err := os.Open(s.dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("syncing spool directory: %w", err)
		}
	}
	return f, nil
}

// full reports whether no record fits any more, so that Append can refuse
// before encoding anything.
func (s *spool) full() bool { return s.diskBytes.Load() >= s.maxBytes }

// write appends one sealed record and returns the position after it. The
// record is not durable until syncTo(that position) returned nil.
func (s *spool) write(rec []byte, points int) (pos, error) {
	s.mu.Lock()
	if s.broken != nil {
		s.mu.Unlock()
		return pos{}, s.broken
	}
	if int64(len(rec)) > s.maxBytes-s.segMax {
		// Waiting would not help: this could never fit.
		s.mu.Unlock()
		return pos{}, fmt.Errorf("influx: one Append of %d bytes can never fit a spool of %d bytes (influx.spool_max_bytes); append fewer points at a time", len(rec), s.maxBytes)
	}
	if s.diskBytes.Load()+int64(len(rec)) > s.maxBytes {
		s.mu.Unlock()
		return pos{}, ErrSpoolFull
	}
	active := &s.segs[len(s.segs)-1]
	if active.size > 0 && active.size+int64(len(rec)) > s.segMax {
		s.mu.Unlock()
		if err := s.roll(int64(len(rec))); err != nil {
			return pos{}, err
		}
		s.mu.Lock()
		if s.broken != nil {
			s.mu.Unlock()
			return pos{}, s.broken
		}
		active = &s.segs[len(s.segs)-1]
	}
	if _, err := s.active.Write(rec); err != nil {
		// Take the partial record back so the file stays a run of whole
		// records; if even that fails the spool can no longer be trusted.
		if terr := s.active.Truncate(active.size); terr != nil {
			s.broken = fmt.Errorf("influx spool unusable after a failed write: %w", terr)
		}
		s.mu.Unlock()
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			return pos{}, fmt.Errorf("%w: %v", ErrSpoolFull, err)
		}
		return pos{}, fmt.Errorf("writing influx spool: %w", err)
	}
	active.size += int64(len(rec))
	s.diskBytes.Add(int64(len(rec)))
	s.written = pos{seg: active.id, off: active.size}
	s.writtenPoints += int64(points)
	p := s.written
	s.mu.Unlock()
	return p, nil
}

func (s *spool) acquireSyncToken() {
	s.syncMu.Lock()
	for s.syncBusy {
		s.syncCond.Wait()
	}
	s.syncBusy = true
	s.syncMu.Unlock()
}

// releaseSyncToken hands the token back, recording what became durable.
func (s *spool) releaseSyncToken(durable pos, points int64, err error) {
	s.syncMu.Lock()
	s.syncBusy = false
	advanced := false
	if err != nil {
		if s.syncErr == nil {
			s.syncErr = err
		}
	} else if s.synced.less(durable) {
		s.synced = durable
		s.syncedPoints.Store(points)
		advanced = true
	}
	s.syncCond.Broadcast()
	s.syncMu.Unlock()
	if advanced {
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}
}

// roll seals the active segment (fsync) and starts a new one, unless the
// active segment meanwhile has room for recLen more bytes.
func (s *spool) roll(recLen int64) error {
	s.acquireSyncToken()
	s.mu.Lock()
	active := s.segs[len(s.segs)-1]
	if active.size == 0 || active.size+recLen <= s.segMax {
		s.mu.Unlock()
		s.releaseSyncToken(pos{}, 0, nil)
		return nil
	}
	end, points := s.written, s.writtenPoints
	var err error
	if err = unix.Fdatasync(int(s.active.Fd())); err == nil {
		var f *os.File
		if f, err = s.createSegment(active.id + 1); err == nil {
			s.active.Close()
			s.active = f
			s.segs = append(s.segs, segment{id: active.id + 1})
			s.written = pos{seg: active.id + 1}
		}
	}
	if err != nil {
		err = fmt.Errorf("rolling influx spool segment: %w", err)
		s.broken = err
	}
	s.mu.Unlock()
	s.releaseSyncToken(end, points, err)
	return err
}

// syncTo returns once everything up to p is on disk. Concurrent callers
// share one fdatasync: whoever finds no sync running syncs everything
// written so far, and the rest wait for it.
func (s *spool) syncTo(p pos) error {
	s.syncMu.Lock()
	for {
		if s.syncErr != nil {
			err := s.syncErr
			s.syncMu.Unlock()
			return err
		}
		if !s.synced.less(p) {
			s.syncMu.Unlock()
			return nil
		}
		if !s.syncBusy {
			break
		}
		s.syncCond.Wait()
	}
	s.syncBusy = true
	s.syncMu.Unlock()

	s.mu.Lock()
	target, points, f := s.written, s.writtenPoints, s.active
	s.mu.Unlock()
	err := unix.Fdatasync(int(f.Fd()))
	if err != nil {
		// After a failed fsync Linux may have dropped the dirty pages: what
		// is on disk is unknown, so refuse all further appends.
		err = fmt.Errorf("syncing influx spool: %w", err)
		s.mu.Lock()
		s.broken = err
		s.mu.Unlock()
	}
	s.releaseSyncToken(target, points, err)
	return err
}

// waiting is the number of durable points InfluxDB has not confirmed yet.
func (s *spool) waiting() int64 { return s.syncedPoints.Load() - s.confirmedPoints.Load() }

// unread is the number of durable points the reader has not read yet.
func (s *spool) unread() int64 { return s.syncedPoints.Load() - s.readPoints }

// rewind moves the reader back to the first unconfirmed record, so that a
// new Run resends whatever an earlier Run read but could not confirm.
func (s *spool) rewind() {
	s.mu.Lock()
	s.read = s.confirmed
	s.mu.Unlock()
	s.readPoints = s.confirmedPoints.Load()
	if s.rd != nil {
		s.rd.Close()
		s.rd = nil
	}
}

// next reads whole durable records from the reader's position, appending
// their lines to dst, until adding another record would pass maxPoints (it
// always takes at least one). It returns the position after the last record
// read; n is 0 when nothing durable is unread.
func (s *spool) next(dst []byte, maxPoints int) (lines []byte, n int, end pos, err error) {
	s.syncMu.Lock()
	durable := s.synced
	s.syncMu.Unlock()
	lines = dst
	for s.read.less(durable) {
		limit := durable.off
		if s.read.seg < durable.seg {
			// The reader's segment is sealed: read to its end, then move to
			// the next one. (A fully confirmed segment may already be gone.)
			var cur segment
			found := false
			s.mu.Lock()
			for _, sg := range s.segs {
				if sg.id >= s.read.seg && (sg.id > s.read.seg || s.read.off < sg.size) {
					cur, found = sg, true
					break
				}
			}
			s.mu.Unlock()
			if !found {
				return lines, n, s.read, fmt.Errorf("influx spool: no segment after %d", s.read.seg)
			}
			if cur.id != s.read.seg {
				s.read = pos{seg: cur.id}
				if s.rd != nil {
					s.rd.Close()
					s.rd = nil
				}
				continue
			}
			limit = cur.size
		}
		if s.rd == nil {
			f, err := os.Open(s.segPath(s.read.seg))
			if err != nil {
				return lines, n, s.read, fmt.Errorf("opening influx spool segment for reading: %w", err)
			}
			s.rd = &segReader{f: f, off: s.read.off}
			if s.rdBuf == nil {
				s.rdBuf = bufio.NewReaderSize(s.rd, 1<<20)
			} else {
				s.rdBuf.Reset(s.rd)
			}
		}
		// The buffered reader must never see bytes past what is durable:
		// they may be a record still being written.
		s.rd.limit = limit
		if n > 0 {
			h, err := s.rdBuf.Peek(recHeaderLen)
			if err != nil {
				return lines, n, s.read, fmt.Errorf("reading influx spool: %w", err)
			}
			if n+int(binary.LittleEndian.Uint32(h[4:])) > maxPoints {
				break
			}
		}
		before := len(lines)
		pts, out, err := readRecord(s.rdBuf, lines, limit-s.read.off)
		if err != nil {
			return lines, n, s.read, fmt.Errorf("reading influx spool segment %d at %d: %w", s.read.seg, s.read.off, err)
		}
		lines = out
		n += pts
		s.read.off += recHeaderLen + int64(len(lines)-before)
		s.readPoints += int64(pts)
		if n >= maxPoints {
			break
		}
	}
	return lines, n, s.read, nil
}

// segReader reads a segment file up to a limit that moves forward as more
// of the file becomes durable.
type segReader struct {
	f          *os.File
	off, limit int64
}

func (r *segReader) Read(p []byte) (int, error) {
	if r.off >= r.limit {
		return 0, io.EOF
	}
	if int64(len(p)) > r.limit-r.off {
		p = p[:r.limit-r.off]
	}
	n, err := r.f.ReadAt(p, r.off)
	r.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (r *segReader) Close() error { return r.f.Close() }

// confirm records that InfluxDB has every point before end, persists the
// checkpoint and deletes segments that hold nothing unconfirmed.
func (s *spool) confirm(end pos, points int) error {
	var buf [checkpointLen]byte
	binary.LittleEndian.PutUint64(buf[0:], end.seg)
	binary.LittleEndian.PutUint64(buf[8:], uint64(end.off))
	binary.LittleEndian.PutUint32(buf[16:], crc32.Checksum(buf[:16], castagnoli))
	if _, err := s.ckpt.WriteAt(buf[:], 0); err != nil {
		return fmt.Errorf("writing influx spool checkpoint: %w", err)
	}
	s.confirmedPoints.Add(int64(points))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.confirmed = end
	for len(s.segs) > 1 {
		sg := s.segs[0]
		if sg.id > end.seg || (sg.id == end.seg && end.off < sg.size) {
			break
		}
		if err := os.Remove(s.segPath(sg.id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing confirmed influx spool segment: %w", err)
		}
		s.diskBytes.Add(-sg.size)
		s.segs = s.segs[1:]
	}
	return nil
}

func (s *spool) readCheckpoint() (pos, bool) {
	var buf [checkpointLen]byte
	if _, err := s.ckpt.ReadAt(buf[:], 0); err != nil {
		return pos{}, false
	}
	if crc32.Checksum(buf[:16], castagnoli) != binary.LittleEndian.Uint32(buf[16:]) {
		return pos{}, false
	}
	return pos{seg: binary.LittleEndian.Uint64(buf[0:]), off: int64(binary.LittleEndian.Uint64(buf[8:]))}, true
}

// close syncs and releases the files. Appenders still waiting for their
// fsync are covered by the final one.
func (s *spool) close() error {
	s.acquireSyncToken()
	s.mu.Lock()
	var errs []error
	end, points := s.written, s.writtenPoints
	if s.active != nil {
		if err := unix.Fdatasync(int(s.active.Fd())); err != nil {
			errs = append(errs, fmt.Errorf("syncing influx spool: %w", err))
		}
		errs = append(errs, s.active.Close())
		s.active = nil
	}
	if s.rd != nil {
		s.rd.Close()
		s.rd = nil
	}
	errs = append(errs, s.ckpt.Close())
	if s.broken == nil {
		s.broken = errClosed
	}
	s.mu.Unlock()
	err := errors.Join(errs...)
	s.releaseSyncToken(end, points, err)
	return err
}
