package social_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that Close waits for every goroutine the service
// started.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
