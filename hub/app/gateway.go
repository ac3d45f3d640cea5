package app

import (
	"bytes"
	"strings"

	"villagehub/hub/config"
	"villagehub/hub/gateway"
)

// The village side of the QR gateway (docs/gateway.md): the link
// publishes this hub's boards' targets to the province broker and counts
// the scans gateways send down through the printed-scan path.

func (h *Hub) newGatewayLink() error {
	cfg := h.cfg.Load()
	if !cfg.Gateway.Enabled() {
		return nil
	}
	l, err := gateway.NewLink(gateway.LinkOptions{
		Config: cfg.GatewayLink(), Prefix: cfg.TopicPrefix, HubID: cfg.HubID, HubPublicURL: cfg.HTTP.PublicURL,
		Boards: h.gatewayBoards, Sink: h.state, DataDir: cfg.DataDir, Logger: h.log,
	})
	h.gwLink = l
	return err
}

// gatewayBoards are the configured boards (after a reload, the new ones).
func (h *Hub) gatewayBoards() []gateway.LinkBoard {
	var out []gateway.LinkBoard
	for _, b := range *h.boards.Load() {
		out = append(out, gateway.LinkBoard{ID: b.ID, Site: b.Site, Name: b.Name, TargetURL: b.TargetURL})
	}
	return out
}

func (h *Hub) refreshGateway() {
	if h.gwLink != nil {
		h.gwLink.Refresh()
	}
}

// printedURLs is what /qr/<board>.png|svg and the dashboard's sheets print
// for cfg: the gateway's address when configured, else the hub's public URL
// (its listen address when http.public_url is unset). An unreachable
// printed address is logged loudly, at start and at a reload that changes
// it. public is the hub's base URL as used.
func (h *Hub) printedURLs(cfg *config.Config) (public string, fn func(string) (string, error)) {
	public = cfg.HTTP.PublicURL
	if public == "" {
		public = "http://" + cfg.HTTP.Addr
		h.log.Warn("http.public_url is not set; printed QR codes will point at " + public + ", which phones may not reach")
	}
	var warn bytes.Buffer
	fn = gateway.PrintedURLs(public, cfg.GatewayLink(), &warn)
	for _, line := range strings.Split(strings.TrimSpace(warn.String()), "\n") {
		if line != "" {
			h.log.Warn(line)
		}
	}
	return public, fn
}

// GatewayConnected reports whether the link to the province's broker is
// up (false without a gateway: block).
func (h *Hub) GatewayConnected() bool { return h.gwLink != nil && h.gwLink.Connected() }
