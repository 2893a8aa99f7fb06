package core

import (
	"errors"
	"fmt"
)

// The kinds of domain error. Feature packages wrap their errors with
// Invalid, NotFound, Conflict or Unavailable; the api package alone maps
// each kind to an HTTP status. The message shown to the user is the
// wrapped error's, unchanged.
var (
	// ErrInvalid: the request is malformed or not allowed as asked (400).
	ErrInvalid = errors.New("invalid request")
	// ErrNotFound: no such contact, transfer, name... (404).
	ErrNotFound = errors.New("not found")
	// ErrConflict: it exists already, or its state forbids this (409).
	ErrConflict = errors.New("conflict")
	// ErrUnavailable: a peer or server needed for it is not reachable
	// now; trying later may work (503).
	ErrUnavailable = errors.New("unavailable")
	// ErrUpstream: every server asked failed or refused (502).
	ErrUpstream = errors.New("upstream failed")
	// ErrDiskFull: the data dir's file system is full; nothing was
	// changed (507).
	ErrDiskFull = errors.New("disk full")
	// ErrClosed: the node is shutting down.
	ErrClosed = errors.New("node is shutting down")
)

// kindError is an error of one of the kinds above; its message is the
// cause's alone.
type kindError struct {
	kind  error
	cause error
}

func (e *kindError) Error() string   { return e.cause.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.cause} }

// Invalid marks err as ErrInvalid.
func Invalid(err error) error { return &kindError{ErrInvalid, err} }

// NotFound marks err as ErrNotFound.
func NotFound(err error) error { return &kindError{ErrNotFound, err} }

// Conflict marks err as ErrConflict.
func Conflict(err error) error { return &kindError{ErrConflict, err} }

// Unavailable marks err as ErrUnavailable.
func Unavailable(err error) error { return &kindError{ErrUnavailable, err} }

// Upstream marks err as ErrUpstream.
func Upstream(err error) error { return &kindError{ErrUpstream, err} }

// DiskFull marks err as ErrDiskFull.
func DiskFull(err error) error { return &kindError{ErrDiskFull, err} }

// Invalidf is Invalid(fmt.Errorf(format, args...)).
func Invalidf(format string, args ...any) error { return Invalid(fmt.Errorf(format, args...)) }
