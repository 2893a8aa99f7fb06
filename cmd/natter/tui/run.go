package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
)

// Run shows the UI on the terminal (in, out) until the user quits or ctx
// ends. It uses the alternate screen, so the terminal is left as it was
// found; colours follow what out supports (none for TERM=dumb or when
// NO_COLOR is set).
func Run(parent context.Context, api API, in io.Reader, out io.Writer, o Options) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	if o.Renderer == nil {
		o.Renderer = lipgloss.NewRenderer(out)
	}
	if o.Bell == nil {
		o.Bell = out
	}
	m := New(ctx, api, o)
	p := tea.NewProgram(m,
		tea.WithContext(ctx),
		tea.WithInput(in),
		tea.WithOutput(out),
		tea.WithAltScreen(),
		tea.WithReportFocus(),
	)
	var wg sync.WaitGroup
	wg.Go(func() { pump(ctx, api, p.Send) })
	final, err := p.Run()
	cancel()
	wg.Wait()

	// Tell the contact we stopped typing, rather than leave them waiting
	// for the notice to time out.
	if fm, ok := final.(*Model); ok && fm.StopTyping() != "" {
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		_, _ = api.Typing(sctx, fm.StopTyping(), false)
		scancel()
	}
	switch {
	case err == nil, errors.Is(err, tea.ErrInterrupted):
		return nil
	case errors.Is(err, tea.ErrProgramKilled) && parent.Err() != nil:
		return nil // SIGTERM or the caller's context: a normal end
	}
	return fmt.Errorf("terminal ui: %w", err)
}
