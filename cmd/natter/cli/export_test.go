package cli

import (
	"errors"
	"io"

	"github.com/natterim/natter/node/identity"
)

// fakeTerminal answers prompts from a list and records them.
type fakeTerminal struct {
	answers []string
	prompts *[]string
}

func (f *fakeTerminal) ReadPassword(prompt string) ([]byte, error) {
	*f.prompts = append(*f.prompts, prompt)
	if len(f.answers) == 0 {
		return nil, errors.New("EOF at the prompt")
	}
	a := f.answers[0]
	f.answers = f.answers[1:]
	return []byte(a), nil
}

// FakeTerminal makes the CLI prompt on a fake terminal that types
// answers; it returns the prompts shown and a restore func. It also makes
// new key files cheap to derive.
func FakeTerminal(answers ...string) (prompts *[]string, restore func()) {
	prompts = new([]string)
	oldOpen, oldKDF := openTerminal, kdfParams
	tty := &fakeTerminal{answers: answers, prompts: prompts}
	openTerminal = func(io.Writer) (terminal, bool) { return tty, true }
	kdfParams = identity.FastKDFParams()
	return prompts, func() { openTerminal, kdfParams = oldOpen, oldKDF }
}
