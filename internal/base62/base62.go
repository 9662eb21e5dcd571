// Package base62 writes and reads the fixed-width base62 numbers that ids
// and credentials are made of. The alphabet is in ASCII order, so that a
// fixed-width encoding sorts like the value it encodes.
package base62

import (
	"encoding/binary"
	"math/bits"
)

// Alphabet lists the digits: 0-9, A-Z, a-z.
const Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// chunk is 62^10, the largest power of 62 below 2^64: dividing a multi-word
// number by it peels off ten digits at a time with hardware divisions.
const chunk = 839299365868340224

const invalid = 0xff

var decodeTable = func() (t [256]byte) {
	for i := range t {
		t[i] = invalid
	}
	for i := range len(Alphabet) {
		t[Alphabet[i]] = byte(i)
	}
	return t
}()

// Digit returns the value of one base62 digit, and false for any other byte.
func Digit(c byte) (byte, bool) {
	d := decodeTable[c]
	return d, d != invalid
}

// PutUint writes v as exactly len(dst) digits, most significant first,
// left-padded with '0'. Digits above len(dst) are dropped.
func PutUint(dst []byte, v uint64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = Alphabet[v%62]
		v /= 62
	}
}

// PutBigEndian writes src, read as a big-endian unsigned integer of 8, 16,
// 24 or 32 bytes, as exactly len(dst) digits. dst must be wide enough for
// any value of that size: 22 digits for 16 bytes, 43 for 32.
func PutBigEndian(dst, src []byte) {
	var limbs [4]uint64
	n := len(src) / 8
	for i := range n {
		limbs[i] = binary.BigEndian.Uint64(src[8*i:])
	}
	defer clear(limbs[:]) // src may be a secret
	end := len(dst)
	for ; end > len(dst)%10; end -= 10 {
		var r uint64
		for i := range n {
			limbs[i], r = bits.Div64(r, limbs[i], chunk)
		}
		PutUint(dst[end-10:end], r)
	}
	PutUint(dst[:end], limbs[n-1])
}
