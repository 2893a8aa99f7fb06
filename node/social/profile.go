package social

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/natterim/natter/node/control"
	"github.com/natterim/natter/node/core"
	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/presence"
	"github.com/natterim/natter/protocols/profile"
	"github.com/natterim/natter/protocols/wire"
)

// Profiles (protocols/profile). Ours is the 'self' row of the profiles
// table; its status message is the one presence carries, so `natter
// presence --message` and `natter profile set --status` set the same text
// (and both bump the profile's version). Every change pushes presence
// again, and presence pushes carry the version: a contact whose cached
// copy is older fetches the profile. Contacts' profiles are cached in the
// same table and only ever move forward (SaveContactProfile); everything
// fetched is validated first (profile.Fetch), avatar included.

// profiles tracks fetches of contacts' profiles.
type profiles struct {
	mu sync.Mutex // guards the following fields
	// announced is the newest version each contact pushed; inflight the
	// contacts being fetched from.
	announced map[peer.ID]uint64
	inflight  map[peer.ID]bool
}

func (ps *profiles) init() {
	ps.announced, ps.inflight = map[peer.ID]uint64{}, map[peer.ID]bool{}
}

// profileOwner serves our profile to accepted contacts (profile.Owner).
type profileOwner struct{ s *Service }

func (o profileOwner) Allow(ctx context.Context, p peer.ID) bool { return o.s.IsAccepted(ctx, p) }

func (o profileOwner) Profile(ctx context.Context) (profile.Profile, error) {
	p, err := o.s.store.OwnProfile(ctx)
	if err != nil {
		return profile.Profile{}, err
	}
	return profile.Profile{Version: p.Version, Name: p.Name, Status: p.Status, Avatar: p.Avatar, AvatarType: p.AvatarType}, nil
}

// profileAnnounced is called for every presence push: if the contact's
// profile is newer than our copy, fetch it (once at a time per contact).
func (s *Service) profileAnnounced(p peer.ID, version uint64) {
	if version == 0 {
		return
	}
	s.profs.mu.Lock()
	if version > s.profs.announced[p] {
		s.profs.announced[p] = version
	}
	busy := s.profs.inflight[p]
	s.profs.mu.Unlock()
	if busy {
		return // the fetch in flight re-checks when it is done
	}
	cached, err := s.store.ContactProfile(s.life.Context(), p)
	if err == nil && cached.Version >= version || err != nil && !errors.Is(err, store.ErrNotFound) {
		return
	}
	s.profs.mu.Lock()
	if s.profs.inflight[p] {
		s.profs.mu.Unlock()
		return
	}
	s.profs.inflight[p] = true
	s.profs.mu.Unlock()
	s.goRun(func(ctx context.Context) { s.fetchProfiles(ctx, p) })
}

// fetchProfiles fetches p's profile until our copy is as new as the
// newest version it announced (or a fetch fails: the next push retries).
func (s *Service) fetchProfiles(ctx context.Context, p peer.ID) {
	defer func() {
		s.profs.mu.Lock()
		delete(s.profs.inflight, p)
		s.profs.mu.Unlock()
	}()
	for ctx.Err() == nil {
		got, err := s.fetchProfile(ctx, p)
		if err != nil {
			return
		}
		s.profs.mu.Lock()
		want := s.profs.announced[p]
		s.profs.mu.Unlock()
		if got >= want {
			return
		}
	}
}

// fetchProfile fetches and caches p's profile and returns its version.
func (s *Service) fetchProfile(ctx context.Context, p peer.ID) (uint64, error) {
	prof, err := s.net.FetchProfile(ctx, p)
	if err != nil {
		if ctx.Err() == nil {
			s.metrics.StreamError("profile", err)
			s.log.Debug("profile fetch failed", "peer", p.ShortString(), "err", err)
		}
		return 0, err
	}
	saved, err := s.store.SaveContactProfile(ctx, p, store.Profile{Version: prof.Version, Name: prof.Name, Status: prof.Status, Avatar: prof.Avatar, AvatarType: prof.AvatarType})
	if err != nil {
		s.log.Warn("save contact profile", "peer", p.ShortString(), "err", err)
		return 0, err
	}
	if saved {
		name := ""
		if c, err := s.store.ContactByPeer(ctx, p); err == nil {
			name = c.Name
		}
		s.log.Info("contact profile updated", "peer", p.ShortString(), "name", name, "version", prof.Version, "avatar_bytes", len(prof.Avatar))
		s.pub.Publish(control.Event{Type: control.EventProfile, PeerID: p.String(), Name: name, Version: prof.Version})
	}
	return prof.Version, nil
}

// OwnProfile returns our profile.
func (s *Service) OwnProfile(ctx context.Context) (control.Profile, error) {
	p, err := s.store.OwnProfile(ctx)
	if err != nil {
		return control.Profile{}, err
	}
	return toAPIProfile(s.net.ID(), "", p), nil
}

// ContactProfile returns a contact's profile as last fetched.
func (s *Service) ContactProfile(ctx context.Context, ref string) (control.Profile, error) {
	c, err := s.FindContact(ctx, ref)
	if err != nil {
		return control.Profile{}, err
	}
	p, err := s.store.ContactProfile(ctx, c.PeerID)
	if errors.Is(err, store.ErrNotFound) {
		return control.Profile{}, core.NotFound(fmt.Errorf("no profile of %s yet: it is fetched from accepted contacts when they are online", c.Label()))
	}
	if err != nil {
		return control.Profile{}, err
	}
	return toAPIProfile(c.PeerID, c.Name, p), nil
}

// SetProfile changes our profile and tells connected contacts (a presence
// push carrying the new version).
func (s *Service) SetProfile(ctx context.Context, req control.ProfileRequest) (control.Profile, error) {
	var (
		avatar []byte
		typ    string
	)
	if req.Name != nil {
		name := strings.TrimSpace(*req.Name)
		if name == "" {
			return control.Profile{}, core.Invalid(errors.New("the display name cannot be empty"))
		}
		if err := wire.ValidateText("display name", name, profile.MaxNameBytes); err != nil {
			return control.Profile{}, core.Invalid(err)
		}
		req.Name = &name
	}
	if req.Status != nil {
		if err := presence.ValidateMessage(*req.Status); err != nil {
			return control.Profile{}, core.Invalid(err)
		}
	}
	switch {
	case len(req.Avatar) > 0 && req.ClearAvatar:
		return control.Profile{}, core.Invalid(errors.New("an avatar and clear_avatar together"))
	case len(req.Avatar) > 0:
		var err error
		if avatar, typ, err = profile.PrepareAvatar(req.Avatar); err != nil {
			return control.Profile{}, core.Invalid(err)
		}
	case req.Name == nil && req.Status == nil && !req.ClearAvatar:
		return control.Profile{}, core.Invalid(errors.New("nothing to change: give a name, a status, an avatar or clear_avatar"))
	}
	p, err := s.store.SetOwnProfile(ctx, func(p *store.Profile) {
		if req.Name != nil {
			p.Name = *req.Name
		}
		if req.Status != nil {
			p.Status = *req.Status
		}
		if avatar != nil {
			p.Avatar, p.AvatarType = avatar, typ
		}
		if req.ClearAvatar {
			p.Avatar, p.AvatarType = nil, ""
		}
	})
	if err != nil {
		return control.Profile{}, err
	}
	s.log.Info("profile changed", "version", p.Version, "avatar_bytes", len(p.Avatar))
	s.self.mu.Lock()
	s.self.set = s.now()
	s.self.mu.Unlock()
	s.broadcastPresence()
	s.pub.Publish(control.Event{Type: control.EventProfile, PeerID: s.net.ID().String(), Version: p.Version})
	return toAPIProfile(s.net.ID(), "", p), nil
}

func toAPIProfile(id peer.ID, contactName string, p store.Profile) control.Profile {
	out := control.Profile{PeerID: id.String(), Contact: contactName, Name: p.Name, Status: p.Status, Version: p.Version,
		Avatar: p.Avatar, AvatarType: p.AvatarType, AvatarBytes: len(p.Avatar), UpdatedAt: p.UpdatedAt}
	if len(p.Avatar) > 0 {
		if cfg, _, err := image.DecodeConfig(bytes.NewReader(p.Avatar)); err == nil {
			out.AvatarWidth, out.AvatarHeight = cfg.Width, cfg.Height
		}
	}
	if p.Version == 0 {
		out.UpdatedAt = time.Time{}
	}
	return out
}
