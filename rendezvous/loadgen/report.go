package loadgen

import (
	"fmt"
	"io"
	"strings"
)

// WriteTable prints the report as Markdown tables: one row per level and
// server, then the ratios natter/stock at the levels both ran.
func (r *Report) WriteTable(w io.Writer) {
	c := r.Config
	fmt.Fprintf(w, "nodes: %s over %d per source address; heartbeat %s; registrations/lookups at %d/s for %s, then %d workers; %d relayed pairs, %d x %d B in flight, %s\n\n",
		strings.Join(c.Transports, "+"), c.NodesPerIP, c.Heartbeat, c.Rate, c.RateDuration, c.Workers, c.Pairs, c.Window, c.MsgSize, c.ChatDuration)
	fmt.Fprintln(w, "| server | nodes | online | rsvp | reg | conns | RSS/node | heap/node | idle CPU per 1k | reg p50/p99 ms at rate | reg max/s (p99) | reg CPU | lookup p50/p99 ms at rate | lookup max/s (p99) | lookup CPU | relayed msgs/s (p50/p99 ms) | msg CPU | load |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, l := range append(append([]Level{}, r.Levels...), r.Baseline...) {
		fmt.Fprintf(w, "| %s | %d | %d | %d | %d | %d | %s | %s | %.1f%% | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			l.Server, l.Nodes, l.Online, l.Reservations, l.Registrations, l.Connections,
			kib(l.RSSPerNode), kib(l.HeapPerNode), 100*l.IdleCPUPer1k,
			atRate(l.Register), maxRate(l.RegisterMax), cpu(l.Register), atRate(l.Lookup), maxRate(l.LookupMax), cpu(l.Lookup),
			chat(l), cpu(l.Chat), l.LoadAvg)
	}
	if len(r.Baseline) > 0 {
		fmt.Fprintln(w, "\nratios natter / stock (same run):")
		fmt.Fprintln(w, "\n| nodes | held with rsvp+reg | RSS/node | idle CPU per 1k | reg p99 | lookup p99 | relayed msgs/s |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
		for _, b := range r.Baseline {
			for _, l := range r.Levels {
				if l.Nodes != b.Nodes {
					continue
				}
				fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s | %s |\n", l.Nodes,
					ratio(float64(min(l.Reservations, l.Registrations)), float64(min(b.Reservations, b.Registrations))),
					ratio(float64(l.RSSPerNode), float64(b.RSSPerNode)),
					ratio(l.IdleCPUPer1k, b.IdleCPUPer1k),
					ratio(l.Register.P99ms, b.Register.P99ms),
					ratio(l.Lookup.P99ms, b.Lookup.P99ms),
					ratio(l.Chat.PerSec, b.Chat.PerSec))
			}
		}
	}
	for _, l := range append(append([]Level{}, r.Levels...), r.Baseline...) {
		fmt.Fprintf(w, "\n%s at %d nodes: ramp %.1fs, %.0f heartbeats/s while idle (%.0f due)", l.Server, l.Nodes, l.RampSeconds, l.IdleHeartbeats, float64(l.Online)/c.Heartbeat.Seconds())
		if len(l.RampFailures) > 0 {
			fmt.Fprintf(w, ", ramp failures %v", l.RampFailures)
		}
		if len(l.Background) > 0 {
			fmt.Fprintf(w, ", background errors %v", l.Background)
		}
		for _, x := range []struct {
			name string
			l    Latency
		}{{"register", l.Register}, {"lookup", l.Lookup}, {"register (closed loop)", l.RegisterMax}, {"lookup (closed loop)", l.LookupMax}} {
			if x.l.Errors > 0 {
				fmt.Fprintf(w, ", %s: %d failed", x.name, x.l.Errors)
			}
			if x.l.NotFound > 0 {
				fmt.Fprintf(w, ", %s: %d not found (the server had dropped the node)", x.name, x.l.NotFound)
			}
			if x.l.Behind > 0 {
				fmt.Fprintf(w, ", %s: %d not sent (%d outstanding)", x.name, x.l.Behind, maxInFlight)
			}
		}
		fmt.Fprintf(w, "; cores used by server/nodes: register %.2f/%.2f, lookup %.2f/%.2f, chat %.2f/%.2f",
			l.Register.ServerCores, l.Register.LoadgenCores, l.Lookup.ServerCores, l.Lookup.LoadgenCores, l.Chat.ServerCores, l.Chat.LoadgenCores)
		if l.Chat.Errors+l.ChatCut > 0 {
			fmt.Fprintf(w, ", chat: %d pairs failed to set up, %d of %d relayed links cut", l.Chat.Errors, l.ChatCut, l.ChatPairs)
		}
	}
	if r.Limit != "" {
		fmt.Fprintf(w, "\n\nstopped early: %s", r.Limit)
	}
	fmt.Fprintln(w)
}

func kib(b int64) string { return fmt.Sprintf("%.0f KiB", float64(b)/1024) }

func atRate(l Latency) string {
	if l.Count == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f/%.1f (%.0f/s)", l.P50ms, l.P99ms, l.PerSec)
}

func cpu(l Latency) string {
	if l.Count == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f µs", l.ServerCPUus)
}

func maxRate(l Latency) string {
	if l.Count == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f (%.1f)", l.PerSec, l.P99ms)
}

func chat(l Level) string {
	if l.Chat.Count == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f (%.1f/%.1f)", l.Chat.PerSec, l.Chat.P50ms, l.Chat.P99ms)
}

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}
