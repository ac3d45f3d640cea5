package auth_test

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	mochiauth "github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/crypto/bcrypt"

	"villagehub/hub/auth"
	"villagehub/hub/testenv"
	"villagehub/hub/tlscert"
)

// benchPassword is the device's password in the last benchHook.
var benchPassword string

// benchHook is a hook with a device and a viewer, installed on a server
// that is not serving (the checks need no network).
func benchHook(b *testing.B) (h *auth.Hook, srv *mqtt.Server, dev, viewer *mqtt.Client) {
	b.Helper()
	dir := b.TempDir()
	path := filepath.Join(dir, auth.DefaultCredentialsFile)
	_, benchPassword = addUserB(b, path, "camera", "tan-ngu-2", "gate")
	addUserB(b, path, "viewer", "ha")
	// A rate no benchmark reaches: the token bucket's cost is measured,
	// not its waiting.
	h, err := auth.New(auth.Config{DataDir: dir, PublishRate: 1e9, PublishBurst: 1 << 20, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	srv = mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := h.Install(srv); err != nil {
		b.Fatal(err)
	}
	dev = srv.NewClient(nil, "tcp", "gate", false)
	dev.Properties.Username = []byte("tan-ngu-2/camera/gate")
	viewer = srv.NewClient(nil, "tcp", "ha", false)
	viewer.Properties.Username = []byte("_ha")
	return h, srv, dev, viewer
}

// BenchmarkMessageChecks is the per-message cost of access control as the
// broker pays it, through mochi's hook dispatcher: the rate-limit bucket
// when a PUBLISH is read, the publish ACL check, and the read check for
// one subscriber it is delivered to. "without" is mochi's AllowHook, which
// the hub used before (the same calls, always allowed).
func BenchmarkMessageChecks(b *testing.B) {
	const topic = "village/tan-ngu-2/camera/gate/motion"
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, TopicName: topic}
	run := func(b *testing.B, hook mqtt.Hook, topic string, want bool) {
		_, _, dev, viewer := benchHook(b)
		hooks := &mqtt.Hooks{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		if err := hooks.Add(hook, nil); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := hooks.OnPacketRead(dev, pk); err != nil {
				b.Fatal(err)
			}
			if hooks.OnACLCheck(dev, topic, true) != want {
				b.Fatal("wrong verdict")
			}
			if want && !hooks.OnACLCheck(viewer, topic, false) {
				b.Fatal("delivery denied")
			}
		}
	}
	b.Run("without", func(b *testing.B) { run(b, new(mochiauth.AllowHook), topic, true) })
	b.Run("with", func(b *testing.B) {
		h, _, _, _ := benchHook(b)
		run(b, h, topic, true)
	})
	b.Run("with/denied", func(b *testing.B) {
		h, _, _, _ := benchHook(b)
		run(b, h, "village/tan-ngu-2/camera/market/motion", false)
	})
}

// BenchmarkConnectAuth is the cost of checking a password at connect:
// a bcrypt run the first time (and for every wrong password or unknown
// user), an HMAC once the password has been verified ("cached").
func BenchmarkConnectAuth(b *testing.B) {
	h, _, _, _ := benchHook(b)
	b.Run("bcrypt", func(b *testing.B) {
		hash, _ := bcrypt.GenerateFromPassword([]byte("password-of-32-characters-abcdef"), auth.BcryptCost)
		for b.Loop() {
			if bcrypt.CompareHashAndPassword(hash, []byte("password-of-32-characters-abcdef")) != nil {
				b.Fatal("mismatch")
			}
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/check")
	})
	fixed := func(user string) func(int) (string, string) {
		return func(int) (string, string) { return user, "192.0.2.1" }
	}
	b.Run("cached", func(b *testing.B) {
		connectBench(b, h, fixed("tan-ngu-2/camera/gate"), benchPassword, true)
	})
	// Each guess from a new address for a new username: every one costs
	// a bcrypt run (the failed-login limit never applies).
	b.Run("unknown-user", func(b *testing.B) {
		connectBench(b, h, func(i int) (string, string) {
			return fmt.Sprintf("tan-ngu-2/camera/nobody%d", i), fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
		}, "wrong", false)
	})
	// Guessing one device's password: past its 10 failed logins, a guess
	// is refused without a bcrypt run.
	b.Run("wrong-password-limited", func(b *testing.B) {
		connectBench(b, h, fixed("tan-ngu-2/camera/gate"), "wrong", false)
	})
}

// addrConn is just enough of a net.Conn for the hook to read the
// client's address.
type addrConn struct {
	net.Conn
	addr net.Addr
}

func (c addrConn) RemoteAddr() net.Addr { return c.addr }

func connectBench(b *testing.B, h *auth.Hook, who func(i int) (user, addr string), pw string, want bool) {
	b.Helper()
	srv := mqtt.New(&mqtt.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	for i := 0; b.Loop(); i++ {
		user, addr := who(i)
		cl := srv.NewClient(nil, "tcp", "c", false)
		cl.Net.Conn = addrConn{addr: &net.TCPAddr{IP: net.ParseIP(addr), Port: 1883}}
		pk := packets.Packet{Connect: packets.ConnectParams{Username: []byte(user), Password: []byte(pw), UsernameFlag: true, PasswordFlag: true}}
		if ok := h.OnConnectAuthenticate(cl, pk); ok != want {
			b.Fatalf("authenticate = %v", ok)
		}
		h.OnDisconnect(cl, nil, true) // give back its connection slot
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e6/float64(b.N), "ms/connect")
}

// BenchmarkPublishQoS1 is the whole path over loopback: a device
// publishing QoS 1 with 100 messages in flight to a broker with the auth
// hook and a viewer subscribed, against the same broker with AllowHook.
func BenchmarkPublishQoS1(b *testing.B) {
	for _, withAuth := range []bool{false, true} {
		name := "without"
		if withAuth {
			name = "with"
		}
		b.Run(name, func(b *testing.B) {
			dir := b.TempDir()
			path := filepath.Join(dir, auth.DefaultCredentialsFile)
			devUser, devPW := addUserB(b, path, "camera", "s", "gate")
			vUser, vPW := addUserB(b, path, "viewer", "ha")
			srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if withAuth {
				h, err := auth.New(auth.Config{DataDir: dir, PublishRate: 1e9, PublishBurst: 1 << 20, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
				if err != nil {
					b.Fatal(err)
				}
				if err := h.Install(srv); err != nil {
					b.Fatal(err)
				}
			} else if err := srv.AddHook(new(mochiauth.AllowHook), nil); err != nil {
				b.Fatal(err)
			}
			addr := testenv.FreeAddr(b)
			if err := srv.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})); err != nil {
				b.Fatal(err)
			}
			if err := srv.Serve(); err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			received := make(chan struct{}, 1<<16)
			viewer := benchClient(b, "tcp://"+addr, "ha", vUser, vPW)
			viewer.Subscribe("village/#", 1, func(paho.Client, paho.Message) { received <- struct{}{} }).Wait()
			dev := benchClient(b, "tcp://"+addr, "gate", devUser, devPW)
			const window = 100
			toks := make(chan paho.Token, window)
			done := make(chan struct{})
			go func() {
				for tok := range toks {
					tok.Wait()
				}
				close(done)
			}()
			b.ResetTimer()
			go func() {
				for i := 0; i < b.N; i++ {
					<-received
				}
			}()
			for i := 0; i < b.N; i++ {
				toks <- dev.Publish("village/s/camera/gate/motion", 1, false, "ON")
			}
			close(toks)
			<-done
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

func addUserB(b *testing.B, path string, args ...string) (string, string) {
	b.Helper()
	out, errb := new(bytes.Buffer), new(bytes.Buffer)
	if code := auth.DeviceCommand(append([]string{"add"}, args...), out, errb, path); code != 0 {
		b.Fatalf("device add: %s", errb)
	}
	m := passwordLine.FindStringSubmatch(out.String())
	u := usernameLine.FindStringSubmatch(out.String())
	return u[1], m[1]
}

func benchClient(b *testing.B, url, id, user, pw string) paho.Client {
	b.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(id).SetUsername(user).SetPassword(pw).
		SetProtocolVersion(4).SetAutoReconnect(false).SetMaxResumePubInFlight(100))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		b.Fatalf("connect %s: %v", id, tok.Error())
	}
	b.Cleanup(func() { c.Disconnect(10) })
	return c
}

// BenchmarkTLSHandshake is the embedded broker's TLS handshake rate with
// the ECDSA P-256 certificate `villagehub cert` makes: "tls" is the
// handshake alone, "mqtt" adds an MQTT CONNECT with a (cached) device
// password and its CONNACK. No session resumption: every device
// connection is a full handshake.
func BenchmarkTLSHandshake(b *testing.B) {
	dir := b.TempDir()
	ca := testenv.NewTestCA(b, dir)
	certFile, keyFile := filepath.Join(dir, "s.crt"), filepath.Join(dir, "s.key")
	ca.Issue(b, certFile, keyFile, "127.0.0.1")
	rl, err := tlscert.New(tlscert.Config{CertFile: certFile, KeyFile: keyFile, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(dir, auth.DefaultCredentialsFile)
	user, pw := addUserB(b, path, "camera", "s", "gate")
	h, err := auth.New(auth.Config{DataDir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := h.Install(srv); err != nil {
		b.Fatal(err)
	}
	addr := testenv.FreeAddr(b)
	if err := srv.AddListener(listeners.NewTCP(listeners.Config{ID: "tls", Address: addr, TLSConfig: rl.TLSConfig()})); err != nil {
		b.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	cfg := ca.ClientConfig("127.0.0.1")
	b.Run("tls", func(b *testing.B) {
		for b.Loop() {
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
			if err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
	})
	b.Run("mqtt", func(b *testing.B) {
		connect := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4,
			Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: "gate",
				UsernameFlag: true, Username: []byte(user), PasswordFlag: true, Password: []byte(pw)}}
		var buf bytes.Buffer
		if err := connect.ConnectEncode(&buf); err != nil {
			b.Fatal(err)
		}
		raw := buf.Bytes()
		ack := make([]byte, 4)
		for i := 0; b.Loop(); i++ {
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.Write(raw); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(c, ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
				b.Fatalf("CONNACK %x: %v", ack, err)
			}
			c.Close()
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "connects/s")
	})
}
