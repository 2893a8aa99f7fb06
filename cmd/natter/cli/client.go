package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/natterim/natter/node/control"
)

// apiTimeout bounds one control API call of a CLI command.
const apiTimeout = 30 * time.Second

func apiCtx(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return context.WithTimeout(cmd.Context(), apiTimeout)
}

func newIDCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "id [--json]",
		Short: "Print this node's peer ID, then an invite for `contacts add`",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := apiCtx(cmd)
			defer cancel()
			id, err := g.client().ID(ctx)
			if err != nil {
				return g.apiErr(err)
			}
			if asJSON {
				return printJSON(g.stdout, id)
			}
			fmt.Fprintln(g.stdout, id.PeerID)
			fmt.Fprintln(g.stdout, id.Invite)
			return nil
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}

func newContactsCmd(g *globals) *cobra.Command {
	var (
		name, note string
		asJSON     bool
	)
	cmd := &cobra.Command{
		Use:   "contacts",
		Short: "Add, list and remove contacts",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return listContacts(cmd, g, asJSON) },
	}
	add := &cobra.Command{
		Use:   "add <peerID|invite|name> [--name NAME] [--note TEXT]",
		Short: "Send a friend request (by peer ID, invite, or a name registered on the rendezvous)",
		Long: `add sends a friend request: the contact shows as pending_out until the
other side runs natter contacts accept (then accepted) or reject (then it is
gone). Until then nothing is exchanged but the request. If that peer had
already asked you (pending_in), add accepts its request.

A name is looked up in the directory of every connected rendezvous server
(see natter names); the servers must agree, and the answer is verified
(signed by the key it names). The contact remembers the name: if it ever
points to another key, natter warns and keeps the key you added.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := apiCtx(cmd)
			defer cancel()
			c, err := g.client().AddContact(ctx, control.AddContactRequest{Target: args[0], Name: name, Note: note})
			if err != nil {
				return g.apiErr(err)
			}
			if asJSON {
				return printJSON(g.stdout, c)
			}
			if c.State == control.StateAccepted {
				fmt.Fprintf(g.stdout, "%s is now a contact (accepted their request)\n", label(c.Name, c.PeerID))
				return nil
			}
			fmt.Fprintf(g.stdout, "friend request to %s pending until they accept it (natter contacts list shows pending_out)\n", label(c.Name, c.PeerID))
			return nil
		},
	}
	add.Flags().StringVar(&name, "name", "", "local name for the contact (default: the name in the invite)")
	add.Flags().StringVar(&note, "note", "", "a short note sent with the request")
	jsonFlag(add, &asJSON)
	var acceptName string
	accept := &cobra.Command{
		Use:   "accept <contact> [--name NAME]",
		Short: "Accept a friend request (see: natter contacts list)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := apiCtx(cmd)
			defer cancel()
			c, err := g.client().AcceptContact(ctx, args[0], acceptName)
			if err != nil {
				return g.apiErr(err)
			}
			if asJSON {
				return printJSON(g.stdout, c)
			}
			fmt.Fprintf(g.stdout, "accepted %s\n", label(c.Name, c.PeerID))
			return nil
		},
	}
	accept.Flags().StringVar(&acceptName, "name", "", "local name for the contact")
	jsonFlag(accept, &asJSON)
	reject := &cobra.Command{
		Use:   "reject <contact>",
		Short: "Reject a friend request (it is removed; the requester is told)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := apiCtx(cmd)
			defer cancel()
			c, err := g.client().RejectContact(ctx, args[0])
			if err != nil {
				return g.apiErr(err)
			}
			if asJSON {
				return printJSON(g.stdout, c)
			}
			fmt.Fprintf(g.stdout, "rejected %s\n", label(c.Name, c.PeerID))
			return nil
		},
	}
	block := &cobra.Command{
		Use:   "block <contact|peerID>",
		Short: "Block a contact or any peer: its connections are refused (undo: contacts remove)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := apiCtx(cmd)
			defer cancel()
			c, err := g.client().BlockContact(ctx, args[0])
			if err != nil {
				return g.apiErr(err)
			}
			if asJSON {
				return printJSON(g.stdout, c)
			}
			fmt.Fprintf(g.stdout, "blocked %s\n", label(c.Name, c.PeerID))
			return nil
		},
	}
	list := &cobra.Command{
		Use:   "list [--json]",
		Short: "List contacts",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return listContacts(cmd, g, asJSON) },
	}
	jsonFlag(list, &asJSON)
	remove := &cobra.Command{
		Use:     "remove <contact>",
		Aliases: []string{"rm"},
		Short:   "Remove a contact (by name or peer ID)",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := apiCtx(cmd)
			defer cancel()
			if asJSON {
				// The daemon answers with the removed contact.
				var c control.Contact
				if err := g.client().Do(ctx, http.MethodDelete, "/contacts/"+control.PathEscape(args[0]), nil, &c); err != nil {
					return g.apiErr(err)
				}
				return printJSON(g.stdout, c)
			}
			if err := g.client().RemoveContact(ctx, args[0]); err != nil {
				return g.apiErr(err)
			}
			fmt.Fprintf(g.stdout, "removed %s\n", args[0])
			return nil
		},
	}
	for _, c := range []*cobra.Command{reject, block, remove} {
		jsonFlag(c, &asJSON)
	}
	jsonFlag(cmd, &asJSON)
	cmd.AddCommand(add, list, remove, accept, reject, block, newReceiptsCmd(g))
	return cmd
}

func listContacts(cmd *cobra.Command, g *globals, asJSON bool) error {
	ctx, cancel := apiCtx(cmd)
	defer cancel()
	cs, err := g.client().Contacts(ctx)
	if err != nil {
		return g.apiErr(err)
	}
	if asJSON {
		return printJSON(g.stdout, cs)
	}
	if len(cs) == 0 {
		fmt.Fprintln(g.stdout, "no contacts yet; add one with: natter contacts add <peerID|invite|name>")
		return nil
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPEER ID\tSTATE\tADDED\tNOTE")
	for _, c := range cs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", orDash(c.Name), c.PeerID, c.State, c.AddedAt.Local().Format("2006-01-02 15:04"), orDash(c.Note))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, c := range cs {
		if c.Warning != "" {
			fmt.Fprintf(g.stdout, "warning: %s: %s\n", label(c.Name, c.PeerID), c.Warning)
		}
	}
	return nil
}

func newStatusCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [--json]",
		Short: "Show the node, its rendezvous links and the path to every contact",
		Long: `status shows reachability, NAT port mapping, the rendezvous links and,
for every contact, whether it is connected and over which path: direct (hole
punched or reachable), relayed (through the rendezvous relay) or none.

With --json the keys peer_id, reachability, nat_mapping, rendezvous and
contacts[].{peer_id,name,connected,path,remote_addr,rtt_ms} are a stable
contract for scripts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := apiCtx(cmd)
			defer cancel()
			st, err := g.client().Status(ctx)
			if err != nil {
				return g.apiErr(err)
			}
			if asJSON {
				return printJSON(g.stdout, st)
			}
			return printStatus(g.stdout, st)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (stable keys, for scripts)")
	return cmd
}

func printStatus(w io.Writer, st control.Status) error {
	nat := "off"
	if st.NATMapping.Enabled {
		nat = "no UPnP/NAT-PMP gateway found"
		if st.NATMapping.Found {
			nat = "gateway found, mapped: " + orDash(strings.Join(st.NATMapping.Mapped, " "))
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "peer id\t%s\n", st.PeerID)
	fmt.Fprintf(tw, "name\t%s\n", orDash(st.Name))
	pres := st.Presence
	if st.AutoAway {
		pres += " (away: idle)"
	}
	if st.StatusMessage != "" {
		pres += " \u2014 " + st.StatusMessage
	}
	fmt.Fprintf(tw, "presence\t%s\n", pres)
	fmt.Fprintf(tw, "reachability\t%s\n", st.Reachability)
	fmt.Fprintf(tw, "nat mapping\t%s\n", nat)
	fmt.Fprintf(tw, "observed as\t%s\n", orDash(strings.Join(st.ObservedAddrs, " ")))
	fmt.Fprintf(tw, "up since\t%s\n", st.StartedAt.Local().Format(time.DateTime))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if len(st.Rendezvous) == 0 {
		fmt.Fprintln(w, "rendezvous: none configured (contacts can only be reached at known addresses)")
	} else {
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "RENDEZVOUS\tCONNECTED\tTRANSPORTS\tRESERVATION\tREGISTERED\tRTT\tERROR")
		for _, r := range st.Rendezvous {
			rsv := r.Reservation
			if !r.ReservationExpires.IsZero() {
				rsv += " until " + r.ReservationExpires.Local().Format("15:04:05")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.PeerID, yesNo(r.Connected), orDash(strings.Join(r.Transports, ",")),
				rsv, yesNo(r.Registered), fmtRTT(r.RTTMillis), orDash(r.LastError))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	if len(st.Contacts) == 0 {
		fmt.Fprintln(w, "contacts: none yet (natter contacts add <peerID|invite|name>)")
		return nil
	}
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CONTACT\tPEER ID\tSTATE\tPRESENCE\tPATH\tREMOTE\tRTT\tUNREAD\tQUEUED\tERROR")
	for _, c := range st.Contacts {
		pres := c.Presence
		if c.StatusMessage != "" {
			pres += " (" + c.StatusMessage + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", orDash(c.Name), c.PeerID, c.State, pres, c.Path, orDash(c.RemoteAddr), fmtRTT(c.RTTMillis),
			c.Unread, c.Queued, orDash(c.LastError))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, c := range st.Contacts {
		if c.Warning != "" {
			fmt.Fprintf(w, "warning: %s: %s\n", label(c.Name, c.PeerID), c.Warning)
		}
	}
	return nil
}

func newPingCmd(g *globals) *cobra.Command {
	var (
		count  int
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "ping <contact> [--count N]",
		Short: "Measure the round trip to a contact over the current path",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if count < 1 || count > 1000 {
				return usageError{errors.New("ping: --count must be 1..1000")}
			}
			c := g.client()
			for i := range count {
				ctx, cancel := apiCtx(cmd)
				r, err := c.Ping(ctx, args[0])
				cancel()
				if err != nil {
					return g.apiErr(err)
				}
				if asJSON {
					// One object per line, one line per ping.
					if err := json.NewEncoder(g.stdout).Encode(r); err != nil {
						return err
					}
				} else {
					fmt.Fprintf(g.stdout, "%s: rtt %s via %s (%s)\n", args[0], fmtRTT(r.RTTMillis), r.Path, r.RemoteAddr)
				}
				if i < count-1 {
					select {
					case <-cmd.Context().Done():
						return nil
					case <-time.After(time.Second):
					}
				}
			}
			return nil
		},
	}
	cmd.Flags().IntVarP(&count, "count", "c", 1, "number of pings, one per second")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per ping, one per line (for scripts)")
	return cmd
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func label(name, id string) string {
	if name != "" {
		return name + " (" + id + ")"
	}
	return id
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func fmtRTT(ms float64) string {
	if ms <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f ms", ms)
}
