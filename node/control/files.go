package control

import "time"

// Transfer states (Transfer.State). The first four are not final.
//
//	offered       the offer is on its way or waits for the receiver's user
//	accepted      the receiver accepted; data has not moved yet
//	transferring  data is moving
//	paused        interrupted or waiting (Reason says why); resumes by itself
//	done          the receiver has the whole file, verified (FinalPath)
//	failed        cannot complete (Reason says why)
//	rejected      the receiver declined
//	cancelled     a user cancelled it (either side)
const (
	TransferOffered      = "offered"
	TransferAccepted     = "accepted"
	TransferTransferring = "transferring"
	TransferPaused       = "paused"
	TransferDone         = "done"
	TransferFailed       = "failed"
	TransferRejected     = "rejected"
	TransferCancelled    = "cancelled"
)

// TransferFinal reports whether a transfer in state s is over: done,
// failed, rejected or cancelled.
func TransferFinal(s string) bool {
	switch s {
	case TransferDone, TransferFailed, TransferRejected, TransferCancelled:
		return true
	}
	return false
}

// EventFile: a transfer (Transfer) changed state, or made progress (at
// most twice a second per transfer).
const EventFile = "file"

// Transfer is one file transfer (GET /v1/files, file events).
type Transfer struct {
	// ID is the transfer's id: the id of the chat message that offered
	// the file.
	ID      string `json:"id"`
	PeerID  string `json:"peer_id"`
	Contact string `json:"contact"`
	// Direction is "out" (we send) or "in".
	Direction string `json:"direction"`
	// Name is the offered name (out) or the safe name it is saved under
	// (in; FinalPath may add a " (1)" if the name was taken).
	Name      string `json:"name"`
	Size      int64  `json:"size"`
	SHA256    string `json:"sha256"`
	MediaType string `json:"media_type,omitempty"`
	Note      string `json:"note,omitempty"`
	State     string `json:"state"`
	// BytesDone is how much is done: verified and on disk (in), or sent
	// (out).
	BytesDone int64 `json:"bytes_done"`
	// Rate is the current rate in bytes/s (0 unless transferring).
	Rate float64 `json:"rate"`
	// Path is how the data moves or last moved: "direct", "relayed", or
	// "" if it never moved.
	Path   string `json:"path,omitempty"`
	Reason string `json:"reason,omitempty"`
	// FinalPath is where a received file was saved (done, in).
	FinalPath string `json:"final_path,omitempty"`
	// Source is the file being sent (out).
	Source    string    `json:"source,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// FileRef is what a history message of kind "file" says about its file.
type FileRef struct {
	Name      string `json:"name"`
	Size      int64  `json:"size"`
	MediaType string `json:"media_type,omitempty"`
	SHA256    string `json:"sha256"`
	State     string `json:"state"`
}

// SendFileRequest is POST /v1/contacts/{contact}/files.
type SendFileRequest struct {
	// Path is the file to send, absolute (the daemon reads it).
	Path string `json:"path"`
	// Name offers the file under another name ("" = its own name).
	Name string `json:"name,omitempty"`
	Note string `json:"note,omitempty"`
}
