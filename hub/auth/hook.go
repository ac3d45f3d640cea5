// Package auth controls who may use the hub's embedded MQTT broker and how
// much: per-device usernames and bcrypt-hashed passwords from a
// credentials file, a topic ACL that keeps each device to its own topics,
// per-client publish rates and a connection cap, all as one mochi-mqtt
// hook, plus the `villagehub device` command that manages the credentials.
//
// Usernames carry the device's place in the topic tree:
// "<site>/<kind>/<id>" may publish <prefix>/<site>/<kind>/<id>/<leaf> and
// subscribe to <prefix>/<site>/<kind>/<id>/cmd/#. The same rule is one
// `pattern` line in Mosquitto's ACL file (configs/mosquitto/acl).
package auth

import (
	"bytes"
	"container/list"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/time/rate"
)

// Why a connection was refused (the reason label).
const (
	refusedBadCredentials = iota // unknown username or wrong password
	refusedAnonymous             // no username while anonymous access is off
	refusedMaxConnections
	refusedWill // last will on a topic the client may not publish to
	refusedMaxPending
	refusedMaxPendingPerSource
	refusedMaxPerUser
	refusedClientID      // a device's client ID not its own
	refusedClientIDInUse // another account's client is connected with this ID
	refusedAuthRate      // too many failed logins for this account or address
	nRefused
)

var refusedReasons = [nRefused]string{"bad_credentials", "anonymous", "max_connections", "will_denied",
	"max_pending", "max_pending_per_source", "max_connections_per_user", "client_id", "client_id_in_use", "auth_rate_limited"}

// Retained messages refused (the retain flag dropped, the message still
// delivered), by reason.
const (
	retainTopic = iota // not a status topic
	retainSize
	retainCount
	nRetain
)

var retainReasons = [nRetain]string{"topic", "size", "count"}

// Failed logins: each account and each source address may fail
// authFailBurst times, then once per authFailEvery; past that a login that
// would need a bcrypt check is refused without one. A device whose
// password is already verified (cached) is never held back by this, so
// an attacker guessing its password cannot lock it out.
const (
	authFailBurst = 10
	authFailEvery = 6 * time.Second
	maxFailKeys   = 8192
)

// What an ACL denial was about (the action label).
const (
	aclPublish = iota
	aclSubscribe
	aclWill
	nACL
)

var aclActions = [nACL]string{"publish", "subscribe", "will"}

// How often Run looks at the credentials file for changes.
const pollInterval = 2 * time.Second

// identity is one user from the credentials file.
type identity struct {
	username string
	role     Role
	hash     []byte
	// own is "<prefix>/<site>/<kind>/<id>/" for a device, leaf its
	// kind's report topic (motion or scans), dev its <id>. For a Frigate
	// own is "<its topic_prefix>/", or "" when no frigate: entry has its
	// name (it may then do nothing).
	own, leaf, dev string
	// verified is an HMAC of the last password that matched hash, so a
	// reconnecting device costs a hash rather than a bcrypt run.
	verified atomic.Pointer[[sha256.Size]byte]
	// limiter is the user's token bucket, shared by all its connections
	// and kept across reloads; made on the first publish.
	limiter atomic.Pointer[rate.Limiter]
}

// allows is the ACL. Topic is a topic name when writing and a topic
// filter (which may hold wildcards) when subscribing; a read check also
// runs for each message delivered to the client.
func (id *identity) allows(topic string, write bool, prefix string) bool {
	switch id.role {
	case RoleHub:
		return true
	case RoleViewer:
		return !write && strings.HasPrefix(topic, prefix)
	case RoleDevice:
		rest, ok := strings.CutPrefix(topic, id.own)
		if !ok {
			return false
		}
		if write {
			// Only the leaves the contract gives its kind: a camera
			// motion and status, a QR board scans and status. Nothing
			// deeper, so it cannot write its own command topics.
			return rest == "status" || rest == id.leaf
		}
		return rest == "cmd" || strings.HasPrefix(rest, "cmd/")
	case RoleFrigate:
		// Everything Frigate publishes (events, stats, motion, snapshots,
		// its state topics) and subscribes to (its .../set commands) is
		// under its own prefix; the hub's tree is refused even though the
		// config already keeps the two apart.
		return id.own != "" && strings.HasPrefix(topic, id.own) && !strings.HasPrefix(topic, prefix)
	}
	return false
}

// willAllowed: a device's last will may go wherever it may publish; a
// Frigate's only on <its prefix>/available, where Frigate sets it
// (offline), since any other will would be a message it never sent.
func (id *identity) willAllowed(topic, prefix string) bool {
	if id.role == RoleFrigate {
		return id.own != "" && topic == id.own+"available"
	}
	return id.allows(topic, true, prefix)
}

// credSet is one load of the credentials file; it is replaced whole.
type credSet struct {
	path  string
	users map[string]*identity
	roles map[Role]int
}

// fileSeen is the credentials file as last read, good or bad, so that a
// file is read again only once it changes.
type fileSeen struct {
	path string
	stat os.FileInfo // nil when the file did not exist
}

// settings are the limits that a reload may change.
type settings struct {
	allowAnonymous bool
	maxConnections int64
	rate           rate.Limit
	burst          int

	connectTimeout      time.Duration
	maxPending          int
	maxPendingPerSource int
	maxPerUser          int
	maxRetained         int64
	maxRetainedBytes    int
}

// Hook is a mochi-mqtt hook that authenticates clients, applies the topic
// ACL, and enforces the per-client publish rate and the connection cap.
// It also is a prometheus.Collector of what those refused.
//
// It must be the only hook that provides OnConnectAuthenticate and
// OnACLCheck: mochi allows whatever any hook allows, so adding
// auth.AllowHook beside it would open everything. No hook added after it
// may fail OnConnect (the hub's ingest hook does not provide it), or the
// connection count would not be given back.
type Hook struct {
	mqtt.HookBase

	prefix    string // "<prefix>/"
	log       *slog.Logger
	srv       *mqtt.Server
	maxPacket int
	// frigates: each configured Frigate's topic prefix by name (written
	// under cfgMu, read by load).
	frigates map[string]string

	creds    atomic.Pointer[credSet]
	seen     atomic.Pointer[fileSeen]
	set      atomic.Pointer[settings]
	cfgMu    sync.Mutex // serialises Reload and Reconfigure
	inflight uint16
	macKey   []byte
	dummy    []byte        // a bcrypt hash to burn time on for unknown users
	authSem  chan struct{} // bounds concurrent bcrypt runs
	pending  atomic.Int64  // connections between OnConnect and the end of authentication
	// anonLimiters holds one token bucket per anonymous connection, keyed
	// by *mqtt.Client. Users' buckets live on their identity.
	anonLimiters sync.Map
	logLimit     *rate.Limiter // for log lines a client can provoke
	gateLog      *rate.Limiter // for the gate's (gate.go)
	// throttleLog keeps a flood from filling the log (or using up
	// logLimit, hiding login failures).
	throttleLog *rate.Limiter
	done        chan struct{}
	stopOnce    sync.Once

	// The gate (gate.go): connections waiting for CONNECT, per source,
	// and connections per account.
	gateMu        sync.Mutex
	pendingList   list.List // of *trackedConn, oldest first
	pendingBySrc  map[string]int
	perAccount    map[string]int
	slots         sync.Map // *mqtt.Client -> func() giving back its account slot
	failMu        sync.Mutex
	failures      map[string]*rate.Limiter // "u:<user>" and "a:<address>"
	lastAcceptErr atomic.Int64

	connectTimeouts atomic.Uint64
	acceptErrors    atomic.Uint64
	retainRefused   [nRetain]atomic.Uint64

	authFailures atomic.Uint64
	rateLimited  atomic.Uint64
	refused      [nRefused]atomic.Uint64
	aclDenied    [nACL]atomic.Uint64
	tooLarge     atomic.Uint64
	overInflight atomic.Uint64

	descAuth, descACL, descRate, descRefused, descLimit, descCreds *prometheus.Desc
	descTimeouts, descAcceptErr, descPending, descRetain           *prometheus.Desc
}

// New reads the credentials file and builds the hook. A missing file is
// no users; a malformed one is an error naming the file and line.
func New(cfg Config) (*Hook, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h := &Hook{
		prefix:    cfg.Prefix + "/",
		frigates:  cfg.Frigates,
		log:       cfg.Logger.With("component", "broker-auth"),
		maxPacket: cfg.MaxPacketSize,
		inflight:  uint16(cfg.MaxInflight),
		// Half the CPUs (at least one): a flood of logins needing
		// bcrypt must leave CPU for message handling.
		authSem:      make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2)),
		logLimit:     rate.NewLimiter(1, 10),
		gateLog:      rate.NewLimiter(1, 10),
		throttleLog:  rate.NewLimiter(rate.Every(10*time.Second), 1),
		done:         make(chan struct{}),
		macKey:       make([]byte, 32),
		pendingBySrc: map[string]int{},
		perAccount:   map[string]int{},
		failures:     map[string]*rate.Limiter{},
	}
	if _, err := rand.Read(h.macKey); err != nil {
		return nil, fmt.Errorf("broker auth: %w", err)
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("no such user"), BcryptCost)
	if err != nil {
		return nil, fmt.Errorf("broker auth: %w", err)
	}
	h.dummy = dummy
	h.set.Store(settingsOf(cfg))
	if err := h.load(cfg.CredentialsPath(cfg.DataDir)); err != nil {
		return nil, err
	}
	h.describe()
	cs := h.creds.Load()
	if cfg.AllowAnonymous {
		h.log.Warn("embedded MQTT broker allows anonymous clients (broker.allow_anonymous: true): anyone who can reach it may publish as any device; use only on loopback or for a trial")
	} else if len(cs.users) == 0 {
		h.log.Warn("no MQTT credentials yet: devices cannot connect until you add them with `villagehub device add`", "file", cs.path)
	}
	return h, nil
}

func settingsOf(cfg Config) *settings {
	return &settings{
		allowAnonymous: cfg.AllowAnonymous,
		maxConnections: int64(cfg.MaxConnections),
		rate:           rate.Limit(cfg.PublishRate),
		burst:          cfg.PublishBurst,

		connectTimeout:      cfg.ConnectTimeout,
		maxPending:          cfg.MaxPending,
		maxPendingPerSource: cfg.MaxPendingPerSource,
		maxPerUser:          cfg.MaxConnectionsPerUser,
		maxRetained:         int64(cfg.MaxRetained),
		maxRetainedBytes:    cfg.MaxRetainedBytes,
	}
}

// Install adds the hook to srv and sets the broker limits that mochi
// enforces itself (max_packet_size, max_inflight). Call it after mqtt.New
// and before Serve, instead of srv.AddHook.
func (h *Hook) Install(srv *mqtt.Server) error {
	caps := srv.Options.Capabilities
	caps.MaximumPacketSize = uint32(h.maxPacket)
	caps.ReceiveMaximum = h.inflight
	caps.MaximumInflight = h.inflight
	h.srv = srv
	if err := srv.AddHook(h, nil); err != nil {
		return fmt.Errorf("adding broker auth hook: %w", err)
	}
	return nil
}

// CredentialsPath is the file the hook reads.
func (h *Hook) CredentialsPath() string { return h.creds.Load().path }

func (h *Hook) ID() string { return "villagehub-auth" }

func (h *Hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPacketRead, mqtt.OnDisconnect:
		return true
	}
	return false
}

// Stop is called by the broker when it closes: release throttled readers.
func (h *Hook) Stop() error {
	h.stopOnce.Do(func() { close(h.done) })
	return nil
}

// Run watches the credentials file until ctx ends, so that `villagehub
// device add|passwd|remove` takes effect without a restart: removed or
// changed users are disconnected.
func (h *Hook) Run(ctx context.Context) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			h.refresh()
		}
	}
}

// Reload rereads the credentials file. On error the users loaded before
// stay in force. Clients whose user was removed or whose password changed
// are disconnected.
func (h *Hook) Reload() error {
	h.cfgMu.Lock()
	defer h.cfgMu.Unlock()
	old := h.creds.Load()
	if err := h.load(old.path); err != nil {
		h.log.Error("MQTT credentials not reloaded; the previous ones stay in force", "err", err)
		return err
	}
	h.evict(old)
	return nil
}

// refresh reloads the credentials if the file changed since it was last
// read. Taking the lock first also waits out a load in progress, so a
// caller sees its users once refresh returns.
func (h *Hook) refresh() {
	h.cfgMu.Lock()
	defer h.cfgMu.Unlock()
	if !h.fileChanged() {
		return
	}
	old := h.creds.Load()
	if err := h.load(old.path); err != nil {
		// A bad file is reported once per change; the old users stay.
		h.log.Error("MQTT credentials not reloaded; the previous ones stay in force", "err", err)
		return
	}
	h.evict(old)
}

// Reconfigure applies new settings: allow_anonymous, max_connections,
// publish_rate, publish_burst and credentials_file take effect at once;
// max_packet_size, max_inflight and the topic prefix at the next start
// (mochi reads the first two while clients are connected). An invalid cfg
// (or credentials file) changes nothing.
func (h *Hook) Reconfigure(cfg Config) error {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	h.cfgMu.Lock()
	defer h.cfgMu.Unlock()
	old := h.creds.Load()
	oldFrigates := h.frigates
	h.frigates = cfg.Frigates
	if err := h.load(cfg.CredentialsPath(cfg.DataDir)); err != nil {
		h.frigates = oldFrigates
		return err
	}
	s := settingsOf(cfg)
	h.set.Store(s)
	h.anonLimiters.Range(func(_, v any) bool {
		l := v.(*rate.Limiter)
		l.SetLimit(s.rate)
		l.SetBurst(s.burst)
		return true
	})
	for _, id := range h.creds.Load().users {
		if l := id.limiter.Load(); l != nil {
			l.SetLimit(s.rate)
			l.SetBurst(s.burst)
		}
	}
	if s.allowAnonymous {
		h.log.Warn("embedded MQTT broker allows anonymous clients (broker.allow_anonymous: true)")
	}
	h.evict(old)
	return nil
}

// load reads the file at path and swaps in its users. Callers hold cfgMu
// (except New, before anyone else can see the hook).
func (h *Hook) load(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		st = nil
	}
	old := h.creds.Load()
	es, err := readEntries(path)
	if err != nil {
		// Remember a bad file only if it is the one in force, so it is
		// not read (and reported) again until it changes.
		if old == nil || old.path == path {
			h.seen.Store(&fileSeen{path: path, stat: st})
		}
		return err
	}
	h.seen.Store(&fileSeen{path: path, stat: st})
	cs := &credSet{path: path, users: make(map[string]*identity, len(es)), roles: map[Role]int{}}
	for _, e := range es {
		id := &identity{username: e.Username, role: e.Role, hash: []byte(e.Bcrypt)}
		if e.Role == RoleDevice {
			id.own = h.prefix + e.Username + "/"
			parts := strings.Split(e.Username, "/")
			id.dev = parts[len(parts)-1]
			id.leaf = "scans"
			if len(parts) == 3 && parts[1] == "camera" {
				id.leaf = "motion"
			}
		}
		if e.Role == RoleFrigate {
			name := strings.TrimPrefix(e.Username, frigateUserPrefix)
			if p, ok := h.frigates[name]; ok && p != "" {
				id.own = p + "/"
			} else {
				h.log.Warn("MQTT frigate account without a frigate: entry of that name in the config: it may publish nothing", "username", e.Username)
			}
		}
		if old != nil {
			if prev := old.users[e.Username]; prev != nil {
				id.limiter.Store(prev.limiter.Load())
				if bytes.Equal(prev.hash, id.hash) {
					id.verified.Store(prev.verified.Load())
				}
			}
		}
		cs.users[e.Username] = id
		cs.roles[e.Role]++
	}
	h.creds.Store(cs)
	if st != nil && st.Mode().Perm()&0o077 != 0 {
		h.log.Warn("MQTT credentials file is readable by others; chmod 600 it", "file", path, "mode", st.Mode().Perm().String())
	}
	if old != nil {
		h.log.Info("MQTT credentials reloaded", "file", path, "devices", cs.roles[RoleDevice], "viewers", cs.roles[RoleViewer], "hubs", cs.roles[RoleHub], "frigates", cs.roles[RoleFrigate])
	}
	return nil
}

// fileChanged reports whether the credentials file differs from the one
// last read (a rename gives a new inode even with the same size and time).
func (h *Hook) fileChanged() bool {
	seen := h.seen.Load()
	st, err := os.Stat(seen.path)
	old := seen.stat
	if err != nil || old == nil {
		return (err == nil) != (old != nil)
	}
	return !os.SameFile(st, old) || !st.ModTime().Equal(old.ModTime()) || st.Size() != old.Size()
}

// evict disconnects clients that the current users and settings no longer
// admit: anonymous ones when anonymous access is off, and users removed or
// given a new password since old, the set loaded before. Callers hold
// cfgMu.
func (h *Hook) evict(old *credSet) {
	if h.srv == nil {
		return
	}
	cs, s := h.creds.Load(), h.set.Load()
	for _, cl := range h.srv.Clients.GetAll() {
		if cl.Net.Inline || cl.Closed() {
			continue
		}
		u := string(cl.Properties.Username)
		var keep bool
		if u == "" {
			keep = s.allowAnonymous
		} else if id := cs.users[u]; id != nil {
			prev := old.users[u]
			keep = prev != nil && bytes.Equal(prev.hash, id.hash)
		}
		if !keep {
			h.log.Info("disconnecting MQTT client whose credentials were removed or changed", "client", cl.ID, "username", u)
			_ = h.srv.DisconnectClient(cl, packets.ErrNotAuthorized)
		}
	}
}

// OnConnect refuses a connection over max_connections before spending a
// bcrypt run on it. Connections still authenticating count too, so a
// flood of slow logins cannot pile up unbounded.
func (h *Hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	h.connected(cl)
	n := h.pending.Add(1)
	if h.srv != nil && atomic.LoadInt64(&h.srv.Info.ClientsConnected)+n > h.set.Load().maxConnections {
		h.pending.Add(-1)
		h.refused[refusedMaxConnections].Add(1)
		h.logf("MQTT connection refused: max_connections reached", "max_connections", h.set.Load().maxConnections, "remote", cl.Net.Remote)
		// MQTT 3 has no "busy"; "server unavailable" tells a client to
		// retry later in both versions.
		_ = h.srv.SendConnack(cl, packets.ErrServerUnavailable, false, nil)
		return packets.ErrServerUnavailable
	}
	return nil
}

// OnConnectAuthenticate checks the username and password, and that the
// client's last will (if any) is on a topic it may publish to: mochi
// publishes wills without an ACL check, and a will is how a device says
// "offline", so a forged one would mark another device down.
func (h *Hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	defer h.pending.Add(-1)
	user := string(pk.Connect.Username)
	if user == "" {
		if !h.set.Load().allowAnonymous {
			h.authFailures.Add(1)
			h.refused[refusedAnonymous].Add(1)
			h.logf("MQTT connection refused: no username (anonymous access is off)", "client", cl.ID, "remote", cl.Net.Remote)
			return false
		}
		if cl.Properties.Will.Flag == 1 && !anonymousAllows(cl.Properties.Will.TopicName, true, h.prefix) {
			return h.refuseWill(cl, user)
		}
		return h.admitClient(cl, nil)
	}
	src := sourceOf(remoteAddr(cl))
	cs := h.creds.Load()
	id, ok, limited := h.verify(cs, user, pk.Connect.Password, src)
	if !ok && !limited {
		// `villagehub device add` or `passwd` may have just run: look
		// again before turning the device away.
		h.refresh()
		if cs2 := h.creds.Load(); cs2 != cs {
			id, ok, limited = h.verify(cs2, user, pk.Connect.Password, src)
		}
	}
	if limited {
		h.authFailures.Add(1)
		h.refused[refusedAuthRate].Add(1)
		h.logf("MQTT connection refused: too many failed logins for this username or address", "username", clip(user), "remote", src)
		return false
	}
	if !ok {
		h.authFailed(user, src)
		h.authFailures.Add(1)
		h.refused[refusedBadCredentials].Add(1)
		h.logf("MQTT connection refused: bad username or password", "username", clip(user), "client", clip(cl.ID), "remote", cl.Net.Remote)
		return false
	}
	if cl.Properties.Will.Flag == 1 && !id.willAllowed(cl.Properties.Will.TopicName, h.prefix) {
		return h.refuseWill(cl, user)
	}
	if id.role == RoleDevice && pk.Connect.ClientIdentifier != "" && !ownClientID(id, pk.Connect.ClientIdentifier) {
		h.refused[refusedClientID].Add(1)
		h.logf("MQTT connection refused: a device may only use its own client ID (its device ID, optionally followed by \":...\", or its username, optionally followed by \"/...\")", "username", clip(user), "client", clip(cl.ID), "remote", src)
		return false
	}
	return h.admitClient(cl, id)
}

// ownClientID reports whether a device's client ID is its own: its
// device ID or its username, alone or followed by a separator no ID
// holds (":" after the ID, "/" after the username) and anything:
// "gate", "gate:2", "tan-ngu-2/camera/gate", "tan-ngu-2/camera/gate/cam1".
// A bare prefix is not enough: "cam-1" could then take "cam-10", and the
// real cam-10 would be refused while it held it.
func ownClientID(id *identity, clientID string) bool {
	rest, ok := strings.CutPrefix(clientID, id.username)
	if ok && (rest == "" || rest[0] == '/') {
		return true
	}
	rest, ok = strings.CutPrefix(clientID, id.dev)
	return ok && (rest == "" || rest[0] == ':')
}

// admitClient is the last check of an authenticated client: its client ID
// must not belong to another account's live connection (mochi would
// disconnect that one and send its last will: one device kicking another
// off and marking it offline), and its account must have a connection
// slot left (id is nil for anonymous clients; the hub role has no cap).
func (h *Hook) admitClient(cl *mqtt.Client, id *identity) bool {
	if h.srv != nil {
		if old, ok := h.srv.Clients.Get(cl.ID); ok && !old.Closed() && !old.Net.Inline &&
			(string(old.Properties.Username) != string(cl.Properties.Username) ||
				(len(cl.Properties.Username) == 0 && sourceOf(remoteAddr(old)) != sourceOf(remoteAddr(cl)))) {
			h.refused[refusedClientIDInUse].Add(1)
			h.logf("MQTT connection refused: client ID in use by another account's connection", "username", clip(string(cl.Properties.Username)), "client", clip(cl.ID), "remote", cl.Net.Remote)
			return false
		}
	}
	// Anonymous clients (a trial mode in which anyone may do anything)
	// and the hub role are not capped per account; max_connections
	// still holds.
	if id == nil || id.role == RoleHub {
		return true
	}
	if !h.takeSlot(cl, h.set.Load().maxPerUser) {
		h.refused[refusedMaxPerUser].Add(1)
		h.logf("MQTT connection refused: max_connections_per_user reached", "username", clip(string(cl.Properties.Username)), "remote", cl.Net.Remote)
		return false
	}
	return true
}

// authLimited reports whether the account or the source address has used
// up its failed logins.
func (h *Hook) authLimited(user, src string) bool {
	h.failMu.Lock()
	defer h.failMu.Unlock()
	for _, k := range [2]string{"u:" + user, "a:" + src} {
		if l := h.failures[k]; l != nil && l.Tokens() < 1 {
			return true
		}
	}
	return false
}

// authFailed takes one failed login from the account's and the address's
// allowance.
func (h *Hook) authFailed(user, src string) {
	h.failMu.Lock()
	defer h.failMu.Unlock()
	if len(h.failures) >= maxFailKeys {
		// Forget those that have their full allowance back first.
		for k, l := range h.failures {
			if l.Tokens() >= authFailBurst {
				delete(h.failures, k)
			}
		}
		if len(h.failures) >= maxFailKeys {
			clear(h.failures)
		}
	}
	for _, k := range [2]string{"u:" + user, "a:" + src} {
		l := h.failures[k]
		if l == nil {
			l = rate.NewLimiter(rate.Every(authFailEvery), authFailBurst)
			h.failures[k] = l
		}
		l.Allow()
	}
}

func (h *Hook) refuseWill(cl *mqtt.Client, user string) bool {
	h.aclDenied[aclWill].Add(1)
	h.refused[refusedWill].Add(1)
	h.logf("MQTT connection refused: last will on a topic the client may not publish to", "username", clip(user), "topic", clip(cl.Properties.Will.TopicName), "remote", cl.Net.Remote)
	return false
}

// verify checks a password. An unknown user costs a bcrypt run as well, so
// timing does not tell which usernames exist. limited is true when a
// bcrypt run was needed but the account or address has no failed logins
// left.
func (h *Hook) verify(cs *credSet, user string, password []byte, src string) (_ *identity, ok, limited bool) {
	id := cs.users[user]
	mac := hmac.New(sha256.New, h.macKey)
	mac.Write(password)
	var sum [sha256.Size]byte
	mac.Sum(sum[:0])
	if id != nil {
		if v := id.verified.Load(); v != nil && hmac.Equal(v[:], sum[:]) {
			return id, true, false
		}
	}
	if h.authLimited(user, src) {
		return nil, false, true
	}
	hash := h.dummy
	if id != nil {
		hash = id.hash
	}
	select {
	case h.authSem <- struct{}{}:
	case <-h.done:
		return nil, false, false
	}
	err := bcrypt.CompareHashAndPassword(hash, password)
	<-h.authSem
	if id == nil || err != nil {
		return nil, false, false
	}
	id.verified.Store(&sum)
	return id, true, false
}

// anonymousAllows is what an anonymous client may do when anonymous access
// is on: anything except speak as the hub (its status and alerts).
func anonymousAllows(topic string, write bool, prefix string) bool {
	if !write {
		return true
	}
	rest, ok := strings.CutPrefix(topic, prefix)
	if !ok {
		return true
	}
	if rest == "_hub" || strings.HasPrefix(rest, "_hub/") {
		return false
	}
	if _, after, ok := strings.Cut(rest, "/"); ok && (after == "alerts" || strings.HasPrefix(after, "alerts/")) {
		return false
	}
	return true
}

// OnACLCheck is the topic ACL for publishes (write) and for subscriptions
// and deliveries (read). The hub's inline client never reaches it.
func (h *Hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Inline {
		return true
	}
	var ok bool
	if len(cl.Properties.Username) == 0 {
		ok = h.set.Load().allowAnonymous && anonymousAllows(topic, write, h.prefix)
	} else if id := h.creds.Load().users[string(cl.Properties.Username)]; id != nil {
		ok = id.allows(topic, write, h.prefix)
	}
	if !ok {
		if write {
			h.aclDenied[aclPublish].Add(1)
		} else {
			h.aclDenied[aclSubscribe].Add(1)
		}
		// Checked before building the arguments: a client can call this
		// path as fast as it can send.
		if h.logLimit.Allow() {
			h.log.Warn("MQTT ACL denied", "username", clip(string(cl.Properties.Username)), "topic", clip(topic), "write", write)
		}
	}
	return ok
}

// OnPacketRead throttles a client's PUBLISH packets to its token bucket.
//
// Throttling delays reading rather than dropping: this runs in the
// client's read goroutine, so while it waits the broker reads nothing more
// from that client, TCP pushes back, and the client's own inflight window
// slows it down. No message is lost or refused, so a QoS 1 message that
// was acknowledged is always kept, and a QoS 0 burst is smoothed instead of
// cut. Each client has its own goroutine, so other devices' messages keep
// flowing meanwhile. The wait per packet is at most 1/publish_rate (at
// least 1 s by validation), well inside any keepalive.
func (h *Hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type != packets.Publish || cl.Net.Inline {
		return pk, nil
	}
	if pk.FixedHeader.Retain && len(pk.Payload) > 0 {
		h.checkRetain(cl, &pk)
	}
	l := h.limiter(cl)
	if l == nil || l.Allow() { // Allow does not allocate; Reserve does
		return pk, nil
	}
	if d := l.Reserve().Delay(); d > 0 {
		h.rateLimited.Add(1)
		if h.throttleLog.Allow() {
			h.log.Warn("MQTT client over publish_rate: reading from it is delayed", "client", cl.ID, "username", clip(string(cl.Properties.Username)), "publish_rate", float64(l.Limit()), "publish_burst", l.Burst())
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-h.done:
			t.Stop()
		}
	}
	return pk, nil
}

// checkRetain keeps retained messages to what the contract has: a device's
// status ("online"/"offline", its last will; a Frigate's
// <prefix>/available), small, and a bounded number
// in all. Anything else loses its retain flag: it is still delivered and
// ingested, only not stored in the broker, where 300 retained 60 KB
// messages on made-up topics took 55 MB (issue 12). Clearing a retained
// message (empty payload) is always allowed. The hub role is not checked.
func (h *Hook) checkRetain(cl *mqtt.Client, pk *packets.Packet) {
	// A Frigate's status topic is <its prefix>/available.
	status := strings.HasSuffix(pk.TopicName, "/status")
	if u := cl.Properties.Username; len(u) > 0 {
		if id := h.creds.Load().users[string(u)]; id != nil && id.role == RoleHub {
			return
		} else if id != nil && id.role == RoleFrigate {
			status = id.own != "" && pk.TopicName == id.own+"available"
		}
	}
	s := h.set.Load()
	reason := -1
	switch {
	case !status:
		reason = retainTopic
	case len(pk.Payload) > s.maxRetainedBytes:
		reason = retainSize
	case h.srv != nil && atomic.LoadInt64(&h.srv.Info.Retained) >= s.maxRetained:
		if _, ok := h.srv.Topics.Retained.Get(pk.TopicName); !ok {
			reason = retainCount
		}
	}
	if reason < 0 {
		return
	}
	pk.FixedHeader.Retain = false
	h.retainRefused[reason].Add(1)
	h.logf("MQTT retained message not kept (delivered without retain)", "reason", retainReasons[reason], "username", clip(string(cl.Properties.Username)), "topic", clip(pk.TopicName))
}

// limiter is the client's token bucket; nil for the hub role.
func (h *Hook) limiter(cl *mqtt.Client) *rate.Limiter {
	if u := cl.Properties.Username; len(u) > 0 {
		id := h.creds.Load().users[string(u)]
		if id == nil || id.role == RoleHub {
			return nil
		}
		if l := id.limiter.Load(); l != nil {
			return l
		}
		s := h.set.Load()
		id.limiter.CompareAndSwap(nil, rate.NewLimiter(s.rate, s.burst))
		return id.limiter.Load()
	}
	if l, ok := h.anonLimiters.Load(cl); ok {
		return l.(*rate.Limiter)
	}
	s := h.set.Load()
	l, _ := h.anonLimiters.LoadOrStore(cl, rate.NewLimiter(s.rate, s.burst))
	return l.(*rate.Limiter)
}

// OnDisconnect forgets an anonymous connection's bucket and counts
// clients cut off by a broker limit.
func (h *Hook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	h.anonLimiters.Delete(cl)
	h.giveSlot(cl)
	switch {
	case errors.Is(err, packets.ErrPacketTooLarge):
		h.tooLarge.Add(1)
		h.logf("MQTT client disconnected: packet over max_packet_size", "client", cl.ID, "username", clip(string(cl.Properties.Username)), "max_packet_size", h.maxPacket)
	case errors.Is(err, packets.ErrReceiveMaximum):
		h.overInflight.Add(1)
		h.logf("MQTT client disconnected: more unacknowledged messages than max_inflight", "client", cl.ID, "username", clip(string(cl.Properties.Username)))
	}
}

// logf logs at warn, at most about once a second overall: every line here
// is something a client can cause at will.
func (h *Hook) logf(msg string, args ...any) {
	if h.logLimit.Allow() {
		h.log.Warn(msg, args...)
	}
}

// clip keeps client-chosen strings short in logs.
func clip(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}

func (h *Hook) describe() {
	h.descAuth = prometheus.NewDesc("villagehub_broker_auth_failures_total",
		"MQTT connections that gave a wrong username or password, or none while anonymous access is off.", nil, nil)
	h.descACL = prometheus.NewDesc("villagehub_broker_acl_denied_total",
		"Publishes, subscriptions and last wills refused by the topic ACL.", []string{"action"}, nil)
	h.descRate = prometheus.NewDesc("villagehub_broker_rate_limited_total",
		"PUBLISH packets delayed because their client was over publish_rate.", nil, nil)
	h.descRefused = prometheus.NewDesc("villagehub_broker_connections_refused_total",
		"MQTT connections refused, by reason.", []string{"reason"}, nil)
	h.descLimit = prometheus.NewDesc("villagehub_broker_limit_disconnects_total",
		"MQTT clients disconnected for going over a broker limit.", []string{"limit"}, nil)
	h.descCreds = prometheus.NewDesc("villagehub_broker_credentials",
		"Users in the MQTT credentials file, by role.", []string{"role"}, nil)
	h.descTimeouts = prometheus.NewDesc("villagehub_broker_connect_timeouts_total",
		"MQTT connections closed for not finishing TLS and CONNECT within connect_timeout.", nil, nil)
	h.descAcceptErr = prometheus.NewDesc("villagehub_broker_accept_errors_total",
		"Failed accepts on the broker's listeners (each retried after a pause).", nil, nil)
	h.descPending = prometheus.NewDesc("villagehub_broker_pending_connections",
		"MQTT connections that have not sent CONNECT yet.", nil, nil)
	h.descRetain = prometheus.NewDesc("villagehub_broker_retain_refused_total",
		"PUBLISH packets whose retain flag was dropped, by reason (topic, size, count).", []string{"reason"}, nil)
}

// Describe implements prometheus.Collector.
func (h *Hook) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{h.descAuth, h.descACL, h.descRate, h.descRefused, h.descLimit, h.descCreds,
		h.descTimeouts, h.descAcceptErr, h.descPending, h.descRetain} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (h *Hook) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(h.descAuth, h.authFailures.Load())
	counter(h.descRate, h.rateLimited.Load())
	for i := range aclActions {
		counter(h.descACL, h.aclDenied[i].Load(), aclActions[i])
	}
	for i := range refusedReasons {
		counter(h.descRefused, h.refused[i].Load(), refusedReasons[i])
	}
	counter(h.descLimit, h.tooLarge.Load(), "max_packet_size")
	counter(h.descLimit, h.overInflight.Load(), "max_inflight")
	counter(h.descTimeouts, h.connectTimeouts.Load())
	counter(h.descAcceptErr, h.acceptErrors.Load())
	for i := range retainReasons {
		counter(h.descRetain, h.retainRefused[i].Load(), retainReasons[i])
	}
	ch <- prometheus.MustNewConstMetric(h.descPending, prometheus.GaugeValue, float64(h.PendingConnections()))
	roles := h.creds.Load().roles
	for _, r := range []Role{RoleDevice, RoleViewer, RoleHub, RoleFrigate} {
		ch <- prometheus.MustNewConstMetric(h.descCreds, prometheus.GaugeValue, float64(roles[r]), string(r))
	}
}
