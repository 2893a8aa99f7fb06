package node

import "github.com/natterim/natter/node/control"

// publish sends an event to every control-API subscriber.
func (n *Node) publish(e control.Event) { n.events.Publish(e) }
