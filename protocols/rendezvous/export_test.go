package rendezvous

import (
	"bytes"
	"io"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/natterim/natter/protocols/rendezvous/pb"
)

// MaxResponseSize exports the response limit to the tests.
const MaxResponseSize = maxResponseSize

// NewOffline returns a Service with no host and no GC loop: the registry
// and request handling only (for fuzzing).
func NewOffline(opts ...Option) *Service { return newService(opts...) }

// HandleFrames runs data through the server's request path as if remote
// had sent it on one stream: read and check each frame, then handle it. It
// returns the responses written before the first error (which would reset
// the stream).
func HandleFrames(s *Service, remote peer.ID, data []byte) ([]*pb.Message, error) {
	r := bytes.NewReader(data)
	var out []*pb.Message
	for {
		req, err := readRequest(r, s.maxRequest)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		resp, err := s.handle(origin{peer: remote}, req)
		if err != nil {
			return out, err
		}
		if resp != nil {
			out = append(out, resp)
		}
	}
}
