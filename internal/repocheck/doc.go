// Package repocheck holds tests about the repository itself rather than
// about any one package: every package says why it exists (a package
// comment), and imports point one way (cmd → node | rendezvous →
// protocols → go-libp2p; only cmd reads flags and config files). It has
// no code of its own.
package repocheck
