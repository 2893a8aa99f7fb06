package rendezvous

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/natterim/natter/protocols/names"
	"github.com/natterim/natter/protocols/wire"
)

// startNames serves the name directory (/natter/names/1.0.0) from the
// server's database, so that names survive restarts.
func (s *Server) startNames() error {
	if !s.cfg.Names.Enabled {
		return nil
	}
	c := s.cfg.Names
	limits := names.DefaultLimits()
	limits.InactiveRelease = c.InactiveRelease
	limits.MaxPerPeer = c.MaxPerPeer
	limits.MaxClockSkew = c.MaxClockSkew
	limits.Burst = c.RequestBurst
	limits.Rate = 1 / c.RequestInterval.Seconds()
	limits.SweepInterval = min(time.Hour, max(c.InactiveRelease/10, time.Second))
	svc, err := names.New(s.h,
		names.WithRegistry(s.db.Names()),
		names.WithLimits(limits),
		names.WithLogger(s.log),
		names.WithMetrics(wire.NewMetrics(s.reg)),
		names.WithRegisterer(s.reg))
	if err != nil {
		return err
	}
	s.names = svc
	return nil
}

// namesOf lists the names p holds, for the online list (nil if the
// directory is off or the database fails).
func (s *Server) namesOf(p peer.ID) []string {
	if s.names == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	ns, err := s.names.NamesOf(ctx, p)
	if err != nil {
		s.log.Warn("names of peer", "peer", p, "err", err)
		return nil
	}
	return ns
}
