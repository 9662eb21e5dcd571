// Package stack keeps long-lived goroutines small. A goroutine's stack
// grows to the deepest call it ever made and shrinks only slowly, so a
// goroutine that lives as long as a live stream and once called into the
// database holds that depth (tens of KiB) for hours. Calls that go deep
// before a stream starts run through Shallow instead.
package stack

// Shallow runs fn on a goroutine of its own, which ends with it, and
// returns its result: the calling goroutine's stack does not grow by fn's
// depth.
func Shallow[T any](fn func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := fn()
		done <- result{v, err}
	}()
	r := <-done
	return r.v, r.err
}
