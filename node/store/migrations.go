package store

// migrations is the schema history: migrations[i] takes the database from
// version i to i+1. Never edit a released entry; append a new one.
var migrations = []string{
	// 1: contacts and node-local settings.
	`CREATE TABLE contacts (
		peer_id     TEXT PRIMARY KEY,
		name        TEXT NOT NULL DEFAULT '',
		state       TEXT NOT NULL DEFAULT 'accepted',
		rendezvous  TEXT NOT NULL DEFAULT '',
		created_at  INTEGER NOT NULL,
		updated_at  INTEGER NOT NULL
	);
	CREATE UNIQUE INDEX contacts_name ON contacts(name COLLATE NOCASE) WHERE name != '';
	CREATE TABLE settings (
		key   TEXT PRIMARY KEY,
		value TEXT NOT NULL
	);`,
	// 2: chat. messages is the history (both directions; pos is arrival
	// order), messages_fts its full-text index, outbox what still has to
	// reach a contact (history messages and receipts), conversations the
	// per-contact sequence counters.
	`CREATE TABLE messages (
		pos         INTEGER PRIMARY KEY,
		id          BLOB NOT NULL UNIQUE,
		peer_id     TEXT NOT NULL,
		outgoing    INTEGER NOT NULL,
		kind        TEXT NOT NULL,
		text        TEXT NOT NULL DEFAULT '',
		seq         INTEGER NOT NULL,
		sent_at     INTEGER NOT NULL,
		received_at INTEGER NOT NULL DEFAULT 0,
		status      INTEGER NOT NULL,
		status_at   INTEGER NOT NULL DEFAULT 0,
		via         TEXT NOT NULL DEFAULT ''
	);
	CREATE INDEX messages_peer ON messages(peer_id, pos);
	CREATE INDEX messages_unread ON messages(peer_id, status) WHERE outgoing = 0;
	CREATE VIRTUAL TABLE messages_fts USING fts5(text, content='messages', content_rowid='pos',
		tokenize='unicode61 remove_diacritics 2');
	CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN new.text != '' BEGIN
		INSERT INTO messages_fts(rowid, text) VALUES (new.pos, new.text);
	END;
	CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages WHEN old.text != '' BEGIN
		INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.pos, old.text);
	END;
	CREATE TABLE outbox (
		id         BLOB PRIMARY KEY,
		peer_id    TEXT NOT NULL,
		seq        INTEGER NOT NULL,
		kind       TEXT NOT NULL,
		text       TEXT NOT NULL DEFAULT '',
		refs       BLOB,
		sent_at    INTEGER NOT NULL
	);
	CREATE INDEX outbox_peer ON outbox(peer_id, seq);
	CREATE TABLE conversations (
		peer_id  TEXT PRIMARY KEY,
		out_seq  INTEGER NOT NULL DEFAULT 0,
		in_seq   INTEGER NOT NULL DEFAULT 0
	);
	ALTER TABLE contacts ADD COLUMN read_receipts INTEGER;`,
	// 3: identity, friends, names, presence. contacts gain the friend
	// request's note (theirs for pending_in, ours for pending_out) and the
	// directory name they were added by (so a key change under that name
	// is noticed). profiles caches each contact's profile; the row with
	// peer_id 'self' is our own.
	`ALTER TABLE contacts ADD COLUMN note TEXT NOT NULL DEFAULT '';
	ALTER TABLE contacts ADD COLUMN dir_name TEXT NOT NULL DEFAULT '';
	CREATE TABLE profiles (
		peer_id     TEXT PRIMARY KEY,
		version     INTEGER NOT NULL,
		name        TEXT NOT NULL DEFAULT '',
		status      TEXT NOT NULL DEFAULT '',
		avatar      BLOB,
		avatar_type TEXT NOT NULL DEFAULT '',
		updated_at  INTEGER NOT NULL
	);`,
	// 4: the name directory. own_names are the names we registered (kept
	// alive on every rendezvous); seq is the last signed sequence, so
	// records keep growing even if the clock steps back. name_warnings
	// holds, per contact added by name, what the directory says now when
	// it no longer points to the contact's key.
	`CREATE TABLE own_names (
		name        TEXT PRIMARY KEY,
		seq         INTEGER NOT NULL,
		created_at  INTEGER NOT NULL
	);
	CREATE TABLE name_warnings (
		peer_id     TEXT PRIMARY KEY REFERENCES contacts(peer_id) ON DELETE CASCADE,
		dir_name    TEXT NOT NULL,
		seen_peer   TEXT NOT NULL DEFAULT '',
		warning     TEXT NOT NULL,
		seen_at     INTEGER NOT NULL
	);`,
	// 5: offline delivery (node/store/mailbox.go). messages gain the
	// reason a failed message failed (status -1; 2, stored, was reserved
	// since version 2, so no row needs rewriting). mailbox_tokens are the
	// deposit tokens contacts gave us (one per contact, the latest).
	// mailbox_deposits are outbox entries sealed into a contact's mailbox
	// on a rendezvous: state 0 while the deposit is in flight (its id is
	// reused on retry), 1 once stored, 2 once the contact fetched it; it
	// goes with its outbox entry.
	`ALTER TABLE messages ADD COLUMN reason TEXT NOT NULL DEFAULT '';
	CREATE TABLE mailbox_tokens (
		peer_id     TEXT PRIMARY KEY,
		token       BLOB NOT NULL,
		expires_at  INTEGER NOT NULL,
		received_at INTEGER NOT NULL
	);
	CREATE TABLE mailbox_deposits (
		msg_id      BLOB PRIMARY KEY REFERENCES outbox(id) ON DELETE CASCADE,
		peer_id     TEXT NOT NULL,
		deposit_id  BLOB NOT NULL UNIQUE,
		server      TEXT NOT NULL,
		addrs       TEXT NOT NULL DEFAULT '',
		state       INTEGER NOT NULL,
		created_at  INTEGER NOT NULL,
		stored_at   INTEGER NOT NULL DEFAULT 0,
		checked_at  INTEGER NOT NULL DEFAULT 0
	);
	CREATE INDEX mailbox_deposits_check ON mailbox_deposits(state, checked_at);`,
	// 6: file transfers (see files.go). id is the offer's message id.
	// Outgoing rows keep the file's path and modification time; incoming
	// ones the verified, durable prefix of the partial file (done_bytes)
	// and the SHA-256 state after it (hash_state), then the saved file's
	// path. sums is the chunk hash list (dropped once the transfer is
	// over); via the path the data last took. outbox.payload carries the file
	// offer or update of file messages (a protobuf).
	`CREATE TABLE transfers (
		id          BLOB PRIMARY KEY,
		peer_id     TEXT NOT NULL,
		outgoing    INTEGER NOT NULL,
		state       TEXT NOT NULL,
		name        TEXT NOT NULL,
		size        INTEGER NOT NULL,
		sha256      BLOB NOT NULL,
		media_type  TEXT NOT NULL DEFAULT '',
		note        TEXT NOT NULL DEFAULT '',
		chunk_size  INTEGER NOT NULL,
		chunks_root BLOB NOT NULL,
		sums        BLOB,
		path        TEXT NOT NULL DEFAULT '',
		src_mtime   INTEGER NOT NULL DEFAULT 0,
		done_bytes  INTEGER NOT NULL DEFAULT 0,
		hash_state  BLOB,
		reason      TEXT NOT NULL DEFAULT '',
		via         TEXT NOT NULL DEFAULT '',
		created_at  INTEGER NOT NULL,
		updated_at  INTEGER NOT NULL
	);
	CREATE INDEX transfers_peer ON transfers(peer_id, created_at);
	CREATE INDEX transfers_active ON transfers(state) WHERE state NOT IN ('done', 'failed', 'rejected', 'cancelled');
	ALTER TABLE outbox ADD COLUMN payload BLOB;`,
	// 7: friend requests that outlive a restart (see requests.go).
	// withdrawals are our requests withdrawn (the pending_out contact
	// removed) that the receiver has not been told about yet; rejections
	// are the requesters we rejected and when, for the cool-down.
	`CREATE TABLE withdrawals (
		peer_id     TEXT PRIMARY KEY,
		created_at  INTEGER NOT NULL
	);
	CREATE TABLE rejections (
		peer_id     TEXT PRIMARY KEY,
		rejected_at INTEGER NOT NULL
	);
	CREATE INDEX rejections_at ON rejections(rejected_at);`,
}
