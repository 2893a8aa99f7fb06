package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/protocols/chat"
	"github.com/natterim/natter/protocols/file"
)

func newSendCmd(g *globals) *cobra.Command {
	var (
		wait    bool
		timeout time.Duration
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "send <contact> [text...]",
		Short: "Send a message (text from the arguments, or from stdin); prints its id",
		Long: `send queues a message for a contact and prints its id as soon as the
message is safely on disk: natter delivers it when the contact is reachable,
direct or through the relay, and keeps trying across restarts.

With --wait it waits until the contact's node has stored the message and
prints how it travelled (direct, relayed, or mailbox: the contact was
offline and took it from its mailbox on the rendezvous); if that does not
happen within --timeout, send exits with status 1 and says where the
message is: still queued, or stored in the contact's mailbox (offline
delivery: it is delivered when the contact comes back). Either way natter
keeps trying. A message that failed (it expired in the mailbox) also exits
with status 1, with the reason.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			text, err := messageText(cmd.InOrStdin(), args[1:])
			if err != nil {
				return err
			}
			req := control.SendRequest{Text: text}
			ctx, cancel := apiCtx(cmd)
			if wait {
				if timeout <= 0 || timeout > 10*time.Minute {
					cancel()
					return usageError{errors.New("send: --timeout must be in (0, 10m]")}
				}
				req.Wait = timeout.String()
				cancel()
				ctx, cancel = context.WithTimeout(cmd.Context(), timeout+apiTimeout)
			}
			defer cancel()
			m, err := g.client().Send(ctx, args[0], req)
			if err != nil {
				return g.apiErr(err)
			}
			if asJSON {
				if err := printJSON(g.stdout, m); err != nil {
					return err
				}
				if wait && m.Status != control.StatusDelivered && m.Status != control.StatusRead {
					return fmt.Errorf("not delivered within %s (%s); it stays queued and natter keeps trying", timeout, m.Status)
				}
				return nil
			}
			return reportSent(g, m, wait, timeout)
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until delivered and say whether it went direct or relayed")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "with --wait: how long to wait")
	jsonFlag(cmd, &asJSON)
	return cmd
}

func reportSent(g *globals, m control.Message, wait bool, timeout time.Duration) error {
	if !wait {
		fmt.Fprintln(g.stdout, m.ID)
		return nil
	}
	switch m.Status {
	case control.StatusDelivered, control.StatusRead:
		fmt.Fprintf(g.stdout, "%s %s (%s)\n", m.ID, m.Status, orDash(m.Via))
		return nil
	case control.StatusFailed:
		fmt.Fprintln(g.stdout, m.ID)
		return fmt.Errorf("not delivered: %s", orDash(m.Reason))
	case control.StatusStored:
		fmt.Fprintln(g.stdout, m.ID)
		return fmt.Errorf("not delivered within %s: the contact is offline; the message is stored in its mailbox on the rendezvous and is delivered when it comes back", timeout)
	}
	fmt.Fprintln(g.stdout, m.ID)
	return fmt.Errorf("not delivered within %s (%s); it stays queued and natter keeps trying", timeout, m.Status)
}

// messageText is the text of the arguments, or of stdin if there are none.
func messageText(stdin io.Reader, args []string) (string, error) {
	var text string
	if len(args) > 0 {
		text = strings.Join(args, " ")
	} else {
		if f, ok := stdin.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				return "", usageError{errors.New("send: no text (give it as arguments or on stdin)")}
			}
		}
		b, err := io.ReadAll(io.LimitReader(stdin, chat.MaxTextBytes+2))
		if err != nil {
			return "", fmt.Errorf("read stdin: %w", err)
		}
		text = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	}
	switch {
	case !utf8.ValidString(text):
		return "", errors.New("cannot send: text is not valid UTF-8")
	case strings.TrimSpace(text) == "":
		return "", usageError{errors.New("send: the text is empty")}
	case len(text) > chat.MaxTextBytes:
		return "", fmt.Errorf("cannot send: text is longer than %d bytes", chat.MaxTextBytes)
	}
	return text, nil
}

func newNudgeCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "nudge <contact>",
		Short: "Nudge a contact: their window shakes",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := apiCtx(cmd)
			defer cancel()
			m, err := g.client().Send(ctx, args[0], control.SendRequest{Kind: control.KindNudge})
			if err != nil {
				return g.apiErr(err)
			}
			if asJSON {
				return printJSON(g.stdout, m)
			}
			fmt.Fprintln(g.stdout, m.ID)
			return nil
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}

func newHistoryCmd(g *globals) *cobra.Command {
	var (
		limit  int
		before string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "history <contact> [--limit N] [--before ID] [--json]",
		Short: "Show the conversation with a contact, oldest first",
		Long: `history prints the newest --limit messages of the conversation (or those
just before the message --before ID), oldest first.

With --json it prints a list of objects whose keys id, from, text, sent_at
and status (queued, sent, stored, delivered, read, failed) are a stable
contract, plus peer_id, contact, direction (in/out), kind (text/nudge),
seq, received_at, via (direct/relayed/mailbox) and reason (why a failed
message failed).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 1 || limit > 10000 {
				return usageError{errors.New("history: --limit must be 1..10000")}
			}
			if before != "" {
				if _, err := chat.ParseID(before); err != nil {
					return usageError{fmt.Errorf("history: --before: %w", err)}
				}
			}
			ctx, cancel := apiCtx(cmd)
			defer cancel()
			ms, err := g.client().History(ctx, args[0], before, limit)
			if err != nil {
				return g.apiErr(err)
			}
			if asJSON {
				return printJSON(g.stdout, ms)
			}
			if len(ms) == 0 {
				fmt.Fprintln(g.stdout, "no messages")
				return nil
			}
			printMessages(g.stdout, ms, false)
			return nil
		},
	}
	cmd.Flags().IntVarP(&limit, "limit", "n", 50, "number of messages")
	cmd.Flags().StringVar(&before, "before", "", "show the messages before this message id")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (stable keys, for scripts)")
	return cmd
}

func newSearchCmd(g *globals) *cobra.Command {
	var (
		contact string
		limit   int
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "search <words...> [--contact C] [--json]",
		Short: "Search all history (every word must match; word* matches a prefix)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 1 || limit > 10000 {
				return usageError{errors.New("search: --limit must be 1..10000")}
			}
			ctx, cancel := apiCtx(cmd)
			defer cancel()
			ms, err := g.client().Search(ctx, strings.Join(args, " "), contact, limit)
			if err != nil {
				return g.apiErr(err)
			}
			if asJSON {
				return printJSON(g.stdout, ms)
			}
			if len(ms) == 0 {
				fmt.Fprintln(g.stdout, "no matches")
				return nil
			}
			printMessages(g.stdout, ms, true)
			return nil
		},
	}
	cmd.Flags().StringVar(&contact, "contact", "", "only the conversation with this contact")
	cmd.Flags().IntVarP(&limit, "limit", "n", 50, "at most this many (the newest) matches")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (same keys as history --json)")
	return cmd
}

func newReadCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "read <contact>",
		Short: "Mark a conversation read (tells the contact, unless read receipts are off)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := apiCtx(cmd)
			defer cancel()
			r, err := g.client().MarkRead(ctx, args[0])
			if err != nil {
				return g.apiErr(err)
			}
			if asJSON {
				return printJSON(g.stdout, r)
			}
			note := "read receipts off: the contact is not told"
			if r.Receipts {
				note = "a read receipt is on its way"
			}
			if r.Marked == 0 {
				note = "nothing unread"
			}
			fmt.Fprintf(g.stdout, "marked %d read (%s)\n", r.Marked, note)
			return nil
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}

func newReceiptsCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "receipts <contact> on|off|default",
		Short: "Send read receipts to this contact or not (default: the chat.read_receipts setting)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch args[1] {
			case "on", "off", "default":
			default:
				return usageError{fmt.Errorf("contacts receipts: %q is not on, off or default", args[1])}
			}
			ctx, cancel := apiCtx(cmd)
			defer cancel()
			c, err := g.client().SetReceipts(ctx, args[0], args[1])
			if err != nil {
				return g.apiErr(err)
			}
			if asJSON {
				return printJSON(g.stdout, c)
			}
			fmt.Fprintf(g.stdout, "read receipts for %s: %s\n", label(c.Name, c.PeerID), args[1])
			return nil
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}

// printMessages prints messages one per line (continuation lines of a
// multi-line text indented), with their status for ours.
func printMessages(w io.Writer, ms []control.Message, withContact bool) {
	for _, m := range ms {
		who := orDash(m.Contact)
		if m.Contact == "" {
			who = shortID(m.PeerID)
		}
		from, to := who, "me"
		if m.Direction == "out" {
			from, to = "me", who
		}
		ts := m.SentAt.Local().Format("2006-01-02 15:04:05")
		prefix := ts + "  " + from
		if withContact {
			prefix = ts + "  " + from + " -> " + to
		}
		var status string
		if m.Direction == "out" {
			status = "  [" + m.Status
			if m.Via != "" {
				status += ", " + m.Via
			}
			if m.Reason != "" {
				status += ": " + sanitize(m.Reason)
			}
			status += "]"
		}
		if m.Kind == control.KindNudge {
			fmt.Fprintf(w, "%s  *** nudge ***%s\n", prefix, status)
			continue
		}
		if m.Kind == control.KindFile && m.File != nil {
			line := fmt.Sprintf("[file] %s (%s, %s)", m.File.Name, file.FormatSize(m.File.Size), m.File.State)
			if m.Text != "" {
				line += " " + m.Text
			}
			fmt.Fprintf(w, "%s: %s%s\n", prefix, sanitize(line), status)
			continue
		}
		text := strings.ReplaceAll(m.Text, "\n", "\n"+strings.Repeat(" ", len(prefix)+2))
		fmt.Fprintf(w, "%s: %s%s\n", prefix, sanitize(text), status)
	}
}

// sanitize keeps a peer's text from driving the terminal: control
// characters other than newline and tab are shown escaped.
func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 0x20 && r != '\n' && r != '\t' || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			fmt.Fprintf(&b, "\\x%02x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:6] + "…" + id[len(id)-6:]
	}
	return id
}
