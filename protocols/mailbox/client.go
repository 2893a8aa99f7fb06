package mailbox

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/natterim/natter/protocols/mailbox/pb"
	"github.com/natterim/natter/protocols/wire"
)

// DefaultClientTimeout bounds one client exchange when the context has no
// earlier deadline.
const DefaultClientTimeout = 30 * time.Second

// RefusedError is a request the server refused as a whole.
type RefusedError struct {
	Code   Code
	Reason string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("mailbox refused the request (%s): %s", CodeName(e.Code), e.Reason)
}

// Client makes requests to mailbox servers and pushes deposit tokens to
// contacts. For a mailbox request it dials the server if it is not
// connected (its addresses must be in the peerstore); a token push uses
// an existing connection only. It holds no state of its own beyond its
// options, so it needs no Close: each request ends with its context or
// its timeout.
type Client struct {
	h host.Host
	// The wire.Call options of the two protocols: a mailbox request may
	// dial the server (its addresses are in the peerstore); a token push
	// uses an existing connection only, relayed ones included. Both are
	// bounded by the client's timeout within the context's own deadline,
	// and their stream is reset as soon as the context ends.
	mailbox, token wire.CallOptions
}

// NewClient returns a client on h. It reads WithTimeout (each exchange;
// default DefaultClientTimeout).
func NewClient(h host.Host, opts ...Option) *Client {
	cfg := newConfig(opts)
	if cfg.timeout <= 0 {
		cfg.timeout = DefaultClientTimeout
	}
	return &Client{
		h: h,
		mailbox: wire.CallOptions{
			Service:     ServiceName,
			RequestMax:  MaxFrameSize,
			ResponseMax: MaxFrameSize,
			Timeout:     cfg.timeout,
		},
		token: wire.CallOptions{
			Service:      TokenServiceName,
			AllowLimited: true,
			NoDial:       true,
			RequestMax:   tokenFrameSize,
			ResponseMax:  tokenFrameSize,
			Timeout:      cfg.timeout,
		},
	}
}

// exchange writes one mailbox request and reads its response.
func (c *Client) exchange(ctx context.Context, server peer.ID, req *pb.Request) (*pb.Response, error) {
	var resp pb.Response
	if err := wire.Call(ctx, c.h, server, ID, c.mailbox, req, &resp); err != nil {
		return nil, fmt.Errorf("mailbox request: %w", err)
	}
	if err := checkResponse(&resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// PushToken gives token (issued by us to peer to) to it over an existing
// connection (relayed ones included; it does not dial) and waits for the
// ack.
func (c *Client) PushToken(ctx context.Context, to peer.ID, token []byte) error {
	if len(token) == 0 || len(token) > MaxTokenSize {
		return fmt.Errorf("token of %d bytes (1..%d)", len(token), MaxTokenSize)
	}
	if err := wire.Call(ctx, c.h, to, TokenID, c.token, &pb.TokenPush{Token: token}, &pb.TokenAck{}); err != nil {
		return fmt.Errorf("token push: %w", err)
	}
	return nil
}

// checkResponse validates what every response must satisfy and turns a
// refusal into a *RefusedError.
func checkResponse(r *pb.Response) error {
	if r.GetCode() < CodeOK || r.GetCode() > CodeUnavailable {
		return fmt.Errorf("response code %d: %w", r.GetCode(), wire.ErrInvalid)
	}
	if err := wire.ValidateText("reason", r.GetReason(), MaxReasonBytes); err != nil {
		return err
	}
	if r.GetCode() != CodeOK {
		return &RefusedError{Code: r.GetCode(), Reason: r.GetReason()}
	}
	return nil
}

// Deposit puts items in recipient's mailbox on server, presenting token
// (issued by recipient to us). It returns one code per item (OK and
// DUPLICATE mean stored), or a *RefusedError if the whole deposit was
// refused.
func (c *Client) Deposit(ctx context.Context, server, recipient peer.ID, token []byte, items []Item) ([]Code, error) {
	if len(items) == 0 || len(items) > MaxItems {
		return nil, fmt.Errorf("deposit of %d boxes (1..%d)", len(items), MaxItems)
	}
	d := &pb.Deposit{Recipient: []byte(recipient), Token: token}
	for _, it := range items {
		d.Items = append(d.Items, &pb.Item{Id: it.ID[:], Box: it.Box})
	}
	resp, err := c.exchange(ctx, server, &pb.Request{Body: &pb.Request_Deposit{Deposit: d}})
	if err != nil {
		return nil, err
	}
	return depositResults(resp, items)
}

// depositResults checks a deposit response against the items sent.
func depositResults(resp *pb.Response, items []Item) ([]Code, error) {
	rs := resp.GetResults()
	if len(rs) != len(items) {
		return nil, fmt.Errorf("%d results for %d boxes: %w", len(rs), len(items), errUnexpected)
	}
	out := make([]Code, len(rs))
	for i, r := range rs {
		if string(r.GetId()) != string(items[i].ID[:]) {
			return nil, fmt.Errorf("result %d names another box: %w", i, errUnexpected)
		}
		if r.GetCode() < CodeOK || r.GetCode() > CodeUnavailable {
			return nil, fmt.Errorf("result code %d: %w", r.GetCode(), wire.ErrInvalid)
		}
		out[i] = r.GetCode()
	}
	return out, nil
}

// Fetch reads up to limit boxes of our own mailbox on server with a
// position above after (0: from the start), oldest first; more reports
// whether others follow the last one.
func (c *Client) Fetch(ctx context.Context, server peer.ID, after uint64, limit int) ([]StoredBox, bool, error) {
	if limit < 1 || limit > MaxItems {
		limit = MaxItems
	}
	resp, err := c.exchange(ctx, server, &pb.Request{Body: &pb.Request_Fetch{Fetch: &pb.Fetch{Owner: []byte(c.h.ID()), After: after, Limit: uint32(limit)}}})
	if err != nil {
		return nil, false, err
	}
	boxes, err := fetchResults(resp, after, limit)
	if err != nil {
		return nil, false, err
	}
	return boxes, resp.GetMore(), nil
}

// fetchResults checks a fetch response: at most limit boxes, each with a
// valid id, a size a box may have, positions increasing above after.
func fetchResults(resp *pb.Response, after uint64, limit int) ([]StoredBox, error) {
	items := resp.GetItems()
	if len(items) > limit {
		return nil, fmt.Errorf("%d boxes, asked for at most %d: %w", len(items), limit, errUnexpected)
	}
	if resp.GetMore() && len(items) == 0 {
		return nil, fmt.Errorf("more boxes announced after none: %w", errUnexpected)
	}
	out := make([]StoredBox, 0, len(items))
	last := after
	for i, it := range items {
		id, err := depositID(it.GetId())
		if err != nil {
			return nil, fmt.Errorf("box %d: %w", i, err)
		}
		if n := len(it.GetBox()); n < MinBoxSize || n > MaxBoxSizeLimit {
			return nil, fmt.Errorf("box %d of %d bytes: %w", i, n, wire.ErrInvalid)
		}
		if it.GetSeq() <= last {
			return nil, fmt.Errorf("box %d at position %d, not after %d: %w", i, it.GetSeq(), last, wire.ErrInvalid)
		}
		last = it.GetSeq()
		out = append(out, StoredBox{ID: id, Box: it.GetBox(), Seq: it.GetSeq(), Deposited: time.UnixMilli(it.GetDepositedMs())})
	}
	return out, nil
}

// Delete removes boxes from our own mailbox on server: delivered ones we
// stored, rejected ones we refused. It returns how many were removed.
func (c *Client) Delete(ctx context.Context, server peer.ID, delivered, rejected []DepositID) (int, error) {
	if n := len(delivered) + len(rejected); n == 0 || n > MaxStatusIDs {
		return 0, fmt.Errorf("delete of %d boxes (1..%d)", n, MaxStatusIDs)
	}
	d := &pb.Delete{Owner: []byte(c.h.ID())}
	for _, id := range delivered {
		d.Ids = append(d.Ids, id[:])
	}
	for _, id := range rejected {
		d.Rejected = append(d.Rejected, id[:])
	}
	resp, err := c.exchange(ctx, server, &pb.Request{Body: &pb.Request_Delete{Delete: d}})
	if err != nil {
		return 0, err
	}
	if int(resp.GetDeleted()) > len(delivered)+len(rejected) {
		return 0, fmt.Errorf("%d deleted of %d named: %w", resp.GetDeleted(), len(delivered)+len(rejected), errUnexpected)
	}
	return int(resp.GetDeleted()), nil
}

// Status asks server for the fate of deposits we made there.
func (c *Client) Status(ctx context.Context, server peer.ID, ids []DepositID) ([]Fate, error) {
	if len(ids) == 0 || len(ids) > MaxStatusIDs {
		return nil, fmt.Errorf("status of %d deposits (1..%d)", len(ids), MaxStatusIDs)
	}
	q := &pb.StatusQuery{}
	for _, id := range ids {
		q.Ids = append(q.Ids, id[:])
	}
	resp, err := c.exchange(ctx, server, &pb.Request{Body: &pb.Request_Status{Status: q}})
	if err != nil {
		return nil, err
	}
	return statusResults(resp, ids)
}

// statusResults checks a status response against the ids asked.
func statusResults(resp *pb.Response, ids []DepositID) ([]Fate, error) {
	fs := resp.GetFates()
	if len(fs) != len(ids) {
		return nil, fmt.Errorf("%d fates for %d ids: %w", len(fs), len(ids), errUnexpected)
	}
	out := make([]Fate, len(fs))
	for i, f := range fs {
		if string(f.GetId()) != string(ids[i][:]) {
			return nil, fmt.Errorf("fate %d names another deposit: %w", i, errUnexpected)
		}
		if f.GetState() < StatePending || f.GetState() > StateUnknown {
			return nil, fmt.Errorf("fate state %d: %w", f.GetState(), wire.ErrInvalid)
		}
		out[i] = Fate{ID: ids[i], State: f.GetState(), Fetched: f.GetFetched()}
		if f.GetAtMs() != 0 {
			out[i].At = time.UnixMilli(f.GetAtMs())
		}
	}
	return out, nil
}
