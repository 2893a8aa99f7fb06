// Package files is natter's file transfer as a feature of the daemon: it
// offers files to contacts, answers offers, fetches accepted files with
// resume after broken links and restarts, and serves the files we offered.
// protocols/file moves and verifies the bytes; the store keeps the rows;
// this package decides what happens when, and tells the user.
//
// It exists apart from the node so that the transfer logic can be read and
// tested on its own: what it needs of the rest of the daemon it declares in
// deps.go (a store subset, the path to a peer, chat's outbox and names,
// who is a contact, an event publisher) and node wires those in.
//
// Offers and answers travel as chat messages: chat hands the file kinds it
// receives (FILE_OFFER, FILE_UPDATE) to Incoming, the transfers a batch
// created or changed to Received, and asks Ref for the file shown with a
// history message. Chat knows nothing else of files.
//
//	sender                                     receiver
//	SendFile: hash the file (whole + chunks)
//	  transfer row + FILE_OFFER in the outbox ─chat─> Incoming: offer row
//	  (one transaction)                                 (+ ACCEPTED queued if
//	                                                    auto-accepted)
//	                                           FileAction accept: accepted
//	                                           + ACCEPTED queued (one tx)
//	Source: is it offered to this peer,  <─pull── runner: wait for a usable
//	  file unchanged? stream it                 link, fetch the hash list,
//	                                            download from the durable
//	                                            prefix, checkpoint, save
//	  done <─chat─ FILE_DONE queued with the done row (one transaction)
//
// Every incoming transfer that is accepted and not over has one runner
// goroutine; at most maxActiveDownloads of them move data at once. The
// Manager owns the runners and the progress loop (which publishes rates
// and byte counts at most every Config.ProgressInterval) and Close waits
// for them.
//
// Durability: the receiver writes <data_dir>/partial/<id>.part and records
// a checkpoint (verified bytes + the SHA-256 state after them) only after
// fsyncing the file up to that point, every Config.CheckpointBytes or
// Config.CheckpointInterval. After a crash or a broken link it truncates
// the partial file to the checkpoint and asks for the data from there. The
// finished file is hard-linked (or, across file systems, copied and
// fsynced) into the downloads folder under a safe, unused name that is
// recorded before the link, so a crash in between never makes a second
// copy.
package files
