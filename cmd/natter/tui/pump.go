package tui

import (
	"context"
	"errors"
	"io"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/natterim/natter/node/control"
)

// eventMsg is one event from the daemon's stream.
type eventMsg struct{ e control.Event }

// streamDownMsg says the event stream is gone (err) and when the pump
// tries again.
type streamDownMsg struct {
	err     error
	retryIn time.Duration
}

// Reconnect backoff of the event stream.
const (
	minRetry = 250 * time.Millisecond
	maxRetry = 5 * time.Second
)

// pump keeps the daemon's event stream open and forwards its events to
// send until ctx ends. When the stream drops it reports streamDownMsg and
// reconnects with backoff; every new stream starts with a hello event,
// which makes the model reload what it shows.
func pump(ctx context.Context, api API, send func(tea.Msg)) {
	retry := minRetry
	for ctx.Err() == nil {
		err := readStream(ctx, api, send, func() { retry = minRetry })
		if ctx.Err() != nil {
			return
		}
		send(streamDownMsg{err: err, retryIn: retry})
		t := time.NewTimer(retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		retry = min(2*retry, maxRetry)
	}
}

// readStream forwards one stream's events until it ends; connected is
// called once its hello arrived.
func readStream(ctx context.Context, api API, send func(tea.Msg), connected func()) error {
	s, err := api.Events(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	// Close the stream when ctx ends, so that a Next blocked on a quiet
	// stream returns.
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	for {
		e, err := s.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("the daemon ended the event stream")
			}
			return err
		}
		if e.Type == control.EventHello {
			connected()
		}
		send(eventMsg{e})
	}
}
