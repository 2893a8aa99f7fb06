package social

import "time"

// Due exposes the renewal rule to the black-box tests: whether a name in
// state (tried at tried, on the connection that opened at stSession)
// needs a new register on a server whose connection opened at session.
func (s *Service) Due(state string, tried, stSession, session, now time.Time) bool {
	return s.due(nameState{state: state, tried: tried, session: stSession}, session, now)
}
