package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// NginxBinary is where Debian's nginx-light installs nginx.
const NginxBinary = "/usr/sbin/nginx"

// NginxOptions configures a test nginx.
type NginxOptions struct {
	// Upstreams are the load-balanced backends (host:port), round robin
	// unless Balance is set.
	Upstreams []string
	// Balance is an extra line in the upstream block, e.g.
	// "hash $remote_addr consistent;" for sticky clients.
	Balance string
	// Extra lines inside the server block (e.g. a bare "location =
	// /nginx-302 { return 302 ...; }" for a benchmark anchor).
	Extra string
	// KeepFailed leaves a backend that failed in the rotation (max_fails=0)
	// instead of taking it out for 2 s, so that every request it gets is
	// retried on the next one.
	KeepFailed bool
}

// Nginx is a real nginx (Debian's nginx-light) run as one foreground
// process with its own config, pid file and temp paths in a temporary
// directory, on a free loopback port.
type Nginx struct {
	Addr string
	Dir  string
	proc *Process
}

// StartNginx starts nginx in front of opts.Upstreams and waits until it
// accepts connections. It passes each request on with X-Forwarded-For,
// X-Request-ID and X-Request-Start (kept when it retries), and retries a backend that refuses or drops the connection before
// answering on the next one (proxy_next_upstream error), as a production
// load balancer in front of several gateway instances would.
func StartNginx(t testing.TB, opts NginxOptions) *Nginx {
	t.Helper()
	if _, err := os.Stat(NginxBinary); err != nil {
		t.Fatalf("testenv: nginx is not installed (%v); apt-get install -y nginx-light", err)
	}
	dir := t.TempDir()
	n := &Nginx{Addr: FreeAddr(t), Dir: dir}
	var servers strings.Builder
	fails := "max_fails=1 fail_timeout=2s"
	if opts.KeepFailed {
		fails = "max_fails=0"
	}
	for _, u := range opts.Upstreams {
		fmt.Fprintf(&servers, "    server %s %s;\n", u, fails)
	}
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
error_log stderr warn;
pid %[1]s/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  upstream gateway {
%[2]s    %[3]s
    keepalive 64;
  }
  server {
    listen %[4]s;
    location / {
      proxy_pass http://gateway;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Request-ID $request_id;
      proxy_set_header X-Request-Start "t=${msec}";
      proxy_next_upstream error timeout;
      proxy_connect_timeout 2s;
    }
    %[5]s
  }
}
`, dir, servers.String(), opts.Balance, n.Addr, opts.Extra)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(NginxBinary, "-p", dir, "-c", path, "-e", "stderr")
	n.proc = startCmd(t, cmd)
	if err := waitTCP(n.Addr, 10*time.Second); err != nil {
		t.Fatalf("testenv: nginx did not start: %v\n%s", err, n.proc.Output())
	}
	return n
}

// URL is http://<addr>.
func (n *Nginx) URL() string { return "http://" + n.Addr }

// Output is what nginx printed (its error log).
func (n *Nginx) Output() string { return n.proc.Output() }

// startCmd starts cmd with its output captured, killed at the end of the
// test.
func startCmd(t testing.TB, cmd *exec.Cmd) *Process {
	p := &Process{t: t, out: &syncBuffer{}, done: make(chan struct{}), Cmd: cmd}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: starting %s: %v", cmd.Path, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-p.done:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-p.done
			}
		}
	})
	return p
}
