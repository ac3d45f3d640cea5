package app

import (
	"bytes"
	"strings"

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

// codeURL is what /qr/<board>.png|svg prints: the gateway's address when
// configured. An unreachable printed address is logged loudly at start.
func (h *Hub) codeURL(public string) func(string) (string, error) {
	cfg := h.cfg.Load()
	var warn bytes.Buffer
	fn := gateway.PrintedURLs(public, cfg.GatewayLink(), &warn)
	for _, line := range strings.Split(strings.TrimSpace(warn.String()), "\n") {
		if line != "" {
			h.log.Warn(line)
		}
	}
	return fn
}

// GatewayConnected reports whether the link to the province's broker is
// up (false without a gateway: block).
func (h *Hub) GatewayConnected() bool { return h.gwLink != nil && h.gwLink.Connected() }
