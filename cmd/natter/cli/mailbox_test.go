package cli_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/control"
)

func TestMailboxCommand(t *testing.T) {
	_, dir := startNode(t, "alice")
	code, out, errOut := run(t, "mailbox", "--json", "--data-dir", dir)
	require.Equal(t, 0, code, errOut)
	var mb control.Mailbox
	require.NoError(t, json.Unmarshal([]byte(out), &mb))
	require.True(t, mb.Enabled)
	require.Empty(t, mb.Servers, "no rendezvous configured")
	require.Empty(t, mb.Contacts)

	code, out, errOut = run(t, "mailbox", "--data-dir", dir)
	require.Equal(t, 0, code, errOut)
	require.True(t, strings.HasPrefix(out, "RENDEZVOUS"), out)
	require.Contains(t, out, "MAY DEPOSIT UNTIL")

	code, _, errOut = run(t, "mailbox", "extra", "--data-dir", dir)
	require.Equal(t, 2, code, errOut)
}
