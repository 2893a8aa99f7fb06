package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
)

// MaxVarintLen is the longest length prefix accepted: 4 bytes encode
// lengths up to 256 MiB, far more than any natter frame may hold.
const MaxVarintLen = 4

var (
	// ErrTooLarge is returned when a frame is larger than the limit given
	// by the caller, on read (before allocating) or on write (before
	// sending).
	ErrTooLarge = errors.New("frame too large")
	// ErrMalformed is returned for a length prefix that is not a valid
	// varint or a payload that does not decode as the expected message.
	ErrMalformed = errors.New("malformed frame")
)

// WriteMsg marshals m and writes it as one frame. It refuses, without
// writing anything, a message whose encoding is larger than max.
func WriteMsg(w io.Writer, m proto.Message, max int) error {
	size := proto.Size(m)
	if size > max {
		return fmt.Errorf("write %d bytes (max %d): %w", size, max, ErrTooLarge)
	}
	buf := make([]byte, binary.MaxVarintLen64, binary.MaxVarintLen64+size)
	n := binary.PutUvarint(buf, uint64(size))
	buf = buf[:n]
	buf, err := proto.MarshalOptions{}.MarshalAppend(buf, m)
	if err != nil {
		return fmt.Errorf("marshal: %w", err)
	}
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("write frame: %w", err)
	}
	return nil
}

// ReadMsg reads exactly one frame from r into m. A frame longer than max is
// refused before its payload is read. Errors wrap ErrTooLarge, ErrMalformed,
// or the underlying read error (io.EOF when the stream ended cleanly before
// a frame began, io.ErrUnexpectedEOF when it ended inside one).
func ReadMsg(r io.Reader, m proto.Message, max int) error {
	size, err := readUvarint(r)
	if err != nil {
		return err
	}
	if size > uint64(max) {
		return fmt.Errorf("read %d bytes (max %d): %w", size, max, ErrTooLarge)
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("read frame payload: %w", err)
	}
	if err := proto.Unmarshal(buf, m); err != nil {
		return fmt.Errorf("decode %T: %w: %v", m, ErrMalformed, err)
	}
	return nil
}

// readUvarint reads a varint one byte at a time so that it never consumes
// bytes beyond the prefix.
func readUvarint(r io.Reader) (uint64, error) {
	var (
		x   uint64
		s   uint
		one [1]byte
	)
	for i := 0; i < MaxVarintLen; i++ {
		if _, err := io.ReadFull(r, one[:]); err != nil {
			if i > 0 && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			if errors.Is(err, io.EOF) {
				return 0, err // clean end of stream between frames
			}
			return 0, fmt.Errorf("read frame length: %w", err)
		}
		b := one[0]
		if b < 0x80 {
			if i > 0 && b == 0 {
				return 0, fmt.Errorf("non-minimal length prefix: %w", ErrMalformed)
			}
			return x | uint64(b)<<s, nil
		}
		x |= uint64(b&0x7f) << s
		s += 7
	}
	return 0, fmt.Errorf("length prefix longer than %d bytes: %w", MaxVarintLen, ErrMalformed)
}

// ValidateText checks a short human text field from the network (a note, a
// name, a status message): valid UTF-8, no control characters (no
// terminal escapes, no line breaks), at most max bytes. Errors wrap
// ErrInvalid and name the field.
func ValidateText(what, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%s is longer than %d bytes: %w", what, max, ErrInvalid)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not valid UTF-8: %w", what, ErrInvalid)
	}
	if strings.ContainsFunc(s, unicode.IsControl) {
		return fmt.Errorf("%s contains control characters: %w", what, ErrInvalid)
	}
	return nil
}
