package credential

import "io"

// SetRandReader replaces the random source for a test and returns a function
// that restores it.
func SetRandReader(r io.Reader) (restore func()) {
	old := randReader
	randReader = r
	return func() { randReader = old }
}
