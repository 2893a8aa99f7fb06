package tui

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/natterim/natter/node/control"
)

// cmdKind is what a line typed at the input does.
type cmdKind int

const (
	cmdText   cmdKind = iota // not a command: a message to send
	cmdHelp                  // /help
	cmdNudge                 // /nudge
	cmdAccept                // /accept [NAME]
	cmdReject                // /reject
	cmdSearch                // /search WORDS
	cmdStatus                // /status online|away|busy|invisible [MESSAGE|-]
	cmdAdd                   // /add NAME|ID|INVITE [NOTE]
	cmdFile                  // /file PATH
	cmdCancel                // /cancel [NAME]
	cmdQuit                  // /quit
)

// command is a parsed input line.
type command struct {
	kind cmdKind
	// text is the message (cmdText), the search words, the contact's
	// local name (cmdAccept), the add target, the file path or the start
	// of the name of the transfer to cancel.
	text string
	// state and message are /status's; message nil keeps the current
	// status message, "" clears it.
	state   string
	message *string
	// note goes with /add's friend request.
	note string
}

// commandHelp lists the slash commands for /help, in order.
var commandHelp = [][2]string{
	{"/nudge", "nudge the open contact: their window shakes and beeps"},
	{"/file PATH", "offer a file to the open contact; its progress shows below the conversation"},
	{"/accept [NAME]", "accept the open contact's friend request; without one, the newest file they offer (⇩)"},
	{"/reject", "reject the open contact's friend request; without one, the newest file they offer"},
	{"/cancel [NAME]", "stop the newest file transfer with the open contact that is not over (or the one whose name starts with NAME)"},
	{"/search WORDS", "search all history (word* matches a prefix)"},
	{"/status STATE [MSG]", "online, away, busy or invisible; MSG sets your status message, - clears it"},
	{"/add NAME|ID|INVITE [NOTE]", "send a friend request (a NAME is looked up in the directory), with an optional note"},
	{"/help", "this help"},
	{"/quit", "leave (Ctrl+C does too)"},
	{"//text", "send a line that starts with /"},
}

// parseCommand reads an input line: a slash command, or text to send. A
// line starting with "//" is text starting with "/"; so is a "/" not
// followed by a letter (":/", "/ ").
func parseCommand(line string) (command, error) {
	if strings.HasPrefix(line, "//") {
		return command{kind: cmdText, text: line[1:]}, nil
	}
	rest, ok := strings.CutPrefix(line, "/")
	if first, _ := utf8.DecodeRuneInString(rest); !ok || !unicode.IsLetter(first) {
		return command{kind: cmdText, text: line}, nil
	}
	name, args := rest, ""
	if i := strings.IndexFunc(rest, unicode.IsSpace); i >= 0 {
		name, args = rest[:i], rest[i:]
	}
	args = strings.TrimSpace(args)
	name = strings.ToLower(name)
	switch name {
	case "help", "h", "?":
		return command{kind: cmdHelp}, nil
	case "quit", "q", "exit":
		return command{kind: cmdQuit}, nil
	case "nudge", "buzz":
		if args != "" {
			return command{}, fmt.Errorf("/nudge takes no arguments (it nudges the open conversation)")
		}
		return command{kind: cmdNudge}, nil
	case "accept":
		return command{kind: cmdAccept, text: args}, nil
	case "reject":
		if args != "" {
			return command{}, fmt.Errorf("/reject takes no arguments (it rejects the open contact's request or file offer)")
		}
		return command{kind: cmdReject}, nil
	case "search", "find":
		if args == "" {
			return command{}, fmt.Errorf("usage: /search WORDS")
		}
		return command{kind: cmdSearch, text: args}, nil
	case "status", "presence":
		state, msg, hasMsg := strings.Cut(args, " ")
		state = strings.ToLower(strings.TrimSpace(state))
		switch state {
		case control.PresenceOnline, control.PresenceAway, control.PresenceBusy, control.PresenceInvisible:
		case "":
			return command{}, fmt.Errorf("usage: /status online|away|busy|invisible [MESSAGE | -]")
		default:
			return command{}, fmt.Errorf("/status: %q is not online, away, busy or invisible", state)
		}
		c := command{kind: cmdStatus, state: state}
		if msg = strings.TrimSpace(msg); hasMsg && msg != "" {
			if msg == "-" {
				msg = ""
			}
			c.message = &msg
		}
		return c, nil
	case "add":
		target, note, _ := strings.Cut(args, " ")
		if target == "" {
			return command{}, fmt.Errorf("usage: /add NAME|PEER-ID|INVITE [NOTE]")
		}
		return command{kind: cmdAdd, text: target, note: strings.TrimSpace(note)}, nil
	case "cancel":
		return command{kind: cmdCancel, text: unquote(args)}, nil
	case "file", "send-file":
		p := unquote(args)
		if p == "" {
			return command{}, fmt.Errorf("usage: /file PATH")
		}
		return command{kind: cmdFile, text: p}, nil
	}
	return command{}, fmt.Errorf("unknown command /%s (see /help; start a line with // to send it as text)", name)
}

// unquote removes one pair of matching quotes around s.
func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}
