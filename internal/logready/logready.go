// Package logready waits for a server process the tests start to say, in
// its log, that it is ready.
package logready

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// ErrTimeout is returned when the ready line did not come in time.
var ErrTimeout = errors.New("not ready in time")

// Wait reads log until a line contains ready, then keeps draining it in
// the background so that the process never blocks on its log. It returns
// nil then; an error holding the lines read when log ends first (the
// process exited); or ErrTimeout after within.
func Wait(log io.Reader, ready string, within time.Duration) error {
	done := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(log)
		var lines []string
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if strings.Contains(sc.Text(), ready) {
				done <- nil
				for sc.Scan() {
				}
				return
			}
		}
		done <- fmt.Errorf("exited before it was ready:\n%s", strings.Join(lines, "\n"))
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(within):
		return fmt.Errorf("%w (%s)", ErrTimeout, within)
	}
}
