package state

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"villagehub/hub/event"
	"villagehub/hub/ingest"
)

// An administrator rejects a device that registered itself (a mistyped
// board ID, a stranger's camera): the hub forgets it and refuses its
// messages (reason rejected_device) until the device is added to the
// config. The rejection is kept in the store as "x/<kind>/<site>/<id>"
// (value: version, 1 rejected / 0 lifted), committed with the device's
// record reset to an empty one: the store only ever writes records, so a
// forgotten device's history is overwritten rather than deleted, and
// whichever order the store hands back the records, a restart sees the
// device rejected and without history.

var (
	// ErrConfigured: the device is in the config; it is removed there.
	ErrConfigured = errors.New("the device is in the configuration")
	// ErrUnknownDevice: no such device (or already forgotten).
	ErrUnknownDevice = errors.New("no such device")
)

const rejectKeyPrefix = "x/"

// forgetTimeout bounds how long Forget waits for the pipeline to apply
// and commit the rejection.
const forgetTimeout = 30 * time.Second

type rejectKey struct {
	kind     event.Kind
	site, id string
}

func (k rejectKey) storeKey() string {
	return rejectKeyPrefix + k.kind.String() + "/" + k.site + "/" + k.id
}

func rejectRecord(rejected bool) []byte {
	if rejected {
		return []byte{codecVersion, 1}
	}
	return []byte{codecVersion, 0}
}

// Forget rejects an auto-registered device: it leaves the state (and so
// the metrics, the API and the dashboard), and its further messages are
// rejected with reason rejected_device until it is added to the config.
// It returns once the rejection is durable. kind is a device kind's name
// ("camera", "board").
func (s *State) Forget(kind, site, id string) error {
	k, ok := event.KindByName(kind)
	if !ok {
		return fmt.Errorf("%w: unknown kind %q", ErrUnknownDevice, kind)
	}
	ctx, cancel := context.WithTimeout(context.Background(), forgetTimeout)
	defer cancel()
	var err error
	done := make(chan struct{}, 1)
	call := func() { err = s.forget(rejectKey{k, site, id}) }
	if perr := s.cfg.Queue.Push(ctx, ingest.Message{Local: &ingest.Local{Call: call}, Received: s.now(), Done: done}, true); perr != nil {
		return perr
	}
	select {
	case <-done:
		return err // written before done was sent
	case <-ctx.Done():
		return fmt.Errorf("state: the rejection was not committed in time: %w", ctx.Err())
	}
}

// forget runs on the Run goroutine with s.mu held.
func (s *State) forget(k rejectKey) error {
	t := s.tables[k.kind]
	if t == nil {
		return ErrUnknownDevice
	}
	record, err := t.forget(k.site, k.id)
	if err != nil {
		return err
	}
	k.site, k.id = strings.Clone(k.site), strings.Clone(k.id)
	s.rejectedDevs[k] = struct{}{}
	s.batch.Devices = append(s.batch.Devices,
		DeviceRecord{Key: deviceKey(k.kind, k.site, k.id), Value: record},
		DeviceRecord{Key: k.storeKey(), Value: rejectRecord(true)})
	s.log.Info("device rejected by an administrator: forgotten, its messages refused until it is added to the config",
		"kind", k.kind.String(), "site", k.site, "id", k.id)
	return nil
}

// isRejected says whether a device's messages are refused.
func (s *State) isRejected(kind event.Kind, site, id string) bool {
	if len(s.rejectedDevs) == 0 {
		return false
	}
	_, ok := s.rejectedDevs[rejectKey{kind, site, id}]
	return ok
}

// loadRejected reads an "x/<kind>/<site>/<id>" record.
func (s *State) loadRejected(key string, value []byte) error {
	kindName, rest, ok := cutSlash(key[len(rejectKeyPrefix):])
	kind, known := event.KindByName(kindName)
	site, id, ok2 := cutSlash(rest)
	if !ok || !known || !ok2 || len(value) != 2 || value[0] < 1 || value[0] > codecVersion {
		return fmt.Errorf("bad rejected-device record %q", key)
	}
	if value[1] == 1 {
		s.rejectedDevs[rejectKey{kind, site, id}] = struct{}{}
	}
	return nil
}

// settleRejected applies the rejections loaded from the store, once all
// records are loaded: a rejected device still in the store is forgotten,
// and one now in the config has its rejection lifted.
func (s *State) settleRejected() {
	for k := range s.rejectedDevs {
		if t := s.tables[k.kind]; t != nil && t.settle(k.site, k.id) {
			s.liftRejection(k)
		}
	}
}

// liftRejection: the device was added to the config.
func (s *State) liftRejection(k rejectKey) {
	delete(s.rejectedDevs, k)
	s.batch.Devices = append(s.batch.Devices, DeviceRecord{Key: k.storeKey(), Value: rejectRecord(false)})
	s.log.Info("rejected device added to the config: its messages are accepted again", "kind", k.kind.String(), "site", k.site, "id", k.id)
}

// liftConfigured lifts the rejection of every rejected device now in the
// config (after a reload).
func (s *State) liftConfigured() {
	for k := range s.rejectedDevs {
		if t := s.tables[k.kind]; t != nil && t.configured(k.site, k.id) {
			s.liftRejection(k)
		}
	}
}
