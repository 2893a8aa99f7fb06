// Command natter-rendezvous is natter's public rendezvous server: relay,
// registry, AutoNAT, DHT and the list of online peers, for a cloud VM. See
// the rendezvous package and configs/rendezvous.yaml.
package main

import (
	"os"

	"github.com/natterim/natter/cmd/natter-rendezvous/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr)) }
