package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
)

// MaxEventLine bounds one line of the event stream. The largest event is a
// message event carrying a 64 KiB text, which JSON escaping can grow up to
// six times; anything longer is not from a natter daemon.
const MaxEventLine = 1 << 20

// ErrEventTooLong is returned by EventStream.Next for a line over
// MaxEventLine.
var ErrEventTooLong = errors.New("control api: event line too long")

// EventStream reads GET /v1/events: one JSON Event per line. The daemon
// ends the stream when it stops or when the client falls too far behind;
// a client then reconnects and reloads what it shows.
type EventStream struct {
	body io.ReadCloser
	sc   *bufio.Scanner
	once sync.Once
}

// Events opens the daemon's event stream. The first event is EventHello.
// Close the stream (or cancel ctx) when done.
func (c *Client) Events(ctx context.Context) (*EventStream, error) {
	body, err := c.Stream(ctx, "/events")
	if err != nil {
		return nil, err
	}
	return NewEventStream(body), nil
}

// NewEventStream decodes an event stream read from r (closed by Close).
func NewEventStream(r io.ReadCloser) *EventStream {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), MaxEventLine)
	return &EventStream{body: r, sc: sc}
}

// Next returns the next event. Blank lines are skipped. At the end of the
// stream it returns io.EOF; a line that is not a JSON event is an error
// (the stream is then unusable: close it and reconnect).
func (s *EventStream) Next() (Event, error) {
	for s.sc.Scan() {
		line := s.sc.Bytes()
		if len(line) == 0 {
			continue
		}
		var e Event
		if err := json.Unmarshal(line, &e); err != nil {
			return Event{}, fmt.Errorf("control api: bad event line: %w", err)
		}
		if e.Type == "" {
			return Event{}, errors.New("control api: event without a type")
		}
		return e, nil
	}
	if err := s.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return Event{}, ErrEventTooLong
		}
		return Event{}, fmt.Errorf("control api: read events: %w", err)
	}
	return Event{}, io.EOF
}

// Close ends the stream. It is safe to call more than once and
// concurrently with Next (which then returns an error).
func (s *EventStream) Close() error {
	var err error
	s.once.Do(func() { err = s.body.Close() })
	return err
}
