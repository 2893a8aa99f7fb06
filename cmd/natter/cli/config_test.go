package cli_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/natterim/natter/cmd/internal/cfgload"
	"github.com/natterim/natter/node"
)

// configs/node.yaml documents every key with its default value.
func TestExampleNodeConfigIsTheDefaults(t *testing.T) {
	var cfg node.Config
	require.NoError(t, cfgload.Load("../../../configs/node.yaml", node.DefaultConfig(), &cfg, nil, nil))
	// "[]" in YAML is an empty list where the default is a nil one.
	require.Empty(t, cfg.Rendezvous)
	cfg.Rendezvous = nil
	require.Equal(t, node.DefaultConfig(), cfg)
}
