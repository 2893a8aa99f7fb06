package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/protocols/profile"
)

func newProfileCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "profile",
		Short: "Show or change your profile (display name, status message, avatar)",
		Long: `profile is what your accepted contacts see of you: a display name, a
status message and an avatar. Contacts fetch it when it changes.

The status message is the same one "natter presence --message" sets: one
text, two ways to set it.

An avatar is a PNG or JPEG file of at most 1 MiB and 8192x8192 pixels (16
megapixels); natter checks it, scales it to fit 128x128 and re-encodes it
(dropping metadata such as the location a phone stores in photos).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var (
		name, status, avatarFile string
		clearStatus, clearAvatar bool
	)
	set := &cobra.Command{
		Use:   "set [--name N] [--status S | --clear-status] [--avatar FILE | --clear-avatar]",
		Short: "Change your display name, status message or avatar",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var req control.ProfileRequest
			f := cmd.Flags()
			switch {
			case clearStatus && f.Changed("status"):
				return usageError{errors.New("profile set: --status and --clear-status together")}
			case clearAvatar && f.Changed("avatar"):
				return usageError{errors.New("profile set: --avatar and --clear-avatar together")}
			}
			if f.Changed("name") {
				req.Name = &name
			}
			if f.Changed("status") {
				req.Status = &status
			}
			if clearStatus {
				empty := ""
				req.Status = &empty
			}
			req.ClearAvatar = clearAvatar
			if f.Changed("avatar") {
				data, err := readAvatarFile(avatarFile)
				if err != nil {
					return err
				}
				req.Avatar = data
			}
			if req.Name == nil && req.Status == nil && req.Avatar == nil && !req.ClearAvatar {
				return usageError{errors.New("profile set: nothing to change (see: natter profile set --help)")}
			}
			ctx, cancel := apiCtx(cmd)
			defer cancel()
			p, err := g.client().SetProfile(ctx, req)
			if err != nil {
				return g.apiErr(err)
			}
			fmt.Fprintf(g.stdout, "profile updated (version %d); connected contacts are told now, the others when they connect\n", p.Version)
			return nil
		},
	}
	f := set.Flags()
	f.StringVar(&name, "name", "", "display name (at most 64 bytes)")
	f.StringVar(&status, "status", "", "status message (at most 256 bytes; the same one presence shows)")
	f.BoolVar(&clearStatus, "clear-status", false, "remove the status message")
	f.StringVar(&avatarFile, "avatar", "", "PNG or JPEG file (at most 1 MiB)")
	f.BoolVar(&clearAvatar, "clear-avatar", false, "remove the avatar")

	var (
		asJSON    bool
		avatarOut string
	)
	show := &cobra.Command{
		Use:   "show [contact] [--json] [--avatar-out FILE]",
		Short: "Show your profile, or a contact's as last fetched",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := apiCtx(cmd)
			defer cancel()
			var (
				p   control.Profile
				err error
			)
			if len(args) == 1 {
				p, err = g.client().ContactProfile(ctx, args[0])
			} else {
				p, err = g.client().Profile(ctx)
			}
			if err != nil {
				return g.apiErr(err)
			}
			if avatarOut != "" {
				if len(p.Avatar) == 0 {
					return fmt.Errorf("%s has no avatar", label(p.Contact, p.PeerID))
				}
				if err := os.WriteFile(avatarOut, p.Avatar, 0o644); err != nil {
					return fmt.Errorf("write avatar: %w", err)
				}
			}
			p.Avatar = nil // --avatar-out writes it; never dump binary on a terminal
			if asJSON {
				return printJSON(g.stdout, p)
			}
			return printProfile(g.stdout, p)
		},
	}
	show.Flags().BoolVar(&asJSON, "json", false, "print JSON (without the image: use --avatar-out)")
	show.Flags().StringVar(&avatarOut, "avatar-out", "", "write the avatar image to FILE")
	cmd.AddCommand(set, show)
	return cmd
}

// readAvatarFile reads an avatar file, refusing one over the size limit
// before reading it.
func readAvatarFile(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("avatar: %w", err)
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("avatar: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("avatar: %s is not a regular file", path)
	}
	if fi.Size() > profile.MaxInputBytes {
		return nil, fmt.Errorf("avatar: %s is %d bytes; the limit is %d (1 MiB)", path, fi.Size(), profile.MaxInputBytes)
	}
	data, err := io.ReadAll(io.LimitReader(fh, profile.MaxInputBytes+1))
	if err != nil {
		return nil, fmt.Errorf("avatar: %w", err)
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("avatar: %s is empty", path)
	}
	return data, nil
}

func printProfile(w io.Writer, p control.Profile) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if p.Contact != "" {
		fmt.Fprintf(tw, "contact\t%s\n", p.Contact)
	}
	fmt.Fprintf(tw, "peer id\t%s\n", p.PeerID)
	fmt.Fprintf(tw, "name\t%s\n", orDash(p.Name))
	fmt.Fprintf(tw, "status\t%s\n", orDash(p.Status))
	av := "-"
	if p.AvatarBytes > 0 {
		av = fmt.Sprintf("%s %dx%d (%d bytes)", p.AvatarType, p.AvatarWidth, p.AvatarHeight, p.AvatarBytes)
	}
	fmt.Fprintf(tw, "avatar\t%s\n", av)
	fmt.Fprintf(tw, "version\t%d\n", p.Version)
	if !p.UpdatedAt.IsZero() {
		fmt.Fprintf(tw, "updated\t%s\n", fmtTime(p.UpdatedAt))
	}
	return tw.Flush()
}
