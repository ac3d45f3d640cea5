package uplink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/klauspost/compress/snappy"
)

// queue is one receiver's store-and-forward queue: one file per gathered
// request, named by a sequence number, so order is the file order and a
// kill -9 leaves either a whole file or none (written to a temporary name,
// synced, renamed, directory synced). A file is removed only after the
// receiver accepted it; a crash between the two re-sends it once, which
// the receivers take as the same sample again (same series, timestamp and
// value).
//
// File layout: "VHU1", CRC-32C of the rest, oldest sample time (int64 ms),
// sample count (uint32), then the snappy-compressed WriteRequest.
type queue struct {
	dir string
	max int64

	mu      sync.Mutex
	recs    []recMeta
	bytes   int64
	nextSeq uint64
	notify  chan struct{}
	// onDrop is called (under mu) with samples dropped and why.
	onDrop func(samples int, reason string)
}

type recMeta struct {
	seq     uint64
	size    int64
	ts      int64 // oldest sample, ms
	samples int
}

const (
	recMagic  = "VHU1"
	recHeader = 4 + 4 + 8 + 4
	recExt    = ".rec"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

func openQueue(dir string, max int64, onDrop func(int, string)) (*queue, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("uplink queue: %w", err)
	}
	q := &queue{dir: dir, max: max, notify: make(chan struct{}, 1), onDrop: onDrop}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("uplink queue: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			// A write cut short by a crash: never acknowledged to anyone.
			_ = os.Remove(filepath.Join(dir, name))
			continue
		}
		seqStr, ok := strings.CutSuffix(name, recExt)
		if !ok {
			continue
		}
		seq, err := strconv.ParseUint(seqStr, 16, 64)
		if err != nil {
			continue
		}
		m, err := readMeta(filepath.Join(dir, name))
		if err != nil {
			// Unreadable header: count nothing (its size is unknown) and
			// get it out of the way.
			_ = os.Remove(filepath.Join(dir, name))
			continue
		}
		m.seq = seq
		q.recs = append(q.recs, m)
		q.bytes += m.size
	}
	sort.Slice(q.recs, func(i, j int) bool { return q.recs[i].seq < q.recs[j].seq })
	if n := len(q.recs); n > 0 {
		q.nextSeq = q.recs[n-1].seq + 1
	}
	return q, nil
}

func readMeta(path string) (recMeta, error) {
	f, err := os.Open(path)
	if err != nil {
		return recMeta{}, err
	}
	defer f.Close()
	var h [recHeader]byte
	if _, err := f.ReadAt(h[:], 0); err != nil {
		return recMeta{}, err
	}
	if string(h[:4]) != recMagic {
		return recMeta{}, errors.New("not a queue record")
	}
	st, err := f.Stat()
	if err != nil {
		return recMeta{}, err
	}
	return recMeta{size: st.Size(), ts: int64(binary.LittleEndian.Uint64(h[8:])), samples: int(binary.LittleEndian.Uint32(h[16:]))}, nil
}

func (q *queue) path(seq uint64) string {
	return filepath.Join(q.dir, fmt.Sprintf("%016x%s", seq, recExt))
}

// append stores one encoded WriteRequest durably, dropping the oldest
// records first when the queue would pass its bound.
func (q *queue) append(raw []byte, oldestTS int64, samples int) error {
	body := snappy.Encode(nil, raw)
	buf := make([]byte, recHeader+len(body))
	copy(buf, recMagic)
	binary.LittleEndian.PutUint64(buf[8:], uint64(oldestTS))
	binary.LittleEndian.PutUint32(buf[16:], uint32(samples))
	copy(buf[recHeader:], body)
	binary.LittleEndian.PutUint32(buf[4:], crc32.Checksum(buf[8:], crcTable))

	q.mu.Lock()
	seq := q.nextSeq
	q.nextSeq++
	size := int64(len(buf))
	for len(q.recs) > 0 && q.bytes+size > q.max {
		old := q.recs[0]
		q.recs = q.recs[1:]
		q.bytes -= old.size
		_ = os.Remove(q.path(old.seq))
		q.onDrop(old.samples, "queue_full")
	}
	q.mu.Unlock()

	p := q.path(seq)
	tmp := p + ".tmp"
	if err := writeSync(tmp, buf); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("uplink queue: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("uplink queue: %w", err)
	}
	syncDir(q.dir)

	q.mu.Lock()
	// Appends come from one goroutine, so seq is the largest so far.
	q.recs = append(q.recs, recMeta{seq: seq, size: size, ts: oldestTS, samples: samples})
	q.bytes += size
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
	return nil
}

func writeSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// peek returns the oldest records holding at most maxSamples samples (at
// least one record when the queue is not empty).
func (q *queue) peek(maxSamples int) []recMeta {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []recMeta
	n := 0
	for _, r := range q.recs {
		if len(out) > 0 && n+r.samples > maxSamples {
			break
		}
		out = append(out, r)
		n += r.samples
	}
	return out
}

// read decodes one record; fs.ErrNotExist means it was dropped meanwhile.
func (q *queue) read(m recMeta) ([]series, error) {
	b, err := os.ReadFile(q.path(m.seq))
	if err != nil {
		return nil, err
	}
	if len(b) < recHeader || string(b[:4]) != recMagic || crc32.Checksum(b[8:], crcTable) != binary.LittleEndian.Uint32(b[4:]) {
		return nil, errCorrupt
	}
	raw, err := snappy.Decode(nil, b[recHeader:])
	if err != nil {
		return nil, errCorrupt
	}
	ss, err := decodeWriteRequest(raw)
	if err != nil {
		return nil, errCorrupt
	}
	return ss, nil
}

var errCorrupt = errors.New("corrupt queue record")

// remove deletes records the receiver accepted (or that were dropped);
// records already gone are skipped.
func (q *queue) remove(ms []recMeta) {
	q.mu.Lock()
	defer q.mu.Unlock()
	gone := map[uint64]bool{}
	for _, m := range ms {
		gone[m.seq] = true
	}
	kept := q.recs[:0]
	for _, r := range q.recs {
		if gone[r.seq] {
			q.bytes -= r.size
			// A file that cannot be removed would be sent again after a
			// restart; the receivers take that as the same samples again.
			_ = os.Remove(q.path(r.seq))
			continue
		}
		kept = append(kept, r)
	}
	q.recs = kept
}

// stats returns the bytes queued, the oldest queued sample (ms, 0 when
// empty), records and samples queued.
func (q *queue) stats() (bytes, oldest int64, recs, samples int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.recs) > 0 {
		oldest = q.recs[0].ts
	}
	for _, r := range q.recs {
		samples += r.samples
	}
	return q.bytes, oldest, len(q.recs), samples
}
