package store_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/node/store"
	"github.com/natterim/natter/protocols/chat"
)

const crashChildEnv = "NATTER_STORE_CRASH_CHILD"

// TestCrashChild is the child of TestSIGKILLLosesNothing: it writes to the
// store as fast as it can and prints each id once its transaction returned.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("runs only as the child of TestSIGKILLLosesNothing")
	}
	ctx := context.Background()
	s, err := store.Open(ctx, filepath.Join(dir, store.FileName))
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	bob, _ := peer.Decode(strings.TrimSpace(os.Getenv(crashChildEnv + "_PEER")))
	w := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		var err error
		id := chat.NewID()
		if i%2 == 0 {
			_, err = s.Enqueue(ctx, []store.NewOutgoing{{ID: id, Peer: bob, Kind: store.KindText, Text: fmt.Sprint("out ", i), SentAt: time.Now()}})
		} else {
			_, err = s.StoreIncoming(ctx, bob, []store.Incoming{{ID: id, Kind: store.KindText, Text: fmt.Sprint("in ", i), Seq: uint64(i), SentAt: time.Now()}})
		}
		if err != nil {
			fmt.Fprintln(w, "ERR", err)
			w.Flush()
			os.Exit(1)
		}
		fmt.Fprintln(w, id)
		w.Flush()
	}
}

// A process SIGKILLed while writing loses nothing whose write returned and
// leaves a database that opens and checks clean.
func TestSIGKILLLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	dir := t.TempDir()
	bob := randPeer(t)
	var acked []string
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, crashChildEnv+"_PEER="+bob.String())
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		sc := bufio.NewScanner(out)
		killAt := 200 + 137*round
		n := 0
		for sc.Scan() {
			line := sc.Text()
			require.False(t, strings.HasPrefix(line, "ERR"), line)
			if _, err := chat.ParseID(line); err != nil {
				continue // test framework output
			}
			acked = append(acked, line)
			n++
			if n == killAt {
				require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
			}
		}
		_ = cmd.Wait()
		require.GreaterOrEqual(t, n, killAt)
	}

	ctx := context.Background()
	s, err := store.Open(ctx, filepath.Join(dir, store.FileName))
	require.NoError(t, err)
	defer s.Close()
	var ok string
	require.NoError(t, s.DB().QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&ok))
	require.Equal(t, "ok", ok)
	for _, line := range acked {
		id, _ := chat.ParseID(line)
		_, err := s.MessageByID(ctx, id)
		require.NoError(t, err, "message %s was acknowledged before the kill", line)
	}
	h, err := s.History(ctx, bob, nil, 1_000_000)
	require.NoError(t, err)
	seen := map[chat.MsgID]bool{}
	for _, m := range h {
		require.False(t, seen[m.ID], "stored twice")
		seen[m.ID] = true
	}
}
