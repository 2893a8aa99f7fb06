// Command natter is the natter node: a peer-to-peer messenger daemon for a
// home computer behind NAT, and the CLI that drives it. See README.md.
package main

import (
	"os"

	"github.com/natterim/natter/cmd/natter/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr)) }
