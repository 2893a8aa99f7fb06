package node

// quietClose fits a protocol service whose Close returns an error (the
// protocol kit's style) into n.svcs, whose Close returns nothing: the
// services' Close errors are always nil today. The lead removes it when
// n.svcs holds io.Closers.
type quietClose struct{ c interface{ Close() error } }

func (q quietClose) Close() { _ = q.c.Close() }
