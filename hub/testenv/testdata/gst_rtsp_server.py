#!/usr/bin/python3
"""A real third-party RTSP server for villagehub's tests: GStreamer's
gst-rtsp-server (Debian 12: 1.22) through PyGObject.

Usage: gst_rtsp_server.py PORT MOUNTS_JSON

MOUNTS_JSON is a JSON list of {"path": "/h264", "launch": "( ... )",
"user": "...", "password": "..."} objects; user/password (optional) protect
that mount with digest authentication. Run with /usr/bin/python3: another
python3 earlier on PATH may lack the gi module.

It prints "READY <port> <gstreamer version>" on stdout once it listens, and
serves until stdin closes or it receives SIGTERM.
"""
import json
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def main():
    port, mounts = sys.argv[1], json.loads(sys.argv[2])
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)

    # A server with protected mounts authenticates every request. Clients
    # without credentials then get the default token: if any mount is
    # open, a token with the role "anonymous", which open mounts allow and
    # protected ones do not (gst-rtsp-server answers those 404, not 401);
    # if every mount is protected, no token, so they get a 401 challenge as
    # from a camera. PyGObject needs .new() for tokens and permissions: the
    # plain constructors build objects the server ignores.
    auth = None
    if any(m.get("user") for m in mounts):
        auth = GstRtspServer.RTSPAuth()
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        if not all(m.get("user") for m in mounts):
            anonymous = GstRtspServer.RTSPToken.new()
            anonymous.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "anonymous")
            auth.set_default_token(anonymous)
        server.set_auth(auth)

    for m in mounts:
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(m["launch"])
        # A pipeline per client: clients that DESCRIBE a shared media while
        # another is still preparing it get 503 Service Unavailable.
        factory.set_shared(False)
        if auth is None:
            server.get_mount_points().add_factory(m["path"], factory)
            continue
        role = "anonymous"
        if m.get("user"):
            role = "user-" + m["user"]
            token = GstRtspServer.RTSPToken.new()
            token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, role)
            auth.add_digest(m["user"], m["password"], token)
        perms = GstRtspServer.RTSPPermissions.new()
        perms.add_permission_for_role(role, GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, True)
        perms.add_permission_for_role(role, GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, True)
        factory.set_permissions(perms)
        server.get_mount_points().add_factory(m["path"], factory)

    if server.attach(None) == 0:
        print("ERROR cannot listen on 127.0.0.1:%s" % port, flush=True)
        sys.exit(1)
    loop = GLib.MainLoop()

    def quit(*_):
        loop.quit()
        return False

    GLib.io_add_watch(GLib.IOChannel.unix_new(sys.stdin.fileno()), GLib.PRIORITY_DEFAULT,
                      GLib.IOCondition.HUP | GLib.IOCondition.IN | GLib.IOCondition.ERR, quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, quit)
    print("READY %s %s" % (server.get_bound_port(), Gst.version_string()), flush=True)
    loop.run()


if __name__ == "__main__":
    main()
